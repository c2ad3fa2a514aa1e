"""TTS stage: response text -> audio, streamed sentence by sentence so playback can start early."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class TtsBackend(Protocol):
    name: str
    version: str
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 mono chunks at `sample_rate`, the first as soon as it is ready."""
        ...
