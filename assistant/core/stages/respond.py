"""Response stage: skills act on the home / timers / lists / music and say something."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.core.stages.nlu import NluResult
    from assistant.core.stages.resolve import ResolveResult


@dataclass(frozen=True)
class Action:
    name: str
    """What was done, e.g. `light.turn_on`, `timer.start`, `list.add`, `music.play`, `none`."""
    status: str
    """`done`, `failed`, `unsupported` (can't do that), `unavailable` (needs the network),
    `clarify` (asked a question)."""
    target: str | None = None
    """Entity id acted on, if any."""
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    """What changed or was found, e.g. {"state": "on", "brightness": 50}. JSON-safe."""


@dataclass(frozen=True)
class Response:
    text: str
    action: Action
    expects_reply: bool = False
    """True when the assistant asked a question and listens for a follow-up."""
    pending: dict[str, Any] | None = None
    """Skill state for the follow-up (kept in the session history)."""
    answers_intent: str | None = None
    """Set when this turn answered the assistant's clarifying question ("Which Springfield?" -> "massachusetts"):
    the intent of the request it completed, which the turn is recorded under (not what NLU made of the answer)."""
    then: tuple[str, ...] = ()
    """Requests the runner carries out next in this same turn, through every stage from the NLU on (the request a
    teaching answer completed: "What is study mode?" -> "turn off the tv ..." -> study mode runs at once)."""


class Responder(Protocol):
    name: str
    version: str

    def respond(self, nlu: NluResult, entities: ResolveResult, context: TurnContext) -> Response: ...
