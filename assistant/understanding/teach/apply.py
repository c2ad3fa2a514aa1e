"""Applying what was taught to a request, before the rewrite stage and the NLU (the runner calls `Teacher.apply`).

- a routine's phrase ("good night", "set my room to study mode") -> its steps, which the runner carries out one by
  one through the same NLU, resolver, reranker and skills (confirmations for locks and garage doors still apply);
- aliases, value words and preferences -> the request with the taught words replaced by what they stand for
  ("turn on bob" -> "turn on the floor lamp", "set the heating to comfortable" -> "... to 21 degrees",
  "how did my team do" -> "how did the warriors do"), so the home grammar, the NLU and the resolver all see it.
  The resolver and the reranker also read the memory through `TurnContext.taught` (an alias the NLU tagged as a
  device, a music preference for "play some music").

A taught meaning wins over a mined rewrite: when something applied, the runner skips the rewrite stage and records
the concepts in the turn's `taught` field. Nothing applies to a teaching sentence itself or to the answer to the
assistant's own "What is ...?" question. Pure logic, no models.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.understanding.teach import phrases
from assistant.understanding.teach.memory import Concept, MemoryView, TeachMemory, phrase_key, sound_key

if TYPE_CHECKING:
    from assistant.core.context import TurnContext
    from assistant.home.model import Home

# words around a routine's phrase that do not change it: "start study mode", "set my room to study mode please"
_CARRIER = re.compile(
    r"^(?:(?:it is|it s|its|time for|start|activate|run|begin|enter|go into|switch to|turn on|trigger|do|"
    r"engage|put (?:.+?) (?:in|into)|set (?:.+?) (?:to|into|in)|switch (?:.+?) (?:to|into)|"
    r"change (?:.+?) to|we re in|i m in|let s do|lets do)\s+)?(?:the\s+|my\s+)?(?P<p>.+?)"
    r"(?P<suffix>\s+(?:mode|routine|time))?(?:\s+(?:on|now|please|then))?$"
)
_TAIL = re.compile(r"\b(?:to|into|in)\s+(?:the\s+|my\s+)?(?P<p>[a-z0-9 ]+?)(?P<suffix>\s+(?:mode|routine))$")
_PREF_WORDS = {
    "team": r"(?:my|our) (?:favou?rite )?team(?:s)?",
    "station": r"my (?:favou?rite )?(?:radio )?station|my (?:favou?rite )?radio",
    "music": r"my (?:favou?rite )?(?:music|genre|kind of music|type of music)",
    "artist": r"my (?:favou?rite )?(?:artist|band|singer)",
    "playlist": r"my (?:favou?rite )?playlist",
    "song": r"my (?:favou?rite )?song",
}


@dataclass
class Applied:
    kind: str = "none"
    """none | substitute | routine"""
    text: str = ""
    """The request as the later stages see it (substitute), else what was said."""
    original: str = ""
    steps: list[str] = field(default_factory=list)
    concepts: list[dict[str, Any]] = field(default_factory=list)
    ms: float = 0.0

    @property
    def applied(self) -> bool:
        return self.kind != "none"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "concepts": self.concepts, "ms": round(self.ms, 3)}
        if self.kind == "substitute":
            out["text"] = self.text
        if self.kind == "routine":
            out["steps"] = list(self.steps)
        return out


class Teacher:
    """The taught memory of a data dir and how it changes a request."""

    name = "teach"
    version = "1"

    def __init__(self, data_dir: Path | None) -> None:
        self.memory = TeachMemory(data_dir)

    def view(self, home: Home, user_id: str | None, opted_out: bool = False) -> MemoryView:
        return MemoryView(self.memory, home.name, user_id, opted_out)

    def apply(self, text: str, ctx: TurnContext, routines: bool = True) -> Applied:
        t0 = time.perf_counter()
        out = self._apply(text, ctx, routines)
        out.ms = (time.perf_counter() - t0) * 1000
        return out

    def _apply(self, text: str, ctx: TurnContext, routines: bool) -> Applied:
        view: MemoryView | None = getattr(ctx, "taught", None)
        none = Applied(text=text, original=text)
        if view is None or not text.strip():
            return none
        prev = ctx.previous
        if prev is not None and prev.expects_reply and (prev.pending or {}).get("skill") == "teach":
            return none  # the answer to the assistant's own question is a definition, not a use
        concepts = view.concepts()
        if not concepts or phrases.parse_statement(text, ctx.home) is not None:
            return none
        t = phrases.norm(text)
        if routines:
            c = routine_for(t, concepts)
            if c is not None:
                view.used(c, "routine")
                return Applied("routine", text, text, list(c.meaning.get("steps", [])), [view.applied[-1]])
        new = t
        used: list[Concept] = []
        for c in sorted(concepts, key=lambda c: -len(c.key)):
            before = new
            if c.kind == "alias":
                new = _replace_alias(new, c)
            elif c.kind == "value":
                new = _replace_value(new, c)
            elif c.kind == "preference":
                new = _replace_preference(new, c)
            if new != before:
                used.append(c)
                view.used(c, "substitute", slot=c.meaning.get("slot"))
        if not used:
            return none
        return Applied("substitute", new, text, [], view.applied[-len(used) :])


def routine_for(t: str, concepts: list[Concept]) -> Concept | None:
    """The routine whose phrase the (normalised) request says, with or without the words around it."""
    routines = {c.key: c for c in concepts if c.kind == "routine"}
    if not routines:
        return None
    keys = {phrase_key(t)}
    # the words around it; or "... to study mode" whatever came first (Whisper drops or changes the verb: "at my
    # room to study mode")
    for m in (_CARRIER.fullmatch(t), _TAIL.search(t)):
        if not m:
            continue
        p, suffix = m.group("p"), m.group("suffix")
        keys.add(phrase_key(p))
        if suffix:  # "study time", "study routine" for "study mode"; never "the study" (a room) for it
            keys |= {phrase_key(p + suffix), phrase_key(p + " mode"), phrase_key(p + " routine")}
    for k in keys:
        if k in routines:
            return routines[k]
    # a misheard phrase ("steady mode" for "study mode"): the one routine that sounds like what was heard
    sounds = {sound_key(k) for k in keys if len(k) >= 4}
    alike = {c.key: c for k, c in routines.items() if sound_key(k) in sounds}
    return next(iter(alike.values())) if len(alike) == 1 else None


def _rx(phrase: str) -> str:
    return r"\s+".join(re.escape(w) for w in phrase_key(phrase).split())


def _replace_alias(t: str, c: Concept) -> str:
    name = c.meaning.get("name") or ""
    if not name or phrase_key(name) == c.key:
        return t
    return re.sub(rf"\b(?:the |my )?{_rx(c.phrase)}\b", f"the {name}", t)


def _replace_value(t: str, c: Concept) -> str:
    value = str(c.meaning.get("text") or "")
    if not value:
        return t
    p = _rx(c.phrase)
    t2 = re.sub(rf"\b(to|at|on|be|is) (?:the |a )?{p}(?: (?:mode|setting|level))?\b", rf"\1 {value}", t)
    if t2 == t:
        t2 = re.sub(rf"^(?:make|get) (.+?) (?:more |nice and |nice )?{p}$", rf"set \1 to {value}", t)
    if "degree" in value:  # "make it cosy": the room's temperature, not the last device's
        t2 = re.sub(r"^set (?:it|the room|this room|the house|in here) to ", "set the temperature to ", t2)
    return t2


def _replace_preference(t: str, c: Concept) -> str:
    slot = c.meaning.get("slot")
    words = _PREF_WORDS.get(str(slot))
    if not words:
        return t
    value = str(c.meaning.get("say") or c.meaning.get("value") or "")
    if not value:
        return t
    return re.sub(rf"\b(?:{words})(?:'s|s)?\b", value, t)
