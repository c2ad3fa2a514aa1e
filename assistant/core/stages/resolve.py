"""Entity resolution stage: slot values -> catalog entities (devices, areas, songs, contacts, places)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.core.stages.nlu import NluResult


@dataclass(frozen=True)
class Candidate:
    entity_id: str
    name: str
    score: float


@dataclass(frozen=True)
class ResolvedEntity:
    slot: str
    """The slot it came from (or a derived role such as `device`)."""
    value: str
    """What was said."""
    entity_type: str
    """`device`, `area`, `track`, `artist`, `album`, `genre`, `contact`, `place`, `number`, `time`, `duration`..."""
    entity_id: str | None
    """Catalog id, or None if nothing matched well enough."""
    name: str | None
    score: float
    candidates: tuple[Candidate, ...] = ()
    """Close alternatives (best first); several close ones make the entity ambiguous."""
    normalized: Any = None
    """A parsed value for numbers, times and durations (JSON-safe)."""

    @property
    def ambiguous(self) -> bool:
        return self.entity_id is None and len(self.candidates) > 1


@dataclass(frozen=True)
class ResolveResult:
    entities: tuple[ResolvedEntity, ...] = field(default=())

    def first(self, entity_type: str) -> ResolvedEntity | None:
        return next((e for e in self.entities if e.entity_type == entity_type), None)


class Resolver(Protocol):
    name: str
    version: str

    def resolve(self, nlu: NluResult, context: TurnContext) -> ResolveResult: ...
