"""What the assistant says when no skill handles the intent or the NLU is unsure."""

from __future__ import annotations

from typing import Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, say


class FallbackSkill:
    name = "fallback"
    intents: ClassVar[frozenset[str]] = frozenset()

    def handle(self, turn: Turn) -> Response:
        return say(
            "Sorry, I can't do that.", "none", "unsupported", params={"intent": turn.intent, "reason": "no-skill"}
        )

    def low_confidence(self, turn: Turn, threshold: float) -> Response:
        return say(
            "Sorry, I can't do that.",
            "none",
            "unsupported",
            params={
                "intent": turn.intent,
                "confidence": round(turn.nlu.confidence, 4),
                "threshold": threshold,
                "reason": "low-confidence",
            },
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None
