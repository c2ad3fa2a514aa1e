"""A turn's result: what was heard, understood and done, and how long each part took.

A typed record built by the runner (and only there). It reads like the dict stored in the trace (`to_dict()` is that
dict; it implements the read-only Mapping protocol), so code that reads records (signals, the simulator's ground
truth, the JSON printer) works the same on a live record and on one loaded from the trace store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class TurnRecord(Mapping):
    turn_id: str
    session_id: str
    source: dict[str, Any]
    wake: dict[str, Any]
    transcript: str | None = None
    asr_confidence: float | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    slots: dict[str, str] = field(default_factory=dict)
    entities: list[dict[str, Any]] = field(default_factory=list)
    action: dict[str, Any] | None = None
    response_text: str | None = None
    response_audio: str | None = None
    expects_reply: bool = False
    latency_ms: dict[str, float] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    # present only when they apply
    rewrite: dict[str, Any] | None = None
    """The rewrite that was applied (the transcript keeps what the user said)."""
    nlu_intent: str | None = None
    """What NLU alone said, when the reranker or a clarification answer changed the intent."""
    pending: dict[str, Any] | None = None
    """Skill state for the follow-up (a clarifying question's candidates, a feedback question)."""
    events: list[dict[str, Any]] | None = None
    """What happened after the turn (barge-in)."""
    speaker: dict[str, Any] | None = None
    """Who spoke (the speaker stage's decision and score), when the stage ran or the session names the user."""
    request_audio: str | None = None
    """The request's audio file, when `traces.keep_request_audio` is on."""

    _OPTIONAL = ("rewrite", "nlu_intent", "pending", "events", "speaker", "request_audio")

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self._OPTIONAL and v is None:
                continue
            out[f.name] = v
        return out

    # read-only Mapping over to_dict()'s keys
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS or (key in self._OPTIONAL and getattr(self, key) is None):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


_FIELDS = frozenset(f.name for f in fields(TurnRecord))
