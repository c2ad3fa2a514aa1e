"""The sentences of teaching: definitions people state, questions about what was learned, forgetting, the answer to
"What is study mode?", and the requests that hold a phrase the assistant cannot map (so it asks).

Deterministic patterns over the home grammar's normaliser (`assistant.home.grammar.normalize`: lower case, digits,
no wake word, no "please"); the home's own vocabulary (`grammar.parse_target`) tells a device name from a new word.
Pure logic, no models: tests/unit/test_teach.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.home import grammar
from assistant.text import CANCEL_WORDS, DECLINE_WORDS, QUIET_WORDS

if TYPE_CHECKING:
    from assistant.home.model import Home

RESERVED = frozenset(
    {
        *CANCEL_WORDS,
        *DECLINE_WORDS,
        *QUIET_WORDS,
        "yes",
        "yeah",
        "ok",
        "okay",
        "help",
        "pause",
        "resume",
        "repeat",
        "louder",
        "quieter",
        "volume up",
        "volume down",
        "mute",
        "unmute",
        "what time is it",
        "it",
        "them",
        "this",
        "that",
        "here",
        "everything",
        "all",
    }
)
"""Built-in command words: teaching never gives them another meaning."""

STEP_VERBS = (
    "turn",
    "switch",
    "set",
    "start",
    "stop",
    "lock",
    "unlock",
    "open",
    "close",
    "shut",
    "dim",
    "brighten",
    "play",
    "pause",
    "resume",
    "put",
    "make",
    "activate",
    "run",
    "add",
    "remind",
    "wake",
    "cancel",
    "raise",
    "lower",
    "mute",
    "unmute",
    "tell",
    "give",
    "read",
    "change",
    "increase",
    "decrease",
    "what",
    "whats",
    "how",
    "is",
    "are",
)
_VERB_RX = "|".join(STEP_VERBS)
_DET = r"(?:the|all|a|an|my|off|on|up|down|every|some|me|it|them|to)"
VALUE_RX = re.compile(
    r"^(?:\d+(?:\.\d+)?\s*(?:degrees?|percent|per cent|celsius|fahrenheit)?(?:\s+(?:brightness|open))?"
    r"|(?:" + "|".join(sorted((*grammar.COLORS, *grammar.COLOR_TEMPS), key=len, reverse=True)) + r")"
    r"|(?:low|medium|high)(?: speed)?|(?:heat|cool|auto|off|on)(?: mode)?)$"
)
"""What a value word may stand for: a number with a unit, a colour or white, a fan speed, a thermostat mode."""
MEANING_PREFIX = re.compile(
    r"^(?:it means|that means|it is|it s|that is|that s|this is|i mean|i meant|means|it should|you should|"
    r"it s when you|that s when you|when you|just|well|oh|um|uh|so)\s+"
)


@dataclass
class Statement:
    """A teaching sentence or a question about the memory."""

    kind: str
    """define | alias | preference | list | explain | forget | forget_all"""
    phrase: str = ""
    meaning: str = ""
    target: Any = None
    """alias: the grammar Target the new name stands for"""
    slot: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def norm(text: str) -> str:
    t = grammar.normalize(text)
    return re.sub(r"\s+", " ", re.sub(r"[,;!?\"']", " ", t)).strip()


def _clean_phrase(p: str) -> str:
    p = re.sub(r"^(?:the words?|the phrase|the word|the)\s+", "", p.strip(" '\""))
    return " ".join(p.strip(" '\"").split())


def split_steps(text: str) -> list[str]:
    """ "turn off the tv, set the desk lamp to 100 percent and start a 45 minute timer" -> three requests.

    Splits on commas, "then", and on "and" or a bare command verb that starts a new command (a verb followed by
    a determiner or particle: "... all the lights lock the front door ..."), never inside a target ("the kitchen
    light and the desk lamp" stays one)."""
    t = " ".join(text.replace(";", ",").split()).strip(" ,.")
    t = re.sub(r"\b(?:and then|after that|and also|then)\b", ",", t)
    t = re.sub(rf"\s+and\s+(?=(?:{_VERB_RX})\b)", ", ", t)
    t = re.sub(rf"(?<=[a-z0-9])\s+(?=(?:{_VERB_RX})\s+{_DET}\b)", ", ", t)
    steps = [re.sub(r"^(?:and|also|please|to)\s+", "", s.strip(" .")).strip() for s in t.split(",")]
    return [s for s in steps if s and s not in ("and", "also")]


def looks_like_command(step: str) -> bool:
    return re.match(rf"^(?:{_VERB_RX})\b", step) is not None


def is_value(text: str) -> bool:
    return VALUE_RX.match(text.strip()) is not None


def reserved(phrase: str, kind: str = "routine") -> bool:
    """A built-in command word; a lone command verb too, except as a value word ("dim means 30 percent": "set the
    light to dim" changes, "dim the light" does not)."""
    p = " ".join(phrase.lower().split())
    return p in RESERVED or (kind != "value" and len(p.split()) == 1 and p in STEP_VERBS)


def _target_of(phrase: str, home: Home):
    """A phrase that names this home's devices or rooms exactly (no unknown words), else None."""
    v = grammar.vocabulary(home)
    k = re.sub(r"^(?:the|my|our)\s+", "", phrase.strip())
    for key in (phrase.strip(), k):
        if key in v.areas and key not in v.devices:  # "my room": an area's alias
            return grammar.Target(said=phrase, areas=[v.areas[key]])
    t = grammar.parse_target(phrase, home)
    if t is None or t.unknown or t.pronoun:
        return None
    if t.device_ids or t.areas or t.floor:
        return t
    return None


def _target_heard(phrase: str, home: Home):
    """The one device whose name is spelled nearly like `phrase` ("floor lant", "floor lance" for "floor lamp": what
    Whisper makes of it), with no other device near, else None."""
    from rapidfuzz import fuzz, process

    v = grammar.vocabulary(home)
    k = re.sub(r"^(?:the|my|our)\s+", "", phrase.strip())
    if len(k) < 5:
        return None
    best: dict[str, float] = {}  # per device: its names and their spellings ("floorlamp") are one candidate
    for name, score, _ in process.extract(k, list(v.devices), scorer=fuzz.ratio, limit=8):
        key = "+".join(v.devices[name])
        best[key] = max(best.get(key, 0.0), score)
    ranked = sorted(best.items(), key=lambda x: -x[1])
    if not ranked or ranked[0][1] < 75 or (len(ranked) > 1 and ranked[0][1] - ranked[1][1] < 8):
        return None
    return grammar.Target(said=phrase, device_ids=ranked[0][0].split("+"))


# -- statements -------------------------------------------------------------------------------------------------
_LEAD = r"^(?:from now on |remember that |learn that |note that |please remember that |know that )?"


def parse_statement(text: str, home: Home) -> Statement | None:
    """A teaching sentence or a memory question, or None."""
    t = norm(text)
    raw = text.lower()
    t = re.sub(_LEAD, "", t)
    if not t:
        return None
    # questions about the memory
    if re.fullmatch(
        r"what (?:have|did) you (?:learn|learned|learnt)(?: about me| from me| so far)?|what do you know about me"
        r"|what (?:have|did) i (?:teach|taught) you|(?:list|tell me) (?:everything |what )?you(?: have)? (?:learned|"
        r"learnt)(?: about me)?|what have you been taught",
        t,
    ):
        return Statement("list")
    if m := re.fullmatch(r"what (?:does|do) (?P<p>.+?) mean|what do i mean by (?P<p2>.+)|what is (?P<p3>.+?) again", t):
        return Statement("explain", phrase=_clean_phrase(m.group("p") or m.group("p2") or m.group("p3")))
    if m := re.fullmatch(
        r"(?:what is|who is|which is) my (?:favou?rite )?(?P<s>team|station|radio station|music|"
        r"genre|artist|band|singer|song|playlist)",
        t,
    ):
        return Statement("explain", slot=_slot(m.group("s")))
    # forgetting
    if re.fullmatch(
        r"(?:forget|delete|erase|remove|clear) (?:everything|all|all of it|all the things|all that)(?: that)?"
        r"(?: you (?:have )?(?:learned|learnt|know)| i (?:have )?taught you| you were taught)?(?: about me| from me)?"
        r"|forget (?:everything )?about me|unlearn everything",
        t,
    ):
        return Statement("forget_all")
    if m := re.fullmatch(
        r"(?:forget|unlearn) (?:what )?(?P<p>.+?)(?: means| is)?|(?:forget|delete|remove) the (?:word|phrase|name|"
        r"routine|alias) (?P<p2>.+)|forget that i (?:am|m) an? (?P<fan>.+?) fan|forget my (?:favou?rite )?"
        r"(?P<s>team|station|radio station|music|genre|artist|band|playlist)",
        t,
    ):
        if m.group("s") or m.group("fan"):
            return Statement("forget", slot=_slot(m.group("s")) if m.group("s") else "team")
        p = _clean_phrase(m.group("p") or m.group("p2"))
        if p in ("it", "about it", "that", "this") or p.startswith(("about ", "the scheduled", "all ")):
            return None  # "forget it" is a cancel word; "forget the scheduled ..." the scheduler's
        return Statement("forget", phrase=p)
    # preferences
    if m := re.fullmatch(
        r"i (?:am|m) an? (?:big |huge |massive )?(?P<v>.+?) (?:fan|supporter|stand|span|spanned)"
        r"|i (?:support|root for|cheer for) "
        r"(?P<v2>.+)|my (?:favou?rite )?team is (?P<v3>.+)|(?:i am|i m|we are|we re) (?:an? )?(?:big |huge )?fans? of "
        r"(?P<v4>.+)",
        t,
    ):
        v = m.group("v") or m.group("v2") or m.group("v3") or m.group("v4")
        return Statement("preference", slot="team", meaning=_clean_value(v))
    if m := re.fullmatch(
        r"my (?:favou?rite|preferred) (?P<s>station|radio station|radio|music|genre|kind of music|type of music|"
        r"artist|band|singer|song|playlist) is (?P<v>.+)",
        t,
    ):
        return Statement("preference", slot=_slot(m.group("s")), meaning=_clean_value(m.group("v")))
    if m := re.fullmatch(r"i (?:really )?(?:like|love|enjoy|prefer|am into|m into) (?P<v>.+?)(?: music)?", t):
        v = _clean_value(m.group("v"))
        if v in ("it", "this", "that", "this song", "that song", "this one", "you", "music") or len(v.split()) > 4:
            return None  # "I like this song" is the music skill's
        return Statement("preference", slot="music", meaning=v)
    # names for devices and rooms: "call the floor lamp bob", "the floor lamp is called bob"
    if m := re.fullmatch(r"(?:call|name|rename) (?P<rest>.+)", t):
        rest = m.group("rest")
        rest = re.sub(r"\s+(?:from now on|instead)$", "", rest)
        words = rest.split()
        for find in (_target_of, _target_heard):  # the name as said, then as the ASR may have misheard it
            for k in range(len(words) - 1, 0, -1):
                head, tail = " ".join(words[:k]), " ".join(words[k:])
                tail = re.sub(r"^(?:as|to) ", "", tail)
                tg = find(head, home)
                if tg is not None:
                    return Statement("alias", phrase=_clean_phrase(tail), target=tg, meaning=head)
        return None
    if m := re.fullmatch(r"(?P<head>.+?) (?:is|are) (?:called|named|now called) (?P<p>.+)", t):
        tg = _target_of(m.group("head"), home)
        if tg is not None:
            return Statement("alias", phrase=_clean_phrase(m.group("p")), target=tg, meaning=m.group("head"))
    # definitions: "when I say X, ...", "X means ...", "by X I mean ..."
    m = re.fullmatch(r"(?:when|if|whenever) i say (?P<rest>.+)", t)
    if m:
        also = re.fullmatch(r"(?P<p>.+?) (?:also|as well|too) (?P<m>(?:" + _VERB_RX + r") .+)", m.group("rest"))
        st = (
            _when_i_say(m.group("rest"), raw)
            if also is None
            else Statement("define", _clean_phrase(also["p"]), also["m"])
        )
        if st is not None:
            st.extra["explicit"] = True  # said to teach: an unclear meaning gets an explanation, not a guess
            if also is not None or re.match(r"(?:also|as well) ", st.meaning):
                st.extra["append"] = True  # "when I say good night, also lock the back door": added to the routine
                st.meaning = re.sub(r"^(?:also|as well) ", "", st.meaning)
        return st
    m = re.fullmatch(r"by (?P<p>.+?) i mean (?P<m>.+)|(?P<p2>.+?) (?:means|should mean|stands for) (?P<m2>.+)", t)
    if m:
        p = _clean_phrase(m.group("p") or m.group("p2"))
        meaning = (m.group("m") or m.group("m2")).strip()
        if p and meaning and len(p.split()) <= 5 and not p.startswith(("what ", "it ", "that ", "this ")):
            return Statement("define", phrase=p, meaning=meaning)
    return None


def _when_i_say(rest: str, raw: str) -> Statement | None:
    """ "good night turn off all the lights ...", "the big light i mean the ceiling light": phrase and meaning."""
    m = re.fullmatch(
        r"(?P<p>.+?) (?:i mean|i want|it means|that means|you should|please|i want you to) (?P<m>.+)", rest
    )
    if m:
        return Statement("define", phrase=_clean_phrase(m.group("p")), meaning=m.group("m").strip())
    # the comma the speaker (or Whisper) put after the phrase
    said = re.search(r"when(?:ever)? i say[,:]?\s*['\"]?(?P<p>[^,:'\"]+?)['\"]?\s*[,:]", raw)
    if said:
        p = norm(said.group("p"))
        if rest.startswith(p + " "):
            return Statement("define", phrase=_clean_phrase(p), meaning=rest[len(p) + 1 :].strip())
    words = rest.split()
    for k in range(1, min(len(words), 6)):
        if words[k] in STEP_VERBS and words[k] not in ("is", "are", "what", "how"):
            return Statement("define", phrase=" ".join(words[:k]), meaning=" ".join(words[k:]))
    return None


def _clean_value(v: str) -> str:
    v = re.sub(r"^(?:the|a|an)\s+", "", v.strip())
    return re.sub(r"\s+(?:please|now)$", "", v).strip()


def _slot(word: str) -> str:
    return {
        "station": "station",
        "radio station": "station",
        "radio": "station",
        "music": "music",
        "genre": "music",
        "kind of music": "music",
        "type of music": "music",
        "artist": "artist",
        "band": "artist",
        "singer": "artist",
        "song": "song",
        "playlist": "playlist",
        "team": "team",
    }.get(word, word)


# -- the answer to "What is study mode?" -----------------------------------------------------------------------------
@dataclass
class Meaning:
    kind: str
    """routine | value | alias | unclear"""
    steps: list[str] = field(default_factory=list)
    value: str = ""
    target: Any = None
    name: str = ""


def parse_meaning(text: str, home: Home) -> Meaning:
    """What a definition says: a value ("21 degrees"), a device or room ("the floor lamp"), or requests to run."""
    t = norm(text)
    for _ in range(2):
        t = MEANING_PREFIX.sub("", t)
    t = t.strip()
    if not t:
        return Meaning("unclear")
    if is_value(t):
        return Meaning("value", value=t)
    tg = _target_of(t, home)
    if tg is not None and not looks_like_command(t):
        return Meaning("alias", target=tg, name=re.sub(r"^(?:the|my)\s+", "", t))
    steps = split_steps(t)
    if steps and all(looks_like_command(s) or len(s.split()) >= 2 for s in steps) and looks_like_command(steps[0]):
        return Meaning("routine", steps=steps)
    return Meaning("unclear")


# -- requests with a phrase the assistant cannot map -----------------------------------------------------------------
def unknown_phrase(text: str, home: Home, known: set[str]) -> tuple[str, str] | None:
    """(phrase, kind) when a request's frame parses but one phrase means nothing here ("set my room to study mode",
    "start movie mode", "turn on bob", "set the heating to comfortable"); `known` holds the taught phrase keys."""
    from assistant.understanding.teach.memory import phrase_key

    t = norm(text)
    v = grammar.vocabulary(home)

    def new(p: str) -> bool:
        p = p.strip()
        if not p or len(p.split()) > 4 or reserved(p) or phrase_key(p) in known or is_value(p):
            return False
        if re.search(r"\d", p) or p in grammar.SPEEDS:
            return False
        return _target_of(p, home) is None and p not in v.devices

    # set my room / the house / the heating to <phrase> (mode)
    m = re.fullmatch(
        r"(?:set|put|switch|turn|change|make) (?P<t>.+?) (?:to|into|in|on) (?P<p>.+?)"
        r"(?P<mode> mode| setting| routine)?",
        t,
    )
    if m:
        target = m.group("t")
        ok_target = target in ("my room", "the room", "this room", "the house", "the home", "everything", "it", "us")
        ok_target = ok_target or _target_of(target, home) is not None
        p = m.group("p") + (m.group("mode") or "")
        if ok_target and new(p) and (m.group("mode") or new(m.group("p"))):
            return p.strip(), "routine" if m.group("mode") or not _is_device_target(target, home) else "value"
    m = re.fullmatch(
        r"(?:start|activate|run|begin|enter|go into|switch to|turn on|trigger|do|it is|it s|time for) (?:the |my )?"
        r"(?P<p>.+?) (?P<mode>mode|routine)",
        t,
    )
    if m and new(m.group("p") + " " + m.group("mode")):
        return f"{m.group('p')} {m.group('mode')}", "routine"
    m = re.fullmatch(r"(?:turn|switch) (?:on|off) (?P<p>.+)|(?:turn|switch) (?P<p2>.+?) (?:on|off)", t)
    if m:
        p = re.sub(r"^(?:the|my)\s+", "", m.group("p") or m.group("p2"))
        words = p.split()
        if words and not (set(words) & v.known_words) and new(p) and len(words) <= 3:
            return p, "alias"
    return None


def _is_device_target(target: str, home: Home) -> bool:
    tg = _target_of(target, home)
    return tg is not None and bool(tg.device_ids)
