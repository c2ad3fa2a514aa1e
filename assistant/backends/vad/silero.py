"""Silero VAD v6 (the ONNX file that faster-whisper ships), run streaming on onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from assistant.errors import ModelError

_WINDOW: Final = 512
_CONTEXT: Final = 64


def model_path() -> Path:
    import faster_whisper

    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


class SileroVad:
    name = "silero-vad"
    version = "v6 (faster-whisper asset)"

    def __init__(self) -> None:
        import onnxruntime as ort

        path = model_path()
        if not path.exists():
            raise ModelError("vad-model-missing", f"{path} is missing: reinstall faster-whisper (scripts/setup.sh).")
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=opts)
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def speech_probability(self, frame: np.ndarray) -> float:
        audio = np.concatenate([self._pending, np.asarray(frame, dtype=np.float32) / 32768.0])
        best = 0.0
        while len(audio) >= _WINDOW:
            window, audio = audio[:_WINDOW], audio[_WINDOW:]
            x = np.concatenate([self._context, window])[None, :]
            out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
            self._context = window[-_CONTEXT:]
            best = max(best, float(np.asarray(out).reshape(-1)[0]))
        self._pending = audio
        return best


def create(build) -> SileroVad:
    """Registry factory (`vad.backend: silero`)."""
    return SileroVad()
