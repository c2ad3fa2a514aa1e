"""Typed turn events: what the runner and the endpointer say happened, in order.

Everything that wants to know about a turn subscribes to this stream instead of reaching into the runner: the trace
recorder (assistant/trace/recorder.py), the JSON printer and status line (assistant/cli), the live loop's speaker
(assistant/apps/live.py) and the simulator. As in Home Assistant's assist pipeline and wyoming, events are small
frozen records; times are seconds of audio (`t`, from the endpointer) or milliseconds since the turn started (`t_ms`,
from the runner).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from assistant.core.record import TurnRecord


@dataclass(frozen=True)
class Event:
    """Base of every event."""


# -- endpointing (audio time `t`, seconds since the stream started) --------------------------------------------
@dataclass(frozen=True)
class WakeDetected(Event):
    t: float
    model: str
    score: float


@dataclass(frozen=True)
class ListeningStarted(Event):
    """The endpointer collects a request from `t` on (after a wake word, a follow-up question or a barge-in)."""

    t: float
    follow_up: bool = False


@dataclass(frozen=True)
class SpeechStarted(Event):
    t: float
    """Start of the first speech frame of the request."""


@dataclass(frozen=True)
class SpeechPaused(Event):
    """Silence of `pause_seconds` after speech: the request may be over. The caller may decode what was said so far
    (speculatively) and, if it is a complete request, end it now (`Endpointer.end_now`) instead of waiting for the
    full `end_silence`; or, if it is clearly unfinished ("turn on the"), wait longer (`Endpointer.wait_longer`)."""

    t: float
    start: float
    speech_start: float
    speech_end: float


@dataclass(frozen=True)
class SpeechResumed(Event):
    """Speech again after a SpeechPaused: a speculative decode of the pause is out of date."""

    t: float


@dataclass(frozen=True)
class SpeechEnded(Event):
    """The request is complete: its audio runs from `start` to `end` (seconds of stream time)."""

    t: float
    reason: str
    """`endpoint` (silence after speech), `complete` (ended at a pause: what was said is a complete request),
    `max-length`, `end-of-file`."""
    start: float
    end: float
    speech_start: float
    speech_end: float
    endpoint_wait: float
    """Seconds of silence the user waited for the endpoint decision (0 unless `reason` is `endpoint`)."""


@dataclass(frozen=True)
class ListenTimeout(Event):
    """Listening ended without speech (the wake word, or a follow-up, with nothing after it)."""

    t: float
    start: float
    follow_up: bool = False
    reason: str = "timeout"
    """`timeout`, or `end-of-file` when the stream ended first."""


# -- the turn (runner time `t_ms`, milliseconds since the turn started) ----------------------------------------
@dataclass(frozen=True)
class TurnStarted(Event):
    turn_id: str
    session_id: str
    source: dict[str, Any]
    wake: dict[str, Any]
    now: str
    """ISO time the turn happened (simulated time in the simulator)."""


@dataclass(frozen=True)
class StageStarted(Event):
    turn_id: str
    stage: str
    backend: str | None
    version: str | None
    t_ms: float
    input: Any = None


@dataclass(frozen=True)
class StageEnded(Event):
    turn_id: str
    stage: str
    t_ms: float
    output: Any = None
    confidence: float | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class StageRecorded(Event):
    """A stage that ran before the turn began (wake word, endpointing): recorded with its audio-time output."""

    turn_id: str
    stage: str
    backend: str | None
    version: str | None
    input: Any = None
    output: Any = None
    confidence: float | None = None
    error_code: str | None = None


@dataclass(frozen=True, eq=False)
class ResponseAudio(Event):
    """One chunk of synthesized response audio, emitted as soon as it exists (the speaker plays it at once)."""

    turn_id: str
    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class TurnError(Event):
    turn_id: str
    code: str
    message: str
    stage: str


@dataclass(frozen=True)
class TurnEnded(Event):
    record: TurnRecord
    traced: bool = True
    """False for a user who opted out of recording (the recorder writes nothing)."""
    context: dict[str, Any] = field(default_factory=dict)
    """What the turn saw (home states, device, user, time): stored with the trace."""
    pipeline: dict[str, str] = field(default_factory=dict)
    """Backend name and version per stage."""
    device_id: str = ""
    user_id: str = ""
    started_at: float = 0.0


# -- after the turn (the live loop) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ResponsePlayed(Event):
    turn_id: str
    stopped: bool
    """True when a barge-in cut the answer short."""


@dataclass(frozen=True)
class StateChanged(Event):
    """The live loop's state: `idle`, `listening`, `thinking`, `speaking`, `no microphone`, `stopped` (the status
    line subscribes to these)."""

    state: str
    detail: str = ""


@dataclass(frozen=True)
class BargeIn(Event):
    """The user interrupted the answer of `turn_id`, `offset_ms` into it (wake word or "stop")."""

    turn_id: str
    offset_ms: float
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeechAfterEndpoint(Event):
    """The user spoke again `offset_ms` after the endpoint of `turn_id`, before its answer was over: the rest of a
    sentence the endpointer cut at a pause, or an afterthought ("... please"). Evidence for failure point isolation."""

    turn_id: str
    offset_ms: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EchoRejected(Event):
    """A wake detection during or right after an answer that the playback explained (the assistant heard itself)."""

    turn_id: str
    offset_ms: float | None
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]
