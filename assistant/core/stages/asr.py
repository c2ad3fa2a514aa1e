"""ASR stage: a request's audio -> text with confidences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class AsrResult:
    text: str
    confidence: float
    """exp(mean token log-probability) over the segments, in [0, 1]."""
    no_speech_prob: float
    language: str
    audio_seconds: float
    window_seconds: float | None = None
    """Seconds of audio the recogniser's encoder saw (Whisper: 30, or shorter with `asr.window_seconds`); None when the
    backend does not say."""


class AsrBackend(Protocol):
    name: str
    version: str

    def transcribe(self, samples: np.ndarray, language: str | None) -> AsrResult:
        """samples: int16 mono at 16 kHz."""
        ...
