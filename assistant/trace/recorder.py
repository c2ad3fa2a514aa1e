"""The trace recorder: a subscriber to the runner's events that writes each turn to the trace store.

Spans are built from StageStarted/StageEnded (and StageRecorded for wake and endpointing, which run before the
turn); the turn is written in one transaction at TurnEnded, so a failure anywhere still leaves a trace with its error
code. What happens after the turn (a barge-in, an echo the live loop rejected) is added as an event of that turn.

When the store cannot be written (a full disk, a read-only data dir) the turn is still answered: the recorder warns
once on stderr that traces are not being saved, marks the record (an event `{"type": "trace-not-saved", "code",
"message"}` in `events`, so the JSON output says so) and keeps trying with each turn; it warns again when saving
works again. Nothing already stored is touched: a failed write is one rolled-back transaction.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from assistant.core.events import (
    BargeIn,
    EchoRejected,
    Event,
    SpeechAfterEndpoint,
    StageEnded,
    StageRecorded,
    StageStarted,
    TurnEnded,
    TurnStarted,
)
from assistant.errors import AssistantError
from assistant.trace.store import Span, TraceStore, TurnTrace

_LOGGER = logging.getLogger(__name__)


def jsonable(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class TraceRecorder:
    def __init__(self, store: TraceStore, warn: Callable[[str], None] = warn_stderr) -> None:
        self.store = store
        self.warn = warn
        self.unsaved = 0
        """Turns answered but not stored since the store last failed (0 while saving works)."""
        self.failures = 0
        """Turns (and later events) that could not be stored, in all."""
        self._warned = False
        if not getattr(store, "writable", True):
            self.warn(
                f"Traces are not being saved: {store.unsaved_reason}. The assistant keeps answering; turns "
                "are not recorded until this is fixed."
            )
            self._warned = True
        self._spans: dict[str, list[Span]] = {}
        self._open: dict[tuple[str, str], Span] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, TurnStarted):
            self._spans[event.turn_id] = []
        elif isinstance(event, StageRecorded):
            self._spans.setdefault(event.turn_id, []).append(
                Span(
                    event.stage,
                    event.backend,
                    event.version,
                    0.0,
                    0.0,
                    input=jsonable(event.input),
                    output=jsonable(event.output),
                    confidence=event.confidence,
                    error_code=event.error_code,
                )
            )
        elif isinstance(event, StageStarted):
            span = Span(event.stage, event.backend, event.version, event.t_ms, event.t_ms, input=jsonable(event.input))
            self._spans.setdefault(event.turn_id, []).append(span)
            self._open[(event.turn_id, event.stage)] = span
        elif isinstance(event, StageEnded):
            span = self._open.pop((event.turn_id, event.stage), None)
            if span is not None:
                span.end_ms = event.t_ms
                span.output = jsonable(event.output)
                span.confidence = event.confidence
                span.error_code = event.error_code
        elif isinstance(event, TurnEnded):
            self._write(event)
        elif isinstance(event, BargeIn):
            self._store(
                lambda: self.store.add_event(
                    event.turn_id,
                    "barge-in",
                    {"offset_ms": event.offset_ms, "reason": event.reason, **event.data},
                    t_ms=event.offset_ms,
                )
            )
        elif isinstance(event, SpeechAfterEndpoint):
            self._store(
                lambda: self.store.add_event(
                    event.turn_id,
                    "speech-after-endpoint",
                    {"offset_ms": event.offset_ms, **event.data},
                    t_ms=event.offset_ms,
                )
            )
        elif isinstance(event, EchoRejected):
            self._store(lambda: self.store.add_event(event.turn_id, "echo-rejected", event.data, t_ms=event.offset_ms))

    def _store(self, write: Callable[[], None]) -> AssistantError | None:
        """Run one write; a store that cannot be written is reported, never raised into the turn."""
        try:
            write()
        except AssistantError as err:  # TraceNotSaved, trace-store-busy: coded by the store
            self._failed(err)
            return err
        except OSError as err:
            failure = AssistantError("trace-not-saved", f"Traces are not being saved: {err}.")
            self._failed(failure)
            return failure
        if self._warned:
            self.warn(f"traces are being saved again ({self.unsaved} write(s) before this one were not).")
            self._warned, self.unsaved = False, 0
        return None

    def _failed(self, err: AssistantError) -> None:
        self.failures += 1
        self.unsaved += 1
        if not self._warned:
            self.warn(f"{err.message} The assistant keeps answering; turns are not recorded until this is fixed.")
            self._warned = True
        _LOGGER.info("trace not saved: %s", err.message)

    def _write(self, ev: TurnEnded) -> None:
        rec = ev.record
        spans = self._spans.pop(rec.turn_id, [])
        for key in [k for k in self._open if k[0] == rec.turn_id]:
            self._open.pop(key)
        if not ev.traced:  # an opted-out user leaves no trace at all
            return
        trace = TurnTrace(
            turn_id=rec.turn_id,
            session_id=rec.session_id,
            device_id=ev.device_id,
            user_id=ev.user_id,
            started_at=ev.started_at,
            ended_at=ev.started_at + rec.latency_ms.get("total", 0.0) / 1000,
            source=rec.source,
            pipeline=ev.pipeline,
            context=ev.context,
            record=rec.to_dict(),
            spans=spans,
            events=[{"type": "wake", "t_ms": 0.0, "data": rec.wake}] if rec.wake.get("detected") else [],
        )
        err = self._store(lambda: self.store.write_turn(trace))
        if err is not None:
            rec.events = [*(rec.events or []), {"type": "trace-not-saved", "code": err.code, "message": err.message}]
