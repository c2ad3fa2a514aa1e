"""Two wake word detectors in a cascade: microWakeWord always listens, openWakeWord confirms its candidates.

Why: the always-on path is the assistant's idle cost. microWakeWord runs at a tenth of openWakeWord's CPU, but on its
own it woke twice in an hour of speech where openWakeWord did not, and missed barge-ins through the echo canceller
(docs/wake.md). Here it only proposes: a candidate (its calibrated score >= `candidate`, below the wake threshold so
it proposes every word it might have heard) opens openWakeWord, which first catches up on the last `keep` frames
(1.6 s: its classifiers see the same recent audio as if it had run all along) and then streams for `grace` more frames,
because its score for some words peaks after microWakeWord's crossing. The scores reported are openWakeWord's, so
`wake.threshold` and the barge-in threshold mean what they mean for it, and a wake needs both detectors.

While the assistant speaks (`attend(True)`, called by the live loop), the device is not idle and barge-in must be
heard at once, through an echo canceller: openWakeWord runs on every frame, as it does alone.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from assistant.backends.wake.microwakeword import MicroWakeWordBackend, builtin_models
from assistant.backends.wake.openwakeword import OpenWakeWordBackend
from assistant.errors import ConfigError

CANDIDATE_SCORE = 0.2
"""microWakeWord's calibrated score (0.5 = its authors' cutoff) that wakes the verifier."""
KEEP_FRAMES = 20
"""Frames (80 ms) kept for the verifier's catch-up: 1.6 s, its classifiers' window (1.28 s of embeddings) plus a
margin; each kept frame costs the verifier ~7 ms when the candidate comes, so this is the wake word's added delay."""
GRACE_FRAMES = 12
"""Frames the verifier keeps streaming after the last candidate (~1 s)."""


class CascadeWakeBackend:
    name = "cascade"

    def __init__(
        self,
        models: list[str],
        candidate: float = CANDIDATE_SCORE,
        keep: int = KEEP_FRAMES,
        grace: int = GRACE_FRAMES,
    ) -> None:
        unsupported = [m for m in models if m not in builtin_models()]
        if unsupported:
            raise ConfigError(
                "wake-model-unknown",
                f"wake.backend cascade needs a model both detectors ship; {', '.join(map(repr, unsupported))} is not "
                f"one of {', '.join(builtin_models())}. For a custom model use wake.backend openwakeword or "
                "microwakeword.",
            )
        self._proposer = MicroWakeWordBackend(models)
        self._verifier = OpenWakeWordBackend(models)
        self.models = self._verifier.models
        self.version = f"{self._proposer.version} -> {self._verifier.version}"
        self.candidate, self.grace = candidate, grace
        self._kept: deque[np.ndarray] = deque(maxlen=keep)
        self._open_for = 0  # frames the verifier still runs
        self._attending = False
        self.verified_frames = 0
        """Frames the verifier has processed (its share of the work, for benchmarks)."""

    def attend(self, on: bool) -> None:
        """On while the assistant speaks: the verifier runs on every frame (barge-in); off again when it is idle."""
        if on and not self._attending:
            self._feed_kept()
        self._attending = on

    def process(self, frame: np.ndarray) -> dict[str, float]:
        frame = np.asarray(frame, dtype=np.int16)
        proposed = self._proposer.process(frame)
        if self._attending:
            self.verified_frames += 1
            return self._verifier.process(frame)
        if max(proposed.values(), default=0.0) >= self.candidate:
            if self._open_for == 0:
                self._kept.append(frame)
                self._open_for = self.grace
                return self._feed_kept()
            self._open_for = self.grace
        if self._open_for == 0:
            self._kept.append(frame)
            return dict.fromkeys(self.models, 0.0)
        self._open_for -= 1
        self.verified_frames += 1
        # No reset when it closes: the next catch-up (1.6 s) refills its windows (1.28 s) and, after a gap shorter
        # than that, continues its stream exactly.
        return self._verifier.process(frame)

    def _feed_kept(self) -> dict[str, float]:
        scores = dict.fromkeys(self.models, 0.0)
        while self._kept:
            self.verified_frames += 1
            for name, score in self._verifier.process(self._kept.popleft()).items():
                scores[name] = max(scores[name], score)
        return scores

    def reset(self) -> None:
        # Both detectors forget the utterance; the kept audio stays (it is the room's recent past, not a detection).
        self._proposer.reset()
        self._verifier.reset()
        self._open_for = 0


def create(build) -> CascadeWakeBackend:
    """Registry factory (`wake.backend: cascade`)."""
    return CascadeWakeBackend(build.settings.wake.models)
