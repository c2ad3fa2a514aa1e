"""Speaker stage: who said the request, among the household's enrolled voices ("unknown" is a first-class answer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SpeakerResult:
    person: str | None
    """The enrolled person who spoke, or None (unknown voice, nobody enrolled, no audio)."""
    decision: str
    """`identified`, `unknown` (no enrolled voice scored above the threshold), `no-voices` (nobody is enrolled:
    the stage did not run), `session` (no audio; the session names the user), `none` (no audio, no named user)."""
    score: float | None = None
    """Cosine similarity of the request's voice to the best-matching enrolled voice."""
    candidate: str | None = None
    """The best-matching enrolled person, even when below the threshold (for calibration and the trace)."""
    threshold: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    audio_seconds: float = 0.0
    embed_ms: float = 0.0


class SpeakerEncoder(Protocol):
    name: str
    version: str

    def embed(self, samples: np.ndarray) -> np.ndarray:
        """samples: int16 mono at 16 kHz -> a unit-length voice embedding."""
        ...
