"""What the runner is asked to handle: one request's audio (already endpointed) or typed text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from assistant.core.stages.asr import AsrResult
from assistant.errors import AssistantError


@dataclass(frozen=True)
class Speculation:
    """What was said up to a pause, decoded before the endpoint was decided (semantic end of turn)."""

    asr: AsrResult
    text: str
    """The transcript without the wake word."""
    verdict: str
    """`complete`, `incomplete` or `unsure` (assistant/understanding/turn_end.py)."""
    reason: str
    decode_ms: float
    """ASR + NLU compute time of the speculative pass."""
    pause_ms: float
    """Silence after the last speech when the speculative pass started."""
    speaker_job: Any = None
    """The speaker stage, started beside the speculative decode (a Future); the turn uses it if it ends here."""


@dataclass(frozen=True)
class Request:
    source: dict[str, Any]
    """Where it came from: {"kind": "file" | "microphone" | "text" | "typed" | "audio", ...} with endpoint times."""
    wake: dict[str, Any] = field(default_factory=lambda: {"detected": False, "skipped": True})
    samples: np.ndarray | None = None
    """int16 mono 16 kHz request audio; None for typed text."""
    text: str | None = None
    now: datetime | None = None
    """When it happened (simulated time in the simulator and replay); default: now."""
    endpoint_wait_ms: float = 0.0
    """Audio time between the last speech frame and the endpoint decision (the user waits for it)."""
    error: AssistantError | None = None
    """A failure before the turn (undecodable file, wake word with no request): traced with its code."""
    speak: bool = True
    """False: answer in the record only (no apology spoken for a failure the user did not cause)."""
    speculation: Speculation | None = None
    """A decode of this request's speech made during the pause before the endpoint (see Runner.speculate)."""
    device_id: str | None = None
    """The device spoken to (a Wyoming satellite); default: the runner's own device. Each device has its sessions."""

    @classmethod
    def typed(cls, text: str, now: datetime | None = None, kind: str = "text") -> Request:
        return cls(source={"kind": kind}, text=text, now=now)

    @classmethod
    def audio(cls, samples: np.ndarray, source: dict[str, Any] | None = None, now: datetime | None = None) -> Request:
        return cls(source=source or {"kind": "audio"}, samples=np.asarray(samples, dtype=np.int16), now=now)
