"""The trace recorder: a subscriber to the runner's events that writes each turn to the trace store.

Spans are built from StageStarted/StageEnded (and StageRecorded for wake and endpointing, which run before the
turn); the turn is written in one transaction at TurnEnded, so a failure anywhere still leaves a trace with its error
code. What happens after the turn (a barge-in, an echo the live loop rejected) is added as an event of that turn.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, is_dataclass
from typing import Any

from assistant.core.events import (
    BargeIn,
    EchoRejected,
    Event,
    StageEnded,
    StageRecorded,
    StageStarted,
    TurnEnded,
    TurnStarted,
)
from assistant.trace.store import Span, TraceStore, TurnTrace

_LOGGER = logging.getLogger(__name__)


def jsonable(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


class TraceRecorder:
    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self._spans: dict[str, list[Span]] = {}
        self._open: dict[tuple[str, str], Span] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, TurnStarted):
            self._spans[event.turn_id] = []
        elif isinstance(event, StageRecorded):
            self._spans.setdefault(event.turn_id, []).append(
                Span(event.stage, event.backend, event.version, 0.0, 0.0, input=jsonable(event.input),
                     output=jsonable(event.output), confidence=event.confidence, error_code=event.error_code))
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
            self.store.add_event(event.turn_id, "barge-in",
                                 {"offset_ms": event.offset_ms, "reason": event.reason, **event.data},
                                 t_ms=event.offset_ms)
        elif isinstance(event, EchoRejected):
            self.store.add_event(event.turn_id, "echo-rejected", event.data, t_ms=event.offset_ms)

    def _write(self, ev: TurnEnded) -> None:
        rec = ev.record
        spans = self._spans.pop(rec.turn_id, [])
        for key in [k for k in self._open if k[0] == rec.turn_id]:
            self._open.pop(key)
        if not ev.traced:  # an opted-out user leaves no trace at all
            return
        trace = TurnTrace(
            turn_id=rec.turn_id, session_id=rec.session_id, device_id=ev.device_id, user_id=ev.user_id,
            started_at=ev.started_at, ended_at=ev.started_at + rec.latency_ms.get("total", 0.0) / 1000,
            source=rec.source, pipeline=ev.pipeline, context=ev.context, record=rec.to_dict(), spans=spans,
            events=[{"type": "wake", "t_ms": 0.0, "data": rec.wake}] if rec.wake.get("detected") else [],
        )
        self.store.write_turn(trace)
