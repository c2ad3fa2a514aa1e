"""What a turn knows besides its audio: the home, the speaking device, the user, the time, the session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.home.model import Home


@dataclass(frozen=True)
class PreviousTurn:
    """A short summary of an earlier turn in the same session (for follow-ups and context features)."""

    turn_id: str
    transcript: str
    intent: str | None
    response_text: str
    expects_reply: bool
    pending: dict[str, Any] | None = None
    """Skill-owned state for a follow-up, e.g. the candidates of a clarifying question."""


@dataclass
class TurnContext:
    """Everything a stage may read about the circumstances of a turn. Stages must not mutate it,
    except skills acting on `home` (the device states) through the Home API."""

    home: Home
    device_id: str
    """The device the user is speaking to (a satellite in `home.devices`)."""
    user_id: str
    now: datetime
    session_id: str
    data_dir: Path
    """Where skills keep persistent state (lists, timers, alarms)."""
    history: list[PreviousTurn] = field(default_factory=list)
    person: str | None = None
    """Who is speaking, when known: the enrolled voice the speaker stage identified, or the user the session names
    (`session.user_id` other than "default"). None = an unknown voice or nobody named: the household's shared
    behaviour (shared lists, no personal rewrites), never another person's private data."""
    speaker: dict[str, Any] | None = None
    """The speaker stage's decision (person, decision, score, candidate, threshold), as traced."""
    voice: Any = None
    """The request's voice embedding (numpy, when the speaker stage embedded it): for enrollment by voice only;
    never traced."""

    @property
    def previous(self) -> PreviousTurn | None:
        return self.history[-1] if self.history else None
