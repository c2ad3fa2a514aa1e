"""Voice activity stage: speech probability per frame, used to endpoint a request."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VadBackend(Protocol):
    name: str
    version: str

    def speech_probability(self, frame: np.ndarray) -> float:
        """Feed one int16 frame (any multiple of 512 samples); return the max speech probability in it."""
        ...

    def reset(self) -> None: ...
