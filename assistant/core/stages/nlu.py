"""NLU stage: text -> intent (SLURP `scenario_action` names) + slots (SLURP entity types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from assistant.core.context import TurnContext


@dataclass(frozen=True)
class Slot:
    name: str
    """SLURP entity type, e.g. `house_place`, `device_type`, `time`, `artist_name`."""
    value: str
    """The words of the utterance that fill the slot, as spoken."""
    start: int = -1
    """Character offset into the text, or -1 if unknown."""
    end: int = -1
    confidence: float = 1.0


@dataclass(frozen=True)
class NluResult:
    text: str
    intent: str
    confidence: float
    slots: tuple[Slot, ...] = ()
    nbest: tuple[tuple[str, float], ...] = field(default=())
    """Top intents with probabilities, best first (the first is `intent`)."""

    def slot_dict(self) -> dict[str, str]:
        """Slot name -> value; a repeated slot keeps its first value."""
        out: dict[str, str] = {}
        for slot in self.slots:
            out.setdefault(slot.name, slot.value)
        return out

    def slot_values(self, name: str) -> list[str]:
        return [s.value for s in self.slots if s.name == name]


class NluBackend(Protocol):
    name: str
    version: str

    def parse(self, text: str, context: TurnContext | None = None) -> NluResult: ...
