"""Live-mode figures on a virtual microphone/speaker (private PulseAudio, no sound card).

Figures: idle CPU while listening to silence (% of one core), wake-to-listening latency (end of the spoken wake
word -> listening state), barge-in reaction (end of the spoken wake word -> playback stopped), and false barge-ins
over N spoken responses with the speaker looped back into the microphone (the room's echo, no platform AEC).
Not a timed test: run it on the target machine (a Pi) and keep the JSON. Needs pulseaudio, pulseaudio-utils and
libasound2-plugins.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

_RESPONSES = [
    "It's twenty past four.",
    "Turned on the kitchen light.",
    "Your shopping list has milk, eggs and bread.",
    "Alexa is the name I answer to.",
    "Timer set for ten minutes.",
    "It's sunny and nineteen degrees in Berlin.",
    "Alexa, turn on the kitchen light.",
    "Playing jazz in the living room.",
    "Today is Tuesday, the fourth of March.",
    "Okay, hey Jarvis is listening too.",
    "Added apples to your shopping list.",
    "The oven is already off.",
    "Sorry, I didn't catch that.",
    "Alexa, what time is it?",
    "Set the bedroom lights to forty percent.",
    "What do you call a fish with no eyes? A fsh.",
    "There's no timer to cancel.",
    "Alexa. Alexa. Alexa.",
    "Your alarm is set for seven in the morning.",
    "Hey Jarvis, that's not me, I'm Alexa.",
]


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def _speech_end_s(clip) -> float:
    """Seconds to the last loud sample (Piper pads its speech with silence)."""
    import numpy as np

    loud = np.flatnonzero(np.abs(clip.astype(np.int32)) > 500)
    return (loud[-1] + 1) / 16000 if len(loud) else len(clip) / 16000


def _stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    xs = sorted(xs)
    xs = [float(x) for x in xs]
    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 1),
        "p90": round(xs[int(0.9 * (len(xs) - 1))], 1),
        "max": round(xs[-1], 1),
        "min": round(xs[0], 1),
    }


def measure_live(
    settings,
    home: Path,
    data_dir: Path | None = None,
    idle_seconds: float = 30.0,
    wakes: int = 5,
    barge_ins: int = 5,
    responses: int = 100,
    echo_gain: float = 0.5,
    progress: Callable[[str], None] = print,
) -> dict[str, object]:
    """Start the live loop on a private virtual sound card and measure it (see the module docstring)."""
    import tempfile

    from assistant.apps.live import LiveAssistant
    from assistant.apps.virtual_audio import VirtualAudio
    from assistant.core.runner import Runner
    from assistant.simulate.voices import compose, piper_speech

    figures: dict[str, object] = {"echo_gain": echo_gain}
    with VirtualAudio() as va, tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        audio = settings.audio.model_copy(
            update={"input_device": va.MIC, "output_device": va.SPEAKER, "input_rate": 16000, "input_channels": 1}
        )
        mode = {"answer": None}
        p = Runner(
            settings.model_copy(update={"audio": audio}),
            home,
            data_dir=data_dir or Path(tmp) / "data",
            wrap={"respond": lambda inner: _FixedAnswer(inner, mode)},
        )
        stop = threading.Event()
        live = LiveAssistant(p, p.settings.audio.model_copy(update={"earcons": False}), stop_event=stop)
        th = threading.Thread(target=live.run, daemon=True)
        th.start()
        try:
            if not _wait(lambda: any(e["type"] == "mic-open" for e in live.events), 15):
                raise SystemExit("the virtual microphone did not open")
            time.sleep(1.0)

            # 1. idle CPU: silence in, nothing out
            c0, w0, f0 = time.process_time(), time.monotonic(), live.frames_in
            time.sleep(idle_seconds)
            cpu, wall = time.process_time() - c0, time.monotonic() - w0
            figures["idle_cpu_percent_of_one_core"] = round(100 * cpu / wall, 1)
            figures["idle_frames_per_second"] = round((live.frames_in - f0) / wall, 2)
            progress(f"idle CPU: {figures['idle_cpu_percent_of_one_core']}% of one core over {wall:.0f} s")

            alexa = piper_speech("Alexa,")
            command = piper_speech("what time is it?")
            stop_words = piper_speech("stop.")

            # 2. wake -> listening
            lat = []
            for i in range(wakes):
                n = live.turn_count
                mark = time.monotonic()
                _, t0 = va.play(compose([0.2, alexa, 0.4, command, 0.8]), f"wake{i}.wav")
                wake_end = t0 + 0.03 + 0.2 + _speech_end_s(alexa)
                if _wait(lambda mark=mark: any(e["type"] == "listening" and e["t"] > mark for e in live.events), 10):
                    t = next(e["t"] for e in live.events if e["type"] == "listening" and e["t"] > mark)
                    lat.append((t - wake_end) * 1000)
                _wait(lambda n=n: live.turn_count > n and live.state.value == "idle", 40)
                time.sleep(1.0)
            figures["wake_end_to_listening_ms"] = _stats(lat)
            progress(f"wake -> listening: {figures['wake_end_to_listening_ms']}")

            # 3. barge-in reaction, with the echo path on
            va.set_echo(echo_gain)
            mode["answer"] = (
                "Here is a long story about a little house by the sea, where the light was always on "
                "and the kettle was always warm. "
            ) * 3
            react, decide = [], []
            for i in range(barge_ins):
                n = live.turn_count
                mark = time.monotonic()
                va.play(compose([0.2, alexa, 0.4, command, 0.8]), f"ask{i}.wav")
                if not _wait(lambda mark=mark: any(e["type"] == "speaking" and e["t"] > mark for e in live.events), 40):
                    continue
                time.sleep(2.5)
                mark2 = time.monotonic()
                _, t0 = va.play(compose([alexa, 0.3, stop_words, 0.8]), f"barge{i}.wav")
                wake_end = t0 + 0.03 + _speech_end_s(alexa)
                mode_answer, mode["answer"] = mode["answer"], None
                if _wait(lambda mark2=mark2: any(e["type"] == "barge-in" and e["t"] > mark2 for e in live.events), 8):
                    b = next(e for e in live.events if e["type"] == "barge-in" and e["t"] > mark2)
                    react.append((b["stopped_t"] - wake_end) * 1000)
                    decide.append((b["stopped_t"] - b["decided_t"]) * 1000)
                _wait(lambda n=n: live.turn_count >= n + 2 and live.state.value == "idle", 40)
                mode["answer"] = mode_answer
                time.sleep(1.0)
            figures["barge_in_wake_end_to_stopped_ms"] = _stats(react)
            figures["barge_in_decision_to_stopped_ms"] = _stats(decide)
            figures["barge_ins_detected"] = f"{len(react)}/{barge_ins}"
            progress(f"barge-in: {figures['barge_in_wake_end_to_stopped_ms']} detected {figures['barge_ins_detected']}")

            # 4. false barge-ins: N responses spoken with the echo path on, nobody talking
            false_wakes = 0
            mark = time.monotonic()
            spoken = 0
            for i in range(responses):
                mode["answer"] = _RESPONSES[i % len(_RESPONSES)]
                n = live.turn_count
                live.submit_text("what time is it")
                if _wait(lambda n=n: live.turn_count > n and live.state.value == "idle", 40):
                    spoken += 1
                time.sleep(0.3)
                if (i + 1) % 20 == 0:
                    progress(f"  {i + 1}/{responses} responses")
            time.sleep(2.0)
            evs = [e for e in live.events if e["t"] > mark]
            false_wakes = len([e for e in evs if e["type"] in ("barge-in", "wake")])
            figures["false_barge_ins"] = {
                "responses": spoken,
                "false_barge_ins_or_wakes": false_wakes,
                "echo_rejected": len([e for e in evs if e["type"] == "echo-rejected"]),
                "with_wake_word": sum("alexa" in _RESPONSES[i % len(_RESPONSES)].lower() for i in range(responses)),
            }
            progress(f"false barge-ins: {figures['false_barge_ins']}")
        finally:
            stop.set()
            th.join(timeout=20)
            p.close()
    return figures


class _FixedAnswer:
    """Wraps the responder: the same action, but a fixed (long) answer while `mode["answer"]` is set."""

    def __init__(self, inner, mode: dict) -> None:
        self.inner, self.mode = inner, mode
        self.name, self.version = inner.name, getattr(inner, "version", "")

    def respond(self, nlu, resolved, ctx):
        r = self.inner.respond(nlu, resolved, ctx)
        return replace(r, text=self.mode["answer"], expects_reply=False) if self.mode["answer"] else r
