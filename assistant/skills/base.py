"""What every skill shares: the turn it handles, the Skill protocol and small helpers for answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from assistant.core.stages.respond import Action, Response

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.core.stages.nlu import NluResult
    from assistant.core.stages.resolve import ResolvedEntity, ResolveResult


@dataclass(frozen=True)
class Turn:
    nlu: NluResult
    entities: ResolveResult
    context: TurnContext

    @property
    def intent(self) -> str:
        return self.nlu.intent

    @property
    def text(self) -> str:
        return self.nlu.text

    def entity(self, entity_type: str) -> ResolvedEntity | None:
        return self.entities.first(entity_type)

    def value(self, entity_type: str) -> Any:
        """The `normalized` value of the first entity of that type (None if absent or unparsed)."""
        e = self.entities.first(entity_type)
        return e.normalized if e is not None else None


class Skill(Protocol):
    name: str
    intents: ClassVar[frozenset[str]]

    def handle(self, turn: Turn) -> Response: ...

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        """Answer to a question this skill asked (pending["skill"] == name); None to treat the turn normally."""
        ...


def say(
    text: str,
    name: str,
    status: str = "done",
    target: str | None = None,
    params: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    *,
    expects_reply: bool = False,
    pending: dict[str, Any] | None = None,
    then: tuple[str, ...] = (),
) -> Response:
    return Response(
        text, Action(name, status, target, dict(params or {}), dict(result or {})), expects_reply, pending, then=then
    )


def join_words(items: list[str], conj: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


STOP_WORDS = ("never mind", "nevermind", "cancel", "forget it", "stop", "nothing", "no", "none", "neither")


def is_cancel(text: str) -> bool:
    t = text.lower().strip(" .!?")
    return any(t == w or t.startswith(w + " ") for w in STOP_WORDS)


def cancelled(turn: Turn, what: str | None) -> Response | None:
    """The answer to a clarifying question that calls it off ("no", "never mind", "stop"), or None."""
    if turn.intent in ("general_negate", "general_commandstop") or is_cancel(turn.text):
        return say("Okay, never mind.", "none", "done", params={"cancelled": what})
    return None


ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2}
NUMBERED = {"one": 0, "two": 1, "three": 2, "1": 0, "2": 1, "3": 2}  # "number two"


def choose_option(text: str, options: dict[str, str]) -> str | None:
    """The option an answer picks: "the first one", or the option whose distinguishing words ("Massachusetts" of
    "Springfield, Massachusetts") it matches clearly best (rapidfuzz; words all options share are ignored)."""
    from rapidfuzz import fuzz

    words = re.findall(r"[a-z0-9']+", text.lower())
    ids = list(options)
    if "last" in words and ids:
        return ids[-1]
    for prev, w in zip([""] + words, words):
        k = ORDINALS.get(w, NUMBERED.get(w) if prev == "number" else None)
        if k is not None and k < len(ids):
            return ids[k]
    names = {i: re.findall(r"[a-z0-9']+", n.lower()) for i, n in options.items()}
    shared = set.intersection(*(set(v) for v in names.values())) if names else set()
    said = " ".join(w for w in words if w not in shared and w not in ("the", "in", "one", "please"))
    if not said:
        return None
    scores = sorted(
        ((fuzz.WRatio(said, " ".join(w for w in n if w not in shared)), i) for i, n in names.items()), reverse=True
    )
    if scores[0][0] >= 75 and (len(scores) < 2 or scores[0][0] - scores[1][0] >= 10):
        return scores[0][1]
    return None
