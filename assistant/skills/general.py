"""Small talk and control words: stop, yes/no outside a question, repeat, hello, thanks, a joke."""

from __future__ import annotations

from typing import Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, say

JOKES = (
    "Why did the scarecrow win an award? Because he was outstanding in his field.",
    "I told my computer I needed a break, and it said it would go to sleep.",
    "What do you call a fish with no eyes? A fsh.",
    "Why don't skeletons fight each other? They don't have the guts.",
)


class GeneralSkill:
    name = "general"
    intents: ClassVar[frozenset[str]] = frozenset(
        {
            "general_commandstop",
            "general_affirm",
            "general_negate",
            "general_repeat",
            "general_greet",
            "general_praise",
            "general_joke",
            "general_confirm",
            "general_dontcare",
        }
    )

    def handle(self, turn: Turn) -> Response:
        intent = turn.intent
        if intent == "general_commandstop":
            return say("Okay.", "stop", "done", target=turn.context.device_id)
        if intent in ("general_affirm", "general_confirm", "general_dontcare"):
            return say("Okay.", "none", "done", params={"reason": "no-question-pending"})
        if intent == "general_negate":
            return say("Alright.", "none", "done", params={"reason": "no-question-pending"})
        if intent == "general_repeat":
            prev = turn.context.previous
            if prev is None or not prev.response_text:
                return say("I haven't said anything yet.", "repeat", "failed")
            return say(prev.response_text, "repeat", "done", result={"turn_id": prev.turn_id})
        if intent == "general_greet":
            return say("Hello! What can I do for you?", "greet", "done")
        if intent == "general_praise":
            return say("Thank you!", "none", "done")
        # general_joke: a different one each turn of the session
        joke = JOKES[len(turn.context.history) % len(JOKES)]
        return say(joke, "joke.tell", "done")

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None
