"""Wake word stage: streaming, one 80 ms frame at a time, a score per model per frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class WakeDetection:
    model: str
    score: float
    offset_seconds: float
    """Where in the stream the score crossed the threshold."""


class WakeBackend(Protocol):
    """Optional: `attend(on: bool)`, told when the assistant starts and stops speaking (a backend that saves work
    while idle, like the cascade, runs in full then, so barge-in is heard at once)."""

    name: str
    version: str
    models: tuple[str, ...]

    def process(self, frame: np.ndarray) -> dict[str, float]:
        """Feed one int16 frame; return the highest score per model seen in it."""
        ...

    def reset(self) -> None:
        """Forget the audio heard so far (after a detection, so the same utterance does not wake twice)."""
        ...
