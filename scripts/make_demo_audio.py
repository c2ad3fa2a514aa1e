"""Rebuild the bundled demo recordings in assistant/data/demo/ (speech synthesized with Piper, en_US-joe-medium).

Run: .venv/bin/python scripts/make_demo_audio.py
"""

from pathlib import Path

import soundfile as sf

from assistant.audio import PIPELINE_RATE
from assistant.simulate.voices import compose, piper_speech

OUT = Path(__file__).resolve().parents[1] / "assistant" / "data" / "demo"

SCRIPTS = {
    "morning_routine": [
        "Alexa, turn on the kitchen lights.",
        "Hey Jarvis, set a timer for ten minutes.",
        "Alexa, what time is it?",
    ],
    "evening_errands": [
        "Alexa, add milk to my shopping list.",
        "Hey Jarvis, open the garage door.",
        "Alexa, make me a sandwich.",
    ],
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, lines in SCRIPTS.items():
        parts: list = [0.8]
        for line in lines:
            parts += [piper_speech(line), 3.0]
        audio = compose(parts)
        sf.write(OUT / f"{name}.flac", audio, PIPELINE_RATE, subtype="PCM_16")
        (OUT / f"{name}.txt").write_text("\n".join(lines) + "\n")
        print(f"{name}.flac: {len(audio) / PIPELINE_RATE:.1f} s")


if __name__ == "__main__":
    main()
