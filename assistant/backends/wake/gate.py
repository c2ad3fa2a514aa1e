"""An energy gate in front of a wake word detector: in a quiet room it does no work at all.

While the last `hold` frames (2.4 s) were all below `dbfs` RMS, frames are only kept (the last `hold` of them);
the first louder frame opens the gate, and the kept frames are fed first, so the detector sees the same recent
audio as if it had run all along (its windows span ~2 s: 1.3 s of embeddings over 0.8 s of mel frames). It saves
nothing while people talk or a TV plays, and costs one catch-up (~2.4 s of audio at once) each time sound starts.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class EnergyGate:
    def __init__(self, dbfs: float, hold: int = 30) -> None:
        self.level = 32768.0 * 10 ** (dbfs / 20)
        self.hold = hold
        self._kept: deque[np.ndarray] = deque(maxlen=hold)
        self._quiet = hold  # starts closed

    def admit(self, frame: np.ndarray) -> list[np.ndarray]:
        """The frames to run the detector on now (none while the room stays quiet)."""
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
        self._quiet = 0 if rms >= self.level else self._quiet + 1
        if self._quiet >= self.hold:
            self._kept.append(frame)
            return []
        out = [*self._kept, frame]
        self._kept.clear()
        return out

    @property
    def closed(self) -> bool:
        return self._quiet >= self.hold
