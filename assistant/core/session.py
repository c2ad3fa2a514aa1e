"""Sessions: turns on one device less than `gap_seconds` apart, with the history follow-ups and context read."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from assistant.core.context import PreviousTurn

HISTORY_TURNS = 20
"""Turns of a session kept for follow-ups and context (the store keeps them all)."""


@dataclass
class Session:
    session_id: str
    last_at: datetime
    history: list[PreviousTurn] = field(default_factory=list)


def previous_turn(rec: Mapping[str, Any]) -> PreviousTurn:
    return PreviousTurn(
        turn_id=rec.get("turn_id", ""),
        transcript=rec.get("transcript") or "",
        intent=rec.get("intent"),
        response_text=rec.get("response_text") or "",
        expects_reply=bool(rec.get("expects_reply")),
        pending=rec.get("pending"),
    )


class SessionTracker:
    """The current session of one device and user; continues a session an earlier process left open (so `say`
    can answer a clarifying question asked by the previous `say`)."""

    def __init__(self, store, device_id: str, user_id: str, gap_seconds: float) -> None:
        self.store = store
        self.device_id = device_id
        self.user_id = user_id
        self.gap = timedelta(seconds=gap_seconds)
        self.current: Session | None = None
        self._people: dict[str, Session] = {}

    def session_for(self, now: datetime, user_id: str | None = None) -> Session:
        """The session of the tracker's user, or of `user_id` (a person the speaker stage identified: each person
        on the device has their own conversation, so nobody answers or continues another person's)."""
        if user_id is not None and user_id != self.user_id:
            s = self._people.get(user_id)
            if s is None or now - s.last_at > self.gap:
                s = self._people[user_id] = self._resume(now, user_id)
            return s
        s = self.current
        if s is not None and now - s.last_at <= self.gap:
            return s
        if s is None:
            self.current = self._resume(now, self.user_id)
            return self.current
        self.current = Session(uuid.uuid4().hex, now)
        return self.current

    def _resume(self, now: datetime, user_id: str) -> Session:
        last = self.store.last_session(self.device_id, user_id)
        if last is not None and now - datetime.fromtimestamp(last[1]) <= self.gap:
            return Session(last[0], datetime.fromtimestamp(last[1]), self._history(last[0]))
        return Session(uuid.uuid4().hex, now)

    def _history(self, session_id: str) -> list[PreviousTurn]:
        history = []
        for row in reversed(self.store.list_turns(limit=10, session_id=session_id)):
            rec = (self.store.get_turn(row["turn_id"]) or {}).get("record", {})
            history.append(previous_turn(rec))
        return history

    def end_turn(self, session: Session, rec: Mapping[str, Any], now: datetime) -> None:
        session.history.append(previous_turn(rec))
        del session.history[:-HISTORY_TURNS]  # a session that never pauses must not grow without bound
        session.last_at = now
