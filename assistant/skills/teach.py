"""The teaching dialogue: definitions people state, the question the assistant asks about a phrase it cannot map,
the answer to it (then the original request is carried out at once), replacing a meaning (asked first), and the
memory people control ("what have you learned", "what does study mode mean", "forget study mode", "forget everything
you learned about me").

The memory is the turn's `context.taught` (assistant/understanding/teach/memory.py); the sentences are parsed by
assistant/understanding/teach/phrases.py. Safety: a built-in command word ("stop", "cancel") is never given a new
meaning; a phrase that already means something (a taught concept, a device, room or scene of the home) asks before
it is replaced; a taught routine runs through the same skills as any request, so unlocking still asks first.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.home import grammar
from assistant.skills.base import Turn, join_words, say
from assistant.text import is_stop_reply
from assistant.understanding.teach import phrases
from assistant.understanding.teach.memory import Concept, MemoryView, phrase_key

if TYPE_CHECKING:
    from assistant.home.model import Home
    from assistant.understanding.resolve.catalog import MusicCatalog

YES = re.compile(r"^(?:yes|yeah|yep|sure|ok|okay|do it|go ahead|please do|replace it|change it|correct|right)\b")
NO = re.compile(r"^(?:no|nope|don't|do not|keep|leave it|never mind|cancel)\b")
SPORTS = re.compile(
    r"\b(?:how did|how are|how is|did .+ (?:win|lose|play)|score|scores|result|results|when do(?:es)? .+ play|"
    r"next game|last game|game|match|playing tonight|standings|won|lost)\b"
)
MUSIC_SLOTS = {"music": ("genre", "artist", "playlist"), "artist": ("artist",), "playlist": ("playlist",)}
MUSIC_SLOTS |= {"song": ("track",), "station": ("genre", "playlist", "artist")}


class TeachSkill:
    """Not dispatched by intent: the responder offers every turn to `try_handle` (teaching sentences, before the
    home grammar) and to `try_ask` (a phrase nothing maps, after the grammar and before the NLU's intent)."""

    name = "teach"
    intents: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, music: MusicCatalog | None = None) -> None:
        self.music = music

    def handle(self, turn: Turn) -> Response:
        return self.try_handle(turn) or say("Sorry, I can't do that.", "none", "unsupported")

    # -- statements ---------------------------------------------------------------------------------------------
    def try_handle(self, turn: Turn) -> Response | None:
        view: MemoryView | None = turn.context.taught
        if view is None:
            return None
        home = turn.context.home
        st = phrases.parse_statement(turn.text, home)
        if st is None:
            asked = re.fullmatch(r"(?:what is|what s|whats|what was) (?:the )?(?P<p>.+)", phrases.norm(turn.text))
            if asked and view.find(asked["p"]) is not None:  # "what is study mode", once it was taught
                return self._explain(view, phrases.Statement("explain", phrase=asked["p"]))
            return self._sports(turn, view)
        if st.kind == "list":
            return self._list(view)
        if st.kind == "explain":
            return self._explain(view, st)
        if st.kind == "forget_all":
            n = view.forget_mine()
            who = "you taught me" if view.user else "this home taught me"
            text = f"Okay, I've forgotten the {_things(n)} {who}." if n else "There was nothing to forget."
            return say(text, "teach.forget", "done", params={"all": True, "user": view.user}, result={"forgotten": n})
        if st.kind == "forget":
            return self._forget(turn, view, st)
        if st.kind == "preference":
            return self._define_preference(turn, view, st.slot, st.meaning)
        if st.kind == "alias":
            name = _target_name(st.target, home, st.meaning)
            meaning = _alias_meaning(st.target, home, name)
            return self._define(turn, view, "alias", st.phrase, meaning)
        # define: "X means ...", "when I say X, ..."
        m = phrases.parse_meaning(st.meaning, home)
        if m.kind == "unclear" and not st.extra.get("explicit"):
            return None  # "the darkness stands for ...": not said to teach; the other skills answer it
        if m.kind == "unclear":
            return say(
                f"Sorry, I didn't understand what {st.phrase} should mean. You can say, for example, 'when I say "
                f"{st.phrase}, turn off the lights and lock the back door', or '{st.phrase} means 21 degrees'.",
                "teach.define",
                "failed",
                params={"phrase": st.phrase, "said": st.meaning, "reason": "unclear-meaning"},
            )
        old = view.find(st.phrase, "routine") if st.extra.get("append") and m.kind == "routine" else None
        if old is not None:  # an edit: the new steps go after the routine's own, no question
            steps = [*old.meaning.get("steps", []), *m.steps]
            c = view.define("routine", old.phrase, {"steps": steps}, turn.text)
            view.used(c, "defined")
            return say(
                f"Okay. {_confirm(c)}", "teach.define", "done", params={"concept": c.to_dict(), "added": m.steps}
            )
        return self._define(turn, view, *_kind_meaning(st.phrase, m, home))

    # -- questions the assistant asks -------------------------------------------------------------------------
    def try_ask(self, turn: Turn) -> Response | None:
        """ "What is study mode?" when a request's frame parses and one phrase of it means nothing here."""
        view: MemoryView | None = turn.context.taught
        if view is None:
            return None
        t = phrases.norm(turn.text)
        if re.search(r"\b(?:my|our) (?:favou?rite )?team\b", t) and view.preference("team") is None:
            return say(
                "Which team is yours?",
                "teach.ask",
                "clarify",
                params={"slot": "team", "request": turn.text},
                expects_reply=True,
                pending={"skill": self.name, "kind": "preference", "slot": "team", "request": turn.text},
            )
        hit = phrases.unknown_phrase(turn.text, turn.context.home, {c.key for c in view.concepts()})
        if hit is None:
            return None
        phrase, kind = hit
        if kind == "alias" and turn.intent.startswith(("audio_", "media_", "general_")) and turn.nlu.confidence >= 0.9:
            return None  # the NLU is sure it is no device: "turn off the sound" mutes
        question = f"What is {phrase}?" if kind == "routine" else f"What do you mean by {phrase}?"
        return say(
            question,
            "teach.ask",
            "clarify",
            params={"phrase": phrase, "kind": kind, "request": turn.text},
            expects_reply=True,
            pending={"skill": self.name, "kind": "define", "phrase": phrase, "expect": kind, "request": turn.text},
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        view: MemoryView | None = turn.context.taught
        if view is None:
            return None
        text = phrases.norm(turn.text)
        kind = pending.get("kind")
        if kind == "replace":
            concept = pending["concept"]
            if YES.match(text):
                c = view.define(concept["kind"], concept["phrase"], concept["meaning"], concept.get("said", ""))
                view.used(c, "defined")
                return say(
                    f"Okay. {_confirm(c)}",
                    "teach.define",
                    "done",
                    params={"concept": c.to_dict(), "replaced": pending.get("old")},
                    then=tuple(pending.get("then", ())),
                )
            if NO.match(text) or is_stop_reply(text):
                return say("Okay, I'll keep what it meant before.", "teach.define", "done", params={"kept": True})
            return None
        if is_stop_reply(text) or re.fullmatch(r"(?:never mind|forget it|nothing|i don t know|don t know)", text):
            return say("Okay, never mind.", "none", "done", params={"cancelled": "teach"})
        if kind == "preference":
            value = re.sub(r"^(?:it is|it s|its|my team is|they re|they are|i support|the)\s+", "", text).strip()
            if not value or len(value.split()) > 4 or phrases.looks_like_command(value) or " my " in f" {value} ":
                return None  # not a team's name: a new request
            return self._define_preference(turn, view, pending["slot"], value, then=(pending["request"],))
        if kind == "define":
            phrase = pending["phrase"]
            m = phrases.parse_meaning(turn.text, turn.context.home)
            if m.kind == "unclear":
                if pending.get("tries", 0) >= 1:
                    return say(
                        f"Sorry, I still didn't get what {phrase} means. You can teach me any time: say 'when I say "
                        f"{phrase}, ...' and what to do.",
                        "teach.define",
                        "failed",
                        params={"phrase": phrase, "said": turn.text, "reason": "unclear-meaning"},
                    )
                return say(
                    f"Sorry, I didn't get that. What should {phrase} do? For example: 'turn off the TV and start a "
                    f"timer', or '21 degrees'.",
                    "teach.ask",
                    "clarify",
                    params={"phrase": phrase, "said": turn.text, "reason": "unclear-meaning"},
                    expects_reply=True,
                    pending={**pending, "tries": pending.get("tries", 0) + 1},
                )
            return self._define(turn, view, *_kind_meaning(phrase, m, turn.context.home), then=(pending["request"],))
        return None

    # -- defining -----------------------------------------------------------------------------------------------
    def _define(
        self,
        turn: Turn,
        view: MemoryView,
        kind: str,
        phrase: str,
        meaning: dict[str, Any],
        then: tuple[str, ...] = (),
    ) -> Response:
        home = turn.context.home
        phrase = " ".join(phrase.split())
        if not phrase_key(phrase):
            return say("Sorry, I didn't catch the word to learn.", "teach.define", "failed", params={"reason": "empty"})
        if phrases.reserved(phrase, kind):
            return say(
                f"I can't change what '{phrase}' means: it's one of my built-in commands.",
                "teach.define",
                "failed",
                params={"phrase": phrase, "reason": "built-in"},
            )
        new = Concept(kind=kind, phrase=phrase, meaning=meaning, said=turn.text)
        old = view.find(phrase)
        if old is not None and old.kind == kind and _same(old.meaning, meaning):
            return say(
                f"I know: {_confirm(old)}", "teach.define", "done", params={"concept": old.to_dict(), "known": True}
            )
        clash = _home_name(phrase, home)
        if kind == "alias" and clash is not None and set(clash[1]) == set(meaning.get("device_ids") or ()):
            return say(f"{phrase.capitalize()} is already the {meaning['name']}.", "teach.define", "done")
        if old is not None or clash is not None:
            what = f"{phrase} means {old.describe()}" if old is not None else f"{phrase} is {clash[0]} in this home"
            return say(
                f"Right now {what}. Should it mean {new.describe()} instead?",
                "teach.confirm",
                "clarify",
                params={"concept": new.to_dict(), "old": old.to_dict() if old else clash[0]},
                expects_reply=True,
                pending={
                    "skill": self.name,
                    "kind": "replace",
                    "concept": new.to_dict(),
                    "old": old.id if old else clash[0],
                    "then": list(then),
                },
            )
        c = view.define(kind, phrase, meaning, turn.text)
        view.used(c, "defined")
        return say(_confirm(c), "teach.define", "done", params={"concept": c.to_dict()}, then=then)

    def _define_preference(
        self, turn: Turn, view: MemoryView, slot: str, value: str, then: tuple[str, ...] = ()
    ) -> Response | None:
        meaning: dict[str, Any] = {"slot": slot, "value": value}
        if slot in MUSIC_SLOTS:
            ent = self._music_entity(value, MUSIC_SLOTS[slot])
            if ent is None and slot == "music":
                return None  # "I like cooking" is no music preference: the other skills answer it
            if ent is not None:
                meaning["entity"] = ent
                meaning["say"] = f"{ent['name'].lower()} music" if ent["type"] == "genre" else ent["name"]
                meaning["display"] = ent["name"]
        if slot == "team":
            meaning["value"] = value.title()
            meaning["say"] = f"the {value}"
            meaning["display"] = f"the {value.title()}"
        return self._define(turn, view, "preference", f"my {slot}", meaning, then=then)

    def _music_entity(self, value: str, types: tuple[str, ...]) -> dict[str, Any] | None:
        if self.music is None:
            return None
        v = re.sub(r"\s+(?:radio|fm|station|music)$", "", value.strip())
        for etype in types:
            hits = self.music.search(v, etype=etype, limit=1)
            if not (hits and hits[0][1] >= 0.99):  # "beatles" said, "The Beatles" in the catalog
                hits = self.music.search(f"the {v}", etype=etype, limit=1) or hits
            if hits and hits[0][1] >= 0.9:
                r = hits[0][0]
                return {"type": r["type"], "id": r["id"], "name": r["name"]}
        return None

    # -- the memory, as people ask about it ------------------------------------------------------------------
    def _list(self, view: MemoryView) -> Response:
        cs = view.concepts()
        if not cs:
            return say("You haven't taught me anything yet.", "teach.list", "done", result={"concepts": []})
        parts = [_confirm(c, short=True) for c in cs]
        text = f"I've learned {_things(len(cs))}: " + "; ".join(parts) + "."
        return say(text, "teach.list", "done", result={"concepts": [c.id for c in cs]})

    def _explain(self, view: MemoryView, st: phrases.Statement) -> Response:
        c = view.preference(st.slot) if st.slot else view.find(st.phrase)
        if c is None:
            what = f"your {st.slot}" if st.slot else st.phrase
            return say(
                f"I haven't learned {what} yet." if st.slot else f"I haven't learned what {what} means.",
                "teach.explain",
                "failed",
                params={"phrase": st.phrase, "slot": st.slot},
            )
        return say(_confirm(c), "teach.explain", "done", target=c.id)

    def _forget(self, turn: Turn, view: MemoryView, st: phrases.Statement) -> Response | None:
        c = view.preference(st.slot) if st.slot else view.find(st.phrase)
        if c is None:
            if grammar.parse(turn.text, turn.context.home, turn.context.now) is not None:
                return None  # "forget the delayed lights": the scheduler's
            what = f"your {st.slot}" if st.slot else st.phrase
            return say(f"I haven't learned anything about {what}.", "teach.forget", "failed", params={"phrase": what})
        view.forget(c)
        name = f"your {c.meaning.get('slot')}" if c.kind == "preference" else c.phrase
        text = f"Okay, I've forgotten {name}."
        return say(text, "teach.forget", "done", target=c.id, params={"concept": c.to_dict()})

    # -- preferences at work ------------------------------------------------------------------------------------
    def _sports(self, turn: Turn, view: MemoryView) -> Response | None:
        """A question about the user's team: the preference fills the team; there is no sports source offline."""
        team = next((a for a in view.applied if a.get("slot") == "team"), None)
        if team is None or not SPORTS.search(phrases.norm(turn.text)):
            return None
        c = view.preference("team")
        name = c.meaning.get("display") if c else "your team"
        return say(
            f"Your team is {name}, but I can't get sports results or games while offline.",
            "sports.query",
            "unavailable",
            params={"team": c.meaning.get("value") if c else None},
        )


# -- helpers ------------------------------------------------------------------------------------------------------
def _kind_meaning(phrase: str, m: phrases.Meaning, home: Home) -> tuple[str, str, dict[str, Any]]:
    if m.kind == "routine":
        return "routine", phrase, {"steps": m.steps}
    if m.kind == "value":
        return "value", phrase, {"text": m.value}
    return "alias", phrase, _alias_meaning(m.target, home, _target_name(m.target, home, m.name))


def _alias_meaning(target, home: Home, name: str) -> dict[str, Any]:
    """A name for devices ("the floor lamp", "the kitchen lights": the devices themselves) or for a room."""
    ids = list(target.device_ids)
    if not ids and target.types:
        from assistant.home.targets import select

        ids = [d.id for d in select(target, home, None).devices]
    area = target.areas[0] if target.areas and not ids else None
    return {"device_ids": ids, "area_id": area, "name": name}


def _target_name(target, home: Home, said: str) -> str:
    if target.device_ids and len(target.device_ids) == 1:
        return home.devices[target.device_ids[0]].name
    if target.areas and not target.device_ids and not target.types and len(target.areas) == 1:
        return home.areas[target.areas[0]].name
    return re.sub(r"^(?:the|my)\s+", "", said)


def _home_name(phrase: str, home: Home) -> tuple[str, list[str]] | None:
    """("the name of a script", ids) when `phrase` already names a device, room or scene of the home."""
    v = grammar.vocabulary(home)
    k = grammar.Vocabulary._k(phrase)
    k = re.sub(r"^(?:the|my)\s+", "", k)
    if k in v.devices:
        ids = v.devices[k]
        d = home.devices[ids[0]]
        kind = {"script": "a script", "scene": "a scene"}.get(d.type, f"the {d.name}")
        return kind, list(ids)
    if k in v.areas:
        return f"the {home.areas[v.areas[k]].name}", []
    return None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("steps", "text", "device_ids", "area_id", "slot", "value")
    return all(a.get(k) == b.get(k) for k in keys)


def _things(n: int) -> str:
    return "one thing" if n == 1 else f"{n} things"


def _confirm(c: Concept, short: bool = False) -> str:
    m = c.meaning
    if c.kind == "routine":
        steps = m.get("steps", [])
        return (
            f"{c.phrase} means {join_words(steps)}" if short else f"When you say {c.phrase}, I'll {join_words(steps)}."
        )
    if c.kind == "alias":
        return f"{c.phrase} is the {m.get('name')}" if short else f"{c.phrase.capitalize()} is the {m.get('name')}."
    if c.kind == "value":
        return f"{c.phrase} means {m.get('text')}" if short else f"{c.phrase.capitalize()} means {m.get('text')}."
    slot = m.get("slot")
    shown = m.get("display") or m.get("value")
    if slot == "team":
        return f"your team is {shown}" if short else f"I'll remember that your team is {shown}."
    if slot == "music":
        return f"you like {shown}" if short else f"I'll remember that you like {shown}."
    return f"your favourite {slot} is {shown}" if short else f"I'll remember that your favourite {slot} is {shown}."
