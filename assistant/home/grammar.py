"""Home commands as people say them: a deterministic sentence grammar over the home's own vocabulary.

In the spirit of Home Assistant's hassil templates: a sentence is parsed only when a command pattern matches it
*and* its target phrase is made of words this home knows (device names and aliases, area and floor names, domain
and device-class words, "here", "it"/"them", "all"/"every"). Anything else returns None and the NLU model decides.
A target phrase with a leftover noun the home does not know ("lock the front door" with no such lock) is kept as
`unknown`, so the skill can say so instead of acting on some other device.

`parse(text, home, now)` -> `Command | None`. Pure logic, no models: tests/unit/test_home_grammar.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from assistant.understanding import spoken

if TYPE_CHECKING:
    from assistant.home.model import Home

# noun -> (device types, device classes or None for any). Plural forms are derived (+s) unless listed.
NOUNS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "light": (("light",), None),
    "lamp": (("light",), None),
    "bulb": (("light",), None),
    "lighting": (("light",), None),
    "lamps": (("light",), None),
    "switch": (("switch",), None),
    "switches": (("switch",), None),
    "plug": (("plug", "switch"), None),
    "socket": (("plug",), None),
    "outlet": (("plug", "switch"), None),
    "smart plug": (("plug",), None),
    "fan": (("fan",), None),
    "ceiling fan": (("fan",), None),
    "blind": (("cover",), ("blind", "shade", "shutter")),
    "shade": (("cover",), ("shade", "blind")),
    "shutter": (("cover",), ("shutter",)),
    "curtain": (("cover",), ("curtain",)),
    "drapes": (("cover",), ("curtain",)),
    "awning": (("cover",), ("awning",)),
    "window": (("cover", "binary_sensor"), ("window",)),
    "garage door": (("cover", "binary_sensor"), ("garage", "garage_door")),
    "garage": (("cover",), ("garage",)),
    "gate": (("cover",), ("gate",)),
    "door": (("cover", "lock", "binary_sensor"), ("door", "garage", "garage_door", "lock", "opening")),
    "cover": (("cover",), None),
    "lock": (("lock",), None),
    "door lock": (("lock",), None),
    "thermostat": (("thermostat",), None),
    "heating": (("thermostat",), None),
    "central heating": (("thermostat",), None),
    "ac": (("thermostat",), None),
    "air conditioning": (("thermostat",), None),
    "climate": (("thermostat",), None),
    "heater": (("heater",), None),
    "radiator": (("heater",), None),
    "tv": (("tv", "media_player"), ("tv",)),
    "television": (("tv", "media_player"), ("tv",)),
    "telly": (("tv", "media_player"), ("tv",)),
    "speaker": (("speaker", "display", "media_player"), None),
    "media player": (("media_player", "tv"), None),
    "vacuum": (("vacuum",), None),
    "robot vacuum": (("vacuum",), None),
    "hoover": (("vacuum",), None),
    "vacuum cleaner": (("vacuum",), None),
    "roomba": (("vacuum",), None),
    "oven": (("oven",), None),
    "cooker": (("oven",), None),
    "kettle": (("kettle",), None),
    "coffee machine": (("coffee_machine",), None),
    "coffee maker": (("coffee_machine",), None),
    "sensor": (("sensor", "binary_sensor"), None),
    "thermometer": (("sensor",), ("temperature",)),
    "temperature sensor": (("sensor",), ("temperature",)),
    "motion sensor": (("binary_sensor",), ("motion",)),
    "smoke alarm": (("binary_sensor",), ("smoke",)),
    "smoke detector": (("binary_sensor",), ("smoke",)),
    "scene": (("scene",), None),
    "script": (("script",), None),
    "device": ((), None),
    "thing": ((), None),
    "everything": ((), None),
    "anything": ((), None),
}
NOUN_FOR_TYPE = {
    "light": "light",
    "switch": "switch",
    "plug": "plug",
    "fan": "fan",
    "cover": "cover",
    "lock": "lock",
    "thermostat": "thermostat",
    "heater": "heater",
    "tv": "tv",
    "speaker": "speaker",
    "vacuum": "vacuum",
    "oven": "oven",
    "media_player": "media player",
    "sensor": "sensor",
    "binary_sensor": "sensor",
}
IRREGULAR_PLURALS = {
    "switches": "switch",
    "lamps": "lamp",
    "drapes": "drapes",
    "everything": "everything",
    "anything": "anything",
    "lighting": "lighting",
    "heating": "heating",
    "blinds": "blind",
}
ALL_WORDS = (
    "all of the",
    "all the",
    "all",
    "every single",
    "every",
    "each",
    "both of the",
    "both the",
    "both",
    "any of the",
    "any",
    "the whole",
)
HERE_WORDS = ("in here", "here", "in this room", "in the room")
HOME_WORDS = (
    "in the house",
    "in the whole house",
    "in the home",
    "everywhere",
    "in every room",
    "in all rooms",
    "around the house",
    "in the flat",
    "in the apartment",
    "throughout the house",
)
PRONOUNS = {
    "it",
    "them",
    "they",
    "those",
    "these",
    "that",
    "this",
    "that one",
    "this one",
    "all of them",
    "both of them",
    "the same",
    "those too",
}
FILLER = r"(please|for me|now|right now|thanks|thank you|ok|okay|quickly|again)"

COLOR_TEMPS = {
    "candle light": 1900,
    "candlelight": 1900,
    "warm white": 2700,
    "warm": 2700,
    "soft white": 3000,
    "neutral white": 4000,
    "neutral": 4000,
    "natural white": 4000,  # "make the lights natural": people mean a neutral white, not a colour
    "natural light": 4000,
    "natural": 4000,
    "cool white": 5000,
    "cool": 5000,
    "cold white": 6000,
    "daylight": 6500,
    "day light": 6500,
}
COLORS = (
    "white",
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "pink",
    "violet",
    "magenta",
    "cyan",
    "turquoise",
    "teal",
    "lavender",
    "gold",
    "amber",
    "lime",
    "indigo",
    "crimson",
)
SPEEDS = {
    "low": "low",
    "slow": "low",
    "minimum": "low",
    "medium": "medium",
    "mid": "medium",
    "middle": "medium",
    "high": "high",
    "fast": "high",
    "full": "high",
    "maximum": "high",
    "max": "high",
}


@dataclass
class Target:
    """What a request names. Resolved against the home by `assistant.home.targets.select`."""

    said: str = ""
    device_ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    classes: list[str] | None = None
    noun: str | None = None
    areas: list[str] = field(default_factory=list)
    floor: str | None = None
    plural: bool = False
    all: bool = False
    here: bool = False
    home: bool = False
    pronoun: bool = False
    outdoor: bool = False
    unknown: str | None = None
    """Words naming something the home does not have ("front door")."""
    area_options: list[str] = field(default_factory=list)
    """A room said by part of its name ("bedroom"): the areas it may be; the speaking satellite's decides."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Target:
        return cls(**d)


@dataclass
class Command:
    action: str
    """turn_on, turn_off, toggle, brightness, color, color_temp, open, close, position, lock, unlock, fan_speed,
    set_temperature, set_mode, media, volume, mute, unmute, vacuum, activate, query, schedule_list, schedule_cancel,
    all_of_them"""
    target: Target = field(default_factory=Target)
    params: dict[str, Any] = field(default_factory=dict)
    delay_s: int | None = None
    at: str | None = None
    """ISO local datetime for "at 7 pm close the blinds"."""
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = self.target.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Command:
        d = dict(d)
        d["target"] = Target.from_dict(d.get("target") or {})
        return cls(**d)


class _Match:
    """A match of one alternative of a pattern; groups the alternative lacks are None."""

    def __init__(self, m: re.Match[str]) -> None:
        self.m = m

    def group(self, g: int | str = 0) -> Any:
        try:
            return self.m.group(g)
        except (IndexError, KeyError):
            return None


_ALT_CACHE: dict[str, list[re.Pattern[str]]] = {}


def _alternatives(pattern: str) -> list[str]:
    out, depth, cur, i, in_class = [], 0, [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            cur.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def _fm(pattern: str, text: str) -> _Match | None:
    """re.fullmatch over the top-level alternatives of `pattern` one by one, so they may reuse group names."""
    pats = _ALT_CACHE.get(pattern)
    if pats is None:
        pats = _ALT_CACHE[pattern] = [re.compile(a) for a in _alternatives(pattern)]
    for rx in pats:
        m = rx.fullmatch(text)
        if m:
            return _Match(m)
    return None


# ---------------------------------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    t = text.lower().replace("’", "'").replace("%", " percent")
    t = re.sub(r"[^\w\s:'.-]", " ", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)
    t = re.sub(r"\b(what|where|how|that|it|who)'s\b", r"\1 is", t)
    t = re.sub(r"(\w)'s\b", r"\1s", t)  # "the kid's room" = "the kids room"
    t = re.sub(r"(\w)s'(?=\s|$)", r"\1s", t)  # "the kids' room"
    # what the ASR makes of a few home words
    t = re.sub(r"\bt [vb]\b|\btb\b", "tv", t)
    t = re.sub(r"\bis their\b", "is there", t)
    t = re.sub(r"^(open|close|lock|unlock|shut) to\b", r"\1 the", t)
    t = re.sub(r"^toggled\b", "toggle", t)
    t = re.sub(r"\bground for\b", "ground floor", t)
    # verbs the ASR mishears at the start of a request (none of these starts a request of its own)
    for heard, said in (
        ("cause", "pause"),
        ("plus", "close"),
        ("chat", "shut"),
        ("check off", "shut off"),
        ("know", "no"),
        ("right in", "brighten"),
        ("then the", "dim the"),
        ("one the", "run the"),
    ):
        if re.match(rf"^(?:and |so |then )?{heard}\b", t) and not re.match(
            r"^then the (?:lights?|lamps?) (?:on|off)\b", t
        ):
            t = re.sub(rf"^(?:and |so |then )?{heard}\b", said, t)
    t = re.sub(r"\b(\w+)n't\b", lambda m: {"can": "can not", "won": "will not"}.get(m.group(1), m.group(1) + " not"), t)
    t = t.replace("-", " ")
    t = spoken.digits(t)
    t = re.sub(r"\b(1st|2nd|3rd)\b", lambda m: {"1st": "first", "2nd": "second", "3rd": "third"}[m.group(1)], t)
    t = re.sub(r"\bhalf 1 hour\b", "half an hour", t)
    t = re.sub(r"\bquarter of 1 hour\b", "quarter of an hour", t)
    t = re.sub(r"\b(a\.m\.|a m)\b", "am", t)
    t = re.sub(r"\b(p\.m\.|p m)\b", "pm", t)
    t = re.sub(r"^(hey |ok |okay )?(jarvis|alexa|assistant|computer)\b,?\s*", "", t)
    t = " ".join(t.split())
    for _ in range(3):
        t = re.sub(
            r"^(please|can you|could you|would you|will you|can u|i want you to|i would like you to|"
            r"i'd like you to|go ahead and|kindly|just|hey|and|also|then|now|so)\s+",
            "",
            t,
        )
        t = re.sub(rf"\s+{FILLER}$", "", t)
    if re.match(r"^(i want|i would like|i'd like) (the )?\w+ (on|off|to)\b", t):
        t = re.sub(r"^(i want|i would like|i'd like) (the )?", "", t)
    # "i need the back door unlocked" -> "unlock the back door" (a wished-for state said after the device)
    m = re.match(r"^(?:i want|i need|i would like|i'd like) (.+?) (unlocked|locked|opened|open|closed|shut)$", t)
    if m:
        verb = {"unlocked": "unlock", "locked": "lock", "opened": "open", "open": "open"}.get(m.group(2), "close")
        t = f"{verb} {m.group(1)}"
    return t.strip()


_DUR = (
    r"(?:(?:\d+(?:\.\d+)?|a|an|one|half an?)\s*(?:hours?|hrs?|minutes?|mins?|seconds?|secs?)(?:\s+and\s+a\s+half)?"
    r"(?:\s*(?:and\s+)?\d+\s*(?:minutes?|mins?|seconds?|secs?))?|half an hour|a quarter of an hour"
    r"|quarter of an hour|an hour and a half)"
)
_CLOCK = (
    r"(?:\d{1,2}(?::\d{2})?\s*(?:am|pm|o'?clock)?(?:\s+(?:tonight|this evening|in the evening|in the morning|"
    r"tomorrow|tomorrow morning|tomorrow evening))?|noon|midnight)"
)


def _split_when(t: str, now: datetime) -> tuple[str, int | None, str | None]:
    """Take a leading or trailing 'in ten minutes' / 'at 7 pm' off the command."""
    for rx in (rf"^(?:(?:in|after|and)\s+)?({_DUR})\s*,?\s*(?:then\s+)?(.+)$", rf"^(.+?)\s+(?:in|after)\s+({_DUR})$"):
        m = re.match(rx, t)  # "and ten minutes ...": how the ASR often hears "in ten minutes ..."
        if m:
            dur, rest = (m.group(1), m.group(2)) if rx.startswith("^(?:(?:in") else (m.group(2), m.group(1))
            secs = spoken.parse_duration(dur)
            if secs:
                return rest.strip(" ,"), int(secs), None
    for rx in (
        rf"^(?:at|by)\s+({_CLOCK})\s*,?\s*(?:then\s+)?(.+)$",
        rf"^(.+?)\s+(?:at|by)\s+({_CLOCK})$",
        r"^(\d{1,2}(?::\d{2})?\s*(?:am|pm))\s*,?\s*(.+)$",  # "and 9 pm ...": the ASR's "and" for "at"
        rf"^(tonight|tomorrow(?: morning| evening)?) at ({_CLOCK})\s*,?\s*(.+)$",
    ):
        m = re.match(rx, t)
        if not m:
            continue
        if rx.startswith("^(tonight"):
            clock, rest = f"{m.group(2)} {m.group(1)}", m.group(3)
        else:
            first = rx.startswith(("^(?:at", "^(\\d"))
            clock, rest = (m.group(1), m.group(2)) if first else (m.group(2), m.group(1))
        hhmm = spoken.parse_time(clock, now, prefer_future=True)
        if not hhmm:
            continue
        h, mi = (int(x) for x in hhmm.split(":"))
        due = now.replace(hour=h, minute=mi, second=0, microsecond=0)
        if "tomorrow" in clock or due <= now:
            due += timedelta(days=1)
        return rest.strip(" ,"), None, due.isoformat(timespec="seconds")
    return t, None, None


# ---------------------------------------------------------------------------------------------------------------
class Vocabulary:
    """The words of one home: device names, area and floor names, and the generic nouns."""

    def __init__(self, home: Home) -> None:
        from assistant.text import norm_key

        self.home = home
        self.key = norm_key
        self.devices: dict[str, list[str]] = {}
        for d in home.devices.values():
            for n in d.names:
                k = self._k(n)
                if k:
                    self.devices.setdefault(k, [])
                    if d.id not in self.devices[k]:
                        self.devices[k].append(d.id)
        self.areas: dict[str, str] = {}
        for a in home.areas.values():
            for n in (a.name, *a.aliases, a.id.replace("_", " ")):
                self.areas.setdefault(self._k(n), a.id)
        # rooms this home names with a possessive ("my room" for the bedroom) -> the room's own name, longest first
        self.possessive_areas: list[tuple[str, str]] = sorted(
            ((k, self._k(home.areas[a].name)) for k, a in self.areas.items() if re.match(r"(my|our|your) ", k)),
            key=lambda kv: -len(kv[0]),
        )
        # a room said by the last word of its name ("bedroom" for "master bedroom"): every area it could be
        self.partial_areas: dict[str, list[str]] = {}
        for a in home.areas.values():
            for n in (a.name, *a.aliases):
                words = self._k(n).split()
                if len(words) > 1 and words[-1] not in ("room", "area", "floor", "level"):
                    lst = self.partial_areas.setdefault(words[-1], [])
                    if a.id not in lst:
                        lst.append(a.id)
        for k in list(self.partial_areas):
            if k in self.areas:
                del self.partial_areas[k]
        self.floors: dict[str, str] = {}
        for f in home.floors.values():
            for n in (f.name, *f.aliases, f.id.replace("_", " ")):
                self.floors.setdefault(self._k(n), f.id)
        if home.floors:
            levels = sorted((f.level if f.level is not None else i, f.id) for i, f in enumerate(home.floors.values()))
            self.floors.setdefault("downstairs", levels[0][1])
            self.floors.setdefault("ground floor", levels[0][1])
            if len(levels) > 1:
                self.floors.setdefault("upstairs", levels[-1][1])
                self.floors.setdefault("top floor", levels[-1][1])
        self.nouns: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, bool]] = {}
        for n, sel in NOUNS.items():
            plural = IRREGULAR_PLURALS.get(n) is not None and n not in (
                "everything",
                "anything",
                "heating",
                "lighting",
                "drapes",
            )
            self.nouns.setdefault(n, (*sel, plural or n in ("everything", "drapes")))
            if n not in IRREGULAR_PLURALS:
                pl = n + ("es" if n.endswith(("sh", "ch", "x")) else "s")
                self.nouns.setdefault(pl, (*sel, True))
        self.nouns["blinds"] = (*NOUNS["blind"], True)
        import jellyfish

        for n in list(self.devices):  # "backdoor" for "back door"
            if n.count(" ") == 1 and n.replace(" ", "") not in self.devices:
                self.devices[n.replace(" ", "")] = list(self.devices[n])
        self._keys = {n: " ".join(jellyfish.metaphone(w) for w in n.split()) for n in self.devices}
        # a place word misheard ("downsters" for "downstairs"): the one area or floor word that sounds the same
        place_words = {w for k in (*self.areas, *self.floors) for w in k.split() if len(w) >= 4}
        by_key: dict[str, set[str]] = {}
        for w in place_words:
            by_key.setdefault(jellyfish.metaphone(w), set()).add(w)
        self.place_sound = {k: next(iter(ws)) for k, ws in by_key.items() if len(ws) == 1}
        self.known_words = {w for k in (*self.devices, *self.areas, *self.floors, *self.nouns) for w in k.split()}

    def sounds_like(self, phrase: str) -> str | None:
        """The one device name that sounds like `phrase` (an ASR slip: "hole light" for "hall light", "lead strip"
        for "led strip"): equal metaphone keys or a close spelling, with no other device near; else None."""
        import jellyfish
        from rapidfuzz import fuzz

        key = " ".join(jellyfish.metaphone(w) for w in phrase.split())
        scored: dict[str, float] = {}
        for name, ids in self.devices.items():
            s = 100.0 if self._keys.get(name) == key else fuzz.ratio(phrase, name)
            for i in ids:
                scored[i] = max(scored.get(i, 0.0), s)
        ranked = sorted(scored.items(), key=lambda x: -x[1])
        if ranked and ranked[0][1] >= 90 and (len(ranked) < 2 or ranked[0][1] - ranked[1][1] >= 8):
            return next(n for n, ids in self.devices.items() if ranked[0][0] in ids)
        return None

    @staticmethod
    def _k(s: str) -> str:
        s = re.sub(r"(\w)'s\b", r"\1s", s.lower()).replace("-", " ")
        s = re.sub(r"[^\w\s']", " ", s)
        return " ".join(s.split())

    def device_names_sorted(self) -> list[str]:
        return sorted(self.devices, key=len, reverse=True)


_VOCAB_CACHE: dict[int, tuple[Any, Vocabulary]] = {}


def vocabulary(home: Home) -> Vocabulary:
    hit = _VOCAB_CACHE.get(id(home))
    if hit is not None and hit[0] is home:
        return hit[1]
    v = Vocabulary(home)
    _VOCAB_CACHE[id(home)] = (home, v)
    return v


def _strip_all(p: str) -> tuple[str, bool]:
    for w in ALL_WORDS:
        if p == w:
            return "", True
        if p.startswith(w + " "):
            return p[len(w) + 1 :], True
    return p, False


def parse_target(phrase: str, home: Home) -> Target | None:
    """A target phrase ("all the lights downstairs", "the kitchen light", "it") -> Target, or None when it is not
    a phrase about this home's devices at all."""
    v = vocabulary(home)
    p = " ".join(phrase.split()).strip(" ,")
    t = Target(said=p)
    if p in PRONOUNS or _fm(r"(all|both) of (them|those)|them all|them both|all of it", p):
        t.pronoun = True
        t.all = p.startswith(("all", "both")) or p.endswith(("all", "both"))
        return t
    p = _fix_place_words(p, v)
    p0 = re.sub(r"^(the|a)\s+", "", p)
    if re.search(r"\s(and|,)\s|,", p) and p0 not in v.devices:  # "the kitchen light and the desk lamp"
        parts = [x for x in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s+(?=the\s)", p) if x.strip()]
        subs = [parse_target(x, home) for x in parts] if len(parts) > 1 else []
        if subs and all(x is not None and x.device_ids and not x.unknown for x in subs):
            ids = list(dict.fromkeys(i for x in subs for i in x.device_ids))
            return Target(said=p, device_ids=ids, plural=True)
    if p0 in v.devices:
        t.device_ids = list(v.devices[p0])
        return t
    # a room this home names with a possessive ("my room" for the bedroom) is that room, not "the room" (here)
    for key, name in v.possessive_areas:
        if p == key or p.endswith(" " + key):
            p = p[: len(p) - len(key)] + name
            break
        if re.match(rf"(the )?{re.escape(key)} ", p):  # "my room light"
            p = re.sub(rf"^(the )?{re.escape(key)} ", name + " ", p)
            break
    p = re.sub(r"\b(the|my|our|your)\b", " ", p)
    p = " ".join(p.split())
    p, t.all = _strip_all(p)
    p = re.sub(r"^(of )?", "", p).strip()
    p = " ".join(re.sub(r"\b(the|my|our)\b", " ", p).split())
    # location at the end: "in the kitchen", "downstairs", "here", "on the first floor", "in the house"
    changed = True
    while changed and p:
        changed = False
        for w in HOME_WORDS:
            w2 = " ".join(re.sub(r"\bthe\b", " ", w).split())
            if p.endswith(" " + w2) or p == w2:
                p, t.home, changed = p[: -len(w2)].strip(), True, True
        for w in HERE_WORDS:
            w2 = " ".join(re.sub(r"\bthe\b", " ", w).split())
            if p.endswith(" " + w2) or p == w2:
                p, t.here, changed = p[: -len(w2)].strip(), True, True
        if p in ("outside", "outdoors") or p.endswith((" outside", " outdoors")):
            p, t.outdoor, changed = re.sub(r"\s*(outside|outdoors)$", "", p).strip(), True, True
        mo = re.match(r"^(?:outdoor|outside|exterior) (.+)$", p)  # "the outdoor lights": outside, not a name
        if mo and mo.group(1) in v.nouns and p not in v.devices:
            p, t.outdoor, changed = mo.group(1), True, True
        m = re.match(r"^(.*?)\s*\b(?:in|on|at|of|from|for|upstairs in|downstairs in)\s+(.+)$", p)
        if m and m.group(2) in v.partial_areas and not t.area_options:
            t.area_options = list(v.partial_areas[m.group(2)])
            p, changed = m.group(1).strip(), True
            continue
        ma = re.match(r"^(.+?)\s+and\s+(.+)$", p)  # "the lights and the garage": the ASR's "and" for "in"
        if ma and ma.group(2) in v.areas and ma.group(2) not in v.devices and ma.group(1) in v.nouns:
            if v.areas[ma.group(2)] not in t.areas:
                t.areas.append(v.areas[ma.group(2)])
            p, changed = ma.group(1).strip(), True
            continue
        if m and re.search(r"\s(and|or)\s", m.group(2)):  # "in the kitchen and the living room"
            places = [re.sub(r"^the\s+", "", x) for x in re.split(r"\s*,\s*|\s+(?:and|or)\s+", m.group(2)) if x]
            if all(x in v.areas for x in places):
                t.areas += [v.areas[x] for x in places if v.areas[x] not in t.areas]
                p, changed = m.group(1).strip(), True
                continue
        if m and (
            m.group(2) in v.areas
            or m.group(2) in v.floors
            or re.sub(r"\s*(floor|room|area)$", "", m.group(2)) in v.areas
        ):
            loc = m.group(2)
            loc2 = re.sub(r"\s*(room|area)$", "", loc)
            if loc in v.areas or loc2 in v.areas:
                area = v.areas.get(loc) or v.areas[loc2]
                if area not in t.areas:
                    t.areas.append(area)
            else:
                t.floor = v.floors[loc]
            p, changed = m.group(1).strip(), True
            p = re.sub(r"\s+(and|or)$", "", p)
        else:
            for f in sorted(v.floors, key=len, reverse=True):
                if p.endswith(" " + f) or p == f:
                    t.floor, p, changed = v.floors[f], p[: -len(f)].strip(), True
                    break
    p = " ".join(re.sub(r"\b(the|my)\b", " ", p).split())
    if p in v.areas and p not in v.devices:  # "dim the living room": the room itself
        t.areas.append(v.areas[p])
        p = ""
    elif p in v.floors and p not in v.devices:
        t.floor, p = v.floors[p], ""
    if not p and (t.areas or t.floor or t.here or t.home):
        t.noun = "everything"
        t.plural = True
        return t
    # the whole phrase (with its location words back on) may be one device's name: "living room window"
    full = " ".join(x for x in (p,) if x)
    if full in v.devices:
        t.device_ids = list(v.devices[full])
        return t
    if t.areas and len(t.areas) == 1:
        area = home.areas[t.areas[0]]
        for an in (area.name, *area.aliases):
            k = v._k(an)
            for cand in (f"{k} {p}", f"{p} in {k}"):
                if cand in v.devices:
                    t.device_ids = list(v.devices[cand])
                    return t
    # an area or floor word in front: "kitchen lights", "downstairs lights", "bedroom and office lights"
    for _ in range(3):
        hit = False
        for a in sorted(v.areas, key=len, reverse=True):
            if a and p.startswith(a + " "):
                if v.areas[a] not in t.areas:
                    t.areas.append(v.areas[a])
                p, hit = p[len(a) + 1 :].strip(), True
                p = re.sub(r"^(and|or)\s+", "", p)
                break
        if not hit:
            for f in sorted(v.floors, key=len, reverse=True):
                if p.startswith(f + " "):
                    t.floor, p, hit = v.floors[f], p[len(f) + 1 :].strip(), True
                    break
        if not hit and not t.area_options and not t.areas:
            for a in sorted(v.partial_areas, key=len, reverse=True):
                if p.startswith(a + " ") and p[len(a) + 1 :] in v.nouns:
                    t.area_options, p, hit = list(v.partial_areas[a]), p[len(a) + 1 :].strip(), True
                    break
        if not hit:
            break
    if p in v.devices:
        ids = v.devices[p]
        if t.areas:
            ids = [i for i in ids if home.devices[i].area in t.areas]
        if t.floor:
            ids = [i for i in ids if home.floor_of(home.devices[i].area) == t.floor]
        if ids:
            t.device_ids = list(ids)
            return t
        # "the upstairs thermostat" when the one thermostat is downstairs: a kind of device in a place that lacks it
        if p in v.nouns:
            types, classes, plural = v.nouns[p]
            t.types, t.classes, t.noun, t.plural = list(types), list(classes) if classes else None, p, plural
            return t
        t.types = sorted({home.devices[i].type for i in v.devices[p]})
        t.noun = NOUN_FOR_TYPE.get(t.types[0], p) if len(t.types) == 1 else p
        return t
    if p in v.nouns:
        types, classes, plural = v.nouns[p]
        t.types, t.classes, t.noun, t.plural = list(types), list(classes) if classes else None, p, plural
        return t
    # brand and kind words before a noun name no particular device: "the smart plug socket", "robot vacuum cleaner"
    bare = re.sub(
        r"^(?:(?:smart|wemo|hue|philips|kasa|wifi|wi fi|robot|electric|automatic|main|house|home|room)\s+)+", "", p
    )
    bare = re.sub(r"\s+(?:socket|sockets|cleaner|bulb|bulbs)$", "", bare) if bare not in v.nouns else bare
    if bare != p and bare in v.nouns:
        types, classes, plural = v.nouns[bare]
        t.types, t.classes, t.noun, t.plural = list(types), list(classes) if classes else None, bare, plural
        if re.match(r"^(house|home)\b", p):
            t.home = True
        elif re.match(r"^room\b", p):
            t.here = True
        return t
    # a name word before a noun: "front door", "desk lamp" (unknown name) or a plural name ("kitchen lights")
    words = p.split()
    for n in (2, 1):
        if len(words) > n and " ".join(words[-n:]) in v.nouns:
            noun = " ".join(words[-n:])
            types, classes, plural = v.nouns[noun]
            t.types, t.classes, t.noun, t.plural = list(types), list(classes) if classes else None, noun, plural
            singular = re.sub(r"(es|s)$", "", p) if plural else p
            if singular in v.devices:
                t.device_ids = list(v.devices[singular])
                return t
            rest = " ".join(words[:-n])
            if rest in v.devices and (
                not types
                or any(
                    home.devices[i].type in types or home.devices[i].type in ("switch", "plug") for i in v.devices[rest]
                )
            ):
                t.device_ids = list(v.devices[rest])  # "the christmas tree lights" for a switch named christmas tree
                t.types, t.classes, t.noun = [], None, None
                return t
            heard = v.sounds_like(p)
            if heard is not None:
                t.device_ids, t.types, t.classes, t.noun = list(v.devices[heard]), [], None, None
                return t
            t.unknown = p
            return t
    heard = v.sounds_like(p) if len(p) >= 6 else None
    whole = " ".join(re.sub(r"\b(the|my|our)\b", " ", phrase).split())
    if heard is None and whole != p and len(whole) >= 6:
        heard = v.sounds_like(whole)
    if heard is not None:
        t.device_ids = list(v.devices[heard])
        return t
    if p.endswith("s") and p[:-1] in v.devices:  # "the tvs" -> a device named "tv"
        t.device_ids = list(v.devices[p[:-1]])
        t.plural = True
        return t
    return None


def _fix_place_words(p: str, v: Vocabulary) -> str:
    import jellyfish

    words = p.split()
    for i, w in enumerate(words):
        if len(w) >= 4 and w not in v.known_words and w not in ("the", "all", "every", "with", "from", "here"):
            hit = v.place_sound.get(jellyfish.metaphone(w))
            if hit is not None:
                words[i] = hit
    return " ".join(words)


# ---------------------------------------------------------------------------------------------------------------
def _target(phrase: str, home: Home, allow_unknown: bool = True) -> Target | None:
    t = parse_target(phrase, home)
    if t is None or (t.unknown and not allow_unknown):
        return None
    return t


def _num(s: str | None) -> int | None:
    if not s:
        return None
    n = spoken.parse_number(s)
    return round(n) if n is not None else None


_TGT = r"(?P<t>.+?)"
_PCT = r"(?P<n>\d+(?:\.\d+)?)\s*(?:percent|per cent)?"
_DEG = r"(?P<n>\d+(?:\.\d+)?)\s*(?:degrees?)?\s*(?:celsius|centigrade|fahrenheit|c|f)?"


def parse(text: str, home: Home, now: datetime | None = None) -> Command | None:
    """The command in `text`, or None when the grammar is not certain (then the NLU model decides)."""
    now = now or datetime.now()
    t = normalize(text)
    if not t:
        return None
    t, delay, at = _split_when(t, now)
    t = re.sub(r"^(open|close|lock|unlock|shut) to\b", r"\1 the", t)
    cmd = _parse_core(t, home)
    if cmd is None:
        return None
    cmd.text = text
    if delay or at:
        if cmd.action in ("query", "schedule_list", "schedule_cancel", "all_of_them"):
            return None
        cmd.delay_s, cmd.at = delay, at
    return cmd


def _parse_core(t: str, home: Home) -> Command | None:
    for fn in (_schedule, _correction, _question, _action):
        cmd = fn(t, home)
        if cmd is not None:
            return cmd
    return None


def _schedule(t: str, home: Home) -> Command | None:
    things = r"(scheduled|delayed|pending|planned|timed)\s+(actions?|commands?|tasks?|events?|changes?|things?)"
    if _fm(r"what( is)?( the)? schedule[ds]?|(list|show|this)( me)? my schedule[ds]? (actions|commands|tasks)", t):
        return Command("schedule_list")
    if _fm(
        rf"(what|which) (are|is) (the |my )?{things}( are there)?|(list|show)( me)?( all)? (the |my )?{things}"
        rf"|what (is|have you got|do i have|have i got) scheduled|what is (planned|scheduled)( for later)?"
        rf"|(are there|do i have|is there) any {things}",
        t,
    ):
        return Command("schedule_list")
    m = _fm(
        rf"(cancel|delete|remove|stop|forget)( all)?( of)? (the |my |that |this )?({things}|schedule"
        rf"|scheduled (light|lights|blinds|command|action))(?P<rest> .+)?",
        t,
    )
    if m:
        plural = bool(re.search(r"(actions|commands|tasks|events|changes|things)\b", m.group(0)))
        return Command(
            "schedule_cancel", params={"all": bool(m.group(2)) or plural, "what": (m.group("rest") or "").strip()}
        )
    m = _fm(
        r"(cancel|cancelled|canceled|delete|remove|stop|forget) (the |my |that )?"
        r"(scheduled|delayed|pending|planned|timed) "
        r"(?P<rest>.+)",
        t,
    )
    if m:
        return Command("schedule_cancel", params={"all": False, "what": m.group("rest")})
    m = _fm(
        r"(do not|don't|never mind|cancel) (?P<rest>(turn|switch|close|open|lock|unlock|dim|set) .+?)"
        r"( later| after all)?",
        t,
    )
    if m:
        return Command("schedule_cancel", params={"all": False, "what": m.group("rest")})
    return None


def _correction(t: str, home: Home) -> Command | None:
    if _fm(
        r"(no,? |not that |not just that |i said |i meant )*(all|both|every one|each) of (them|those)"
        r"( please)?|(no,? )?(i said |i meant )?(all|both)( of them)?( please)?|no,? all the \w+"
        r"|no,? (i said |i meant )?(all|every|both)( of)? (the )?\w+",
        t,
    ) and t.startswith(("no", "all", "both", "i said", "i meant", "not")):
        noun = re.search(r"(?:all|every|both)(?: of)? (?:the )?(\w+)$", t)
        return Command(
            "all_of_them",
            params={"noun": noun.group(1) if noun and noun.group(1) not in ("them", "those", "please") else None},
        )
    return None


# -- questions ---------------------------------------------------------------------------------------------------
_STATES = {
    "lock": ("locked", True),
    "unlock": ("locked", False),
    "on": ("on", True),
    "off": ("on", False),
    "open": ("open", True),
    "opened": ("open", True),
    "closed": ("open", False),
    "shut": ("open", False),
    "locked": ("locked", True),
    "unlocked": ("locked", False),
    "running": ("on", True),
    "playing": ("playing", True),
    "paused": ("playing", False),
    "still on": ("on", True),
    "left on": ("on", True),
    "left open": ("open", True),
    "left unlocked": ("locked", False),
    "still open": ("open", True),
    "cleaning": ("cleaning", True),
    "docked": ("cleaning", False),
    "muted": ("muted", True),
}
_STATE_RX = "|".join(sorted(_STATES, key=len, reverse=True))
_LOC = r"(?P<loc>\s+(?:in|on|at|upstairs|downstairs|here|in here|outside)\b.*)?"


def _question(t: str, home: Home) -> Command | None:
    # what is the thermostat set to / what temperature is the heating set to
    m = _fm(
        r"(what is|what) (?:temperature |the temperature )?(is )?(?P<t>.+?) set (to|at)|what temperature is "
        r"(?P<t2>.+?) set (to|at)|what is the target temperature(?: (?:of|on|for) (?P<t3>.+))?",
        t,
    )
    if m:
        tg = _target(m.group("t") or m.group("t2") or m.group("t3") or "thermostat", home, allow_unknown=False)
        if tg is None:
            return None
        return Command("query", tg, {"kind": "setting"})
    # temperature / humidity of a place
    m = _fm(
        r"(what is|what|tell me|give me|what are|how is) (the )?(current )?(?P<out>outside |outdoor )"
        r"(?P<what>temperature|temp|humidity)"
        r"|(what is|what|tell me|give me|what are|how is) (the )?(current |indoor |room |inside )?"
        r"(?P<what>temperature|temp|humidity)(?: reading| level)?(?P<loc> .+)?"
        r"|how (?P<adj>warm|hot|cold|humid) is it(?P<loc2> .+)?"
        r"|(?:what is|what) (?:the )?(?P<what2>temperature|humidity) (?:like )?(?P<loc3>.+)?"
        r"|(?:what is|what) (?:the )?(?:current )?(?P<what4>temperature|humidity) (?:of|on|from)"
        r" (?P<dev>.+)",
        t,
    )
    if m:
        what = (
            m.group("what")
            or m.group("what2")
            or m.group("what4")
            or ("humidity" if m.group("adj") == "humid" else "temperature")
        )
        what = "temperature" if what == "temp" else what
        if m.group("dev"):
            tg = _target(m.group("dev"), home, allow_unknown=False)
            if tg is None:
                return None
            return Command("query", tg, {"kind": "reading", "what": what})
        loc = (m.group("loc") or m.group("loc2") or m.group("loc3") or m.group("out") or "").strip()
        loc = re.sub(r"^(like|right now|now|currently)\s*", "", loc).strip()
        loc = re.sub(r"\s*(right now|now|currently|at the moment)$", "", loc).strip()
        if loc in ("", "inside", "indoors", "in the house", "at home", "in the home", "in here", "here"):
            tg = Target(
                said=loc, here=loc in ("in here", "here"), home=loc in ("in the house", "at home", "in the home")
            )
        elif loc in ("outside", "outdoors", "out there", "in the garden") and not _has_outdoor(home, what):
            return None  # the weather skill answers
        else:
            located = loc.startswith(("in ", "on ", "at ", "upstairs", "downstairs"))
            tg = parse_target("everything " + loc if located else loc, home)
            if loc in ("outside", "outdoors", "out there"):
                tg = Target(said=loc, outdoor=True)
            if tg is None or tg.unknown or (tg.device_ids and not tg.areas):
                if tg is not None and tg.device_ids:
                    return Command("query", tg, {"kind": "reading", "what": what})
                return None
        return Command("query", tg, {"kind": "reading", "what": what})
    # battery
    m = _fm(
        r"(what is|what|how much) (is )?(the )?battery( level| charge)?( is)? (left )?(of|on|in|for) (?P<t>.+?)"
        r"( at)?|how much battery (does|has) (?P<t2>.+?) (have|got|left)( left)?|is (?P<t3>.+?) battery"
        r" low"
        r"|(what is )?(?P<t4>.+?) battery( level)?",
        t,
    )
    if m:
        tg = _target(m.group("t") or m.group("t2") or m.group("t3") or m.group("t4"), home, allow_unknown=False)
        if tg is None:
            return None
        return Command("query", tg, {"kind": "battery"})
    # which / how many
    m = _fm(
        rf"(?P<q>which|what|how many)( of the| of)? {_TGT} (are|is)( there)?( still| currently| left)? "
        rf"(?P<s>{_STATE_RX}){_LOC}",
        t,
    )
    if m:
        tg = _target(m.group("t") + (m.group("loc") or ""), home, allow_unknown=False)
        if tg is None or tg.pronoun:
            return None
        attr, val = _STATES[m.group("s")]
        return Command(
            "query", tg, {"kind": "count" if m.group("q") == "how many" else "which", "attr": attr, "value": val}
        )
    # is/are anything / any lights on
    m = _fm(rf"(is|are) (there )?(any|anything|something)(?P<t> .+?)? ({_STATE_RX}|left on|still on)(?P<loc> .+)?", t)
    if m:
        phrase = "everything" if not m.group("t") else m.group("t").strip()
        tg = _target(phrase + (m.group("loc") or ""), home, allow_unknown=False)
        if tg is None:
            return None
        tg.all = True
        s = m.group(5)
        attr, val = _STATES.get(s, ("on", True))
        return Command("query", tg, {"kind": "any", "attr": attr, "value": val})
    # is there motion / is anyone in the X
    m = _fm(
        r"(is there|has there been|was there) (any )?(motion|movement)( detected)?(?P<loc> .+)?|"
        r"is (anyone|anybody|someone|somebody) (?P<loc2>.+)",
        t,
    )
    if m:
        loc = (m.group("loc") or m.group("loc2") or "").strip()
        tg = parse_target("motion sensor " + loc if loc else "motion sensor", home)
        if tg is None or tg.unknown:
            return None
        return Command("query", tg, {"kind": "any", "attr": "detected", "value": True, "what": "motion"})
    m = _fm(r"(is there|do you detect|is there any) (smoke|a leak|water)(?P<loc> .+)?", t)
    if m:
        return None
    # is the front door locked / are the lights on in the kitchen
    m = _fm(
        rf"(is|are|did i leave|did we leave|did someone leave|have i left) {_TGT}( still| currently)? "
        rf"(?P<s>{_STATE_RX}){_LOC}",
        t,
    )
    if m:
        tg = _target(m.group("t") + (m.group("loc") or ""), home)
        if tg is None:
            return None
        attr, val = _STATES[m.group("s")]
        return Command("query", tg, {"kind": "yesno", "attr": attr, "value": val})
    # what is the state / status of X; what speed is the fan on; what is the volume of the tv; brightness of
    m = _fm(
        r"(what is|what) (the )?(?P<a>status|state|brightness|volume|speed|fan speed|position|colou?r)"
        r" (of|on|for) (?P<t>.+)|(what|which) speed is (?P<t2>.+?) (on|at|set to)|(what|how) (is|are) "
        r"(?P<t3>.+?) doing|(what is the )?status of (?P<t4>.+)",
        t,
    )
    if m:
        tg = _target(m.group("t") or m.group("t2") or m.group("t3") or m.group("t4"), home, allow_unknown=False)
        if tg is None:
            return None
        a = m.group("a") or ("speed" if m.group("t2") else "status")
        return Command("query", tg, {"kind": "attribute", "attr": {"fan speed": "speed", "colour": "color"}.get(a, a)})
    return None


def _has_outdoor(home: Home, what: str) -> bool:
    cls = "temperature" if what == "temperature" else "humidity"
    return any(d.device_class == cls and home.is_outdoor(d) for d in home.devices.values())


# -- actions -----------------------------------------------------------------------------------------------------
def _action(t: str, home: Home) -> Command | None:
    for fn in (_scene, _lock, _cover, _climate, _climate_named, _fan, _light_attrs, _media, _vacuum, _onoff):
        cmd = fn(t, home)
        if cmd is not None:
            return cmd
    return None


def _scene(t: str, home: Home) -> Command | None:
    v = vocabulary(home)
    m = _fm(
        r"(activate|run|start|trigger|turn on|switch on|enable|set|execute|launch|play|apply|go to|set up)"
        r" (the )?(?P<t>.+?)( scene| script| mode| routine)?|(?P<t2>.+?) (scene|mode|routine)( on|"
        r" please)?"
        r"|(it is|it's|time for) (?P<t3>.+)|(?P<t4>.+)",
        t,
    )
    if not m:
        return None
    ids: list[str] = []
    for name in (t, m.group("t"), m.group("t2"), m.group("t3"), m.group("t4")):
        name = (name or "").strip()
        ids = [i for i in v.devices.get(name, []) if home.devices[i].type in ("scene", "script")]
        if ids:
            break
    if not ids:
        return None
    return Command("activate", Target(said=name, device_ids=ids[:1]))


def _lock(t: str, home: Home) -> Command | None:
    m = _fm(rf"(?P<v>lock|unlock|secure|bolt|unbolt) (up )?{_TGT}|(?P<v2>lock|unlock) up", t)
    if not m:
        # Whisper hears a synthesized "lock" as "walk": only for a lock the home has, or "walk up"
        m2 = _fm(r"walk (?P<t>up|.+)", t)
        if m2 is None:
            return None
        if m2.group("t") in ("up", "it", "them"):
            return _lock(f"lock {m2.group('t')}", home)
        tg = parse_target(m2.group("t"), home)
        if tg is None or not tg.device_ids or not all(home.devices[i].type == "lock" for i in tg.device_ids):
            return None
        return _lock(f"lock {m2.group('t')}", home)
    verb = m.group("v") or m.group("v2")
    action = "unlock" if verb in ("unlock", "unbolt") else "lock"
    phrase = m.group("t") or "everything"
    if phrase in ("the house", "house", "up", "everything", "the doors", "all the doors", "all doors", "doors"):
        phrase = "all locks" if phrase != "the doors" else "the locks"
    tg = parse_target(phrase, home)
    if tg is None:
        tg = Target(said=phrase, unknown=phrase, types=["lock"])
    if (
        not tg.device_ids
        and not tg.unknown
        and not tg.pronoun
        and tg.noun not in ("lock", "locks", "door", "doors", "door lock", "door locks", "everything")
    ):
        tg.unknown = phrase  # "lock the gate": a gate is not a lock
    if tg.device_ids and not all(home.devices[i].type == "lock" for i in tg.device_ids):
        tg = Target(said=phrase, unknown=phrase, noun="lock")
    tg.types = ["lock"]
    tg.classes = None
    if tg.noun in ("door", "doors"):
        tg.noun = "lock" if tg.noun == "door" else "locks"
    return Command(action, tg)


def _cover(t: str, home: Home) -> Command | None:
    # position: "open the blinds to 50 percent", "set the blinds to 30 percent", "open the blinds halfway"
    m = _fm(rf"(open|close|set|raise|lower|put|move|adjust) {_TGT} (to|at) {_PCT}( open| closed)?", t)
    if m:
        tg = _target(m.group("t"), home)
        if tg is not None and _is_cover(tg, home):
            pct = int(float(m.group("n")))
            if m.group(6) == " closed" or (m.group(1) == "close" and m.group(6) is None and False):
                pct = 100 - pct
            return Command("position", tg, {"percent": pct})
    m = _fm(rf"(open) {_TGT} {_PCT}|set (the )?position of {_TGT} to {_PCT}|set {_TGT} position to {_PCT}", t)
    if m:
        tg = _target(m.group("t"), home)
        if tg is not None and _is_cover(tg, home):
            return Command("position", tg, {"percent": int(float(m.group("n")))})
    m = _fm(rf"(open|close|raise|lower) {_TGT} (halfway|half way|half|part way|a bit|a little)", t)
    if m:
        tg = _target(m.group("t"), home)
        if tg is not None and _is_cover(tg, home):
            pct = 50 if "half" in m.group(3) else 25 if m.group(1) in ("open", "raise") else 75
            return Command("position", tg, {"percent": pct})
    m = _fm(
        rf"(?P<v>open|close|shut|raise|lower|roll up|roll down|pull up|pull down|draw|pull|retract|extend"
        rf"|stop) (up |down )?{_TGT}( up| down)?",
        t,
    )
    if not m:
        m = _fm(r"(?P<t>.+?) (?P<v>open|close|shut|up|down)", t)
        if not m:
            return None
    v = m.group("v")
    tg = _target(m.group("t"), home)
    if tg is None:
        return None
    if not _is_cover(tg, home) and not (tg.unknown and v in ("open", "close", "shut")):
        return None
    if tg.unknown and tg.types and "cover" not in tg.types:
        return None
    if v in ("up", "down"):
        v = "raise" if v == "up" else "lower"
    action = {
        "open": "open",
        "raise": "open",
        "roll up": "open",
        "pull up": "open",
        "retract": "open",
        "close": "close",
        "shut": "close",
        "lower": "close",
        "roll down": "close",
        "pull down": "close",
        "extend": "close",
        "draw": "close",
        "pull": "close",
        "stop": "stop_cover",
    }[v]
    if v == "draw" and tg.noun and "curtain" not in tg.noun:
        return None
    if v == "stop" and not tg.device_ids and not (tg.types and tg.types[0] == "cover"):
        return None
    if tg.unknown:
        tg.types = ["cover"]
    return Command(action, tg)


def _is_cover(tg: Target, home: Home) -> bool:
    if tg.device_ids:
        return all(home.devices[i].type == "cover" for i in tg.device_ids)
    if tg.pronoun:
        return True
    return bool(tg.types) and "cover" in tg.types


def _climate(t: str, home: Home) -> Command | None:
    m = _fm(
        rf"(set|change|put|turn|adjust|make) (the )?(?P<t>thermostat|heating|temperature|heat|ac|air conditioning|"
        rf"central heating|climate)(?P<loc> (in|on|upstairs|downstairs) .+?| upstairs| downstairs)?"
        rf" (to|at) {_DEG}"
        rf"|(?P<h>heat|cool|warm) (up )?(?P<t2>.+?) to (?P<n2>\d+(?:\.\d+)?)\s*(?:degrees?)?"
        rf"|(set|change|put|turn|adjust) (the )?(?P<pre>[a-z' ]+?) (temperature|heating|heat) (to|at) "
        rf"(?P<n4>\d+(?:\.\d+)?)( degrees?)?( celsius| fahrenheit| c| f)?"
        rf"|set (?P<t3>.+?) (to|at) (?P<n3>\d+(?:\.\d+)?) (degrees?|celsius|c|fahrenheit)",
        t,
    )
    if m:
        n = m.group("n") or m.group("n2") or m.group("n3") or m.group("n4")
        phrase = (m.group("t") or m.group("t2") or m.group("t3") or "thermostat").strip()
        if m.group("pre"):
            phrase = f"{m.group('pre')} thermostat"
        phrase = "thermostat" if phrase in ("temperature", "heat") else phrase
        tg = _target(phrase + (m.group("loc") or ""), home)
        if tg is None:
            return None
        if not tg.types and not tg.device_ids and not tg.unknown:
            tg.types = ["thermostat", "heater"]
        return Command("set_temperature", tg, {"temperature": float(n)})
    m = _fm(
        r"(turn|crank|bump) (?P<d>up|down) (the )?(?P<t>heating|heat|thermostat|temperature|ac|air conditioning)"
        r"(?P<loc> (in|on|upstairs|downstairs)\b.*?)?( by (?P<n>\d+)( degrees?)?)?"
        r"|(turn|crank|put|bump|set) (the )?(?P<t>heating|heat|thermostat|temperature|ac|air"
        r" conditioning) "
        r"(?P<d>up|down)(?P<loc> (in|on|upstairs|downstairs)\b.*?)?( by (?P<n>\d+)( degrees?)?)?"
        r"|(turn|crank|put|bump|set) (the )?(?P<t>heating|heat|thermostat|temperature|ac|air conditioning)"
        r"(?P<loc> (?:in|on|upstairs|downstairs)\b.*?)? "
        r"(?P<d>up|down)( by (?P<n>\d+)( degrees?)?)?|(?P<d2>raise|lower|increase|decrease|reduce) (the )?"
        r"(?P<t2>temperature|heating|heat|thermostat)(?P<loc2> (?:in|on|upstairs|downstairs)\b.*?)?"
        r"( by (?P<n2>\d+)( degrees?)?)?"
        r"|make it (?P<d3>warmer|cooler|colder|hotter|cool|warm)(?P<loc3> .+)?"
        r"|(it is|i am|i'm|we are|we're) (too )?(?P<d4>cold|hot|warm|chilly|freezing)(?P<loc4> .+)?",
        t,
    )
    if m:
        d = m.group("d") or m.group("d2") or m.group("d3") or m.group("d4")
        sign = 1 if d in ("up", "raise", "increase", "warmer", "hotter", "cold", "chilly", "freezing") else -1
        if m.group("d3") == "warm":  # "make it warm"; but "it's too warm" lowers it
            sign = 1
        loc = m.group("loc") or m.group("loc2") or m.group("loc3") or m.group("loc4") or ""
        tg = _target("thermostat" + loc, home)
        if tg is None:
            return None
        n = _num(m.group("n") or m.group("n2")) or 1
        return Command("set_temperature", tg, {"delta": sign * n})
    m = _fm(
        r"(set|switch|put|change|turn) (the )?(?P<t>.+?) (to|on|into) "
        r"(?P<mode>heat|heating|cool|cooling|auto|automatic|eco)( mode)?"
        r"|(set|switch|put|change|turn) (the )?(?P<t>.+?) (to|into) (?P<mode>off) mode",
        t,
    )
    if m:
        tg = _target(m.group("t") + (m.group("loc") or ""), home)
        if tg is None or not _is_climate(tg, home):
            return None
        mode = {"heating": "heat", "cooling": "cool", "automatic": "auto", "eco": "auto"}.get(
            m.group("mode"), m.group("mode")
        )
        return Command("set_mode", tg, {"mode": mode})
    return None


def _climate_named(t: str, home: Home) -> Command | None:
    """'set the upstairs thermostat to 18': a named thermostat or heater and a bare number."""
    m = _fm(r"(set|change|put|turn|adjust) (?P<t>.+?) (to|at) (?P<n>\d+(?:\.\d+)?)( degrees?)?", t)
    if not m:
        return None
    tg = _target(m.group("t"), home, allow_unknown=False)
    if tg is None or not _is_climate(tg, home):
        return None
    return Command("set_temperature", tg, {"temperature": float(m.group("n"))})


def _is_climate(tg: Target, home: Home) -> bool:
    if tg.device_ids:
        return all(home.devices[i].type in ("thermostat", "heater") for i in tg.device_ids)
    return bool(tg.types) and set(tg.types) <= {"thermostat", "heater"}


def _fan(t: str, home: Home) -> Command | None:
    speeds = "|".join(SPEEDS)
    m = _fm(
        rf"(set|turn|put|change|switch) {_TGT} (speed )?(to|on) (?P<s>{speeds})( speed| setting)?"
        rf"|(?P<t2>.+?) (to|on) (?P<s2>{speeds})( speed)?",
        t,
    )
    if m:
        tg = _target(m.group("t") or m.group("t2"), home, allow_unknown=False)
        if tg is None or not _is_fan(tg, home):
            return None
        return Command("fan_speed", tg, {"speed": SPEEDS[m.group("s") or m.group("s2")]})
    m = _fm(rf"(set|turn|put|change) {_TGT} (speed )?(to|at) (?P<n>\d+)( percent)?( speed)?", t)
    if m:
        tg = _target(m.group("t"), home, allow_unknown=False)
        if tg is not None and _is_fan(tg, home):
            n = int(m.group("n"))
            if n == 0:
                return Command("turn_off", tg)
            return Command("fan_speed", tg, {"speed": "low" if n <= 33 else "medium" if n <= 66 else "high"})
    m = _fm(rf"(turn|speed|slow) {_TGT} (?P<d>up|down)|(?P<d2>speed up|slow down|increase|decrease) {_TGT}( speed)?", t)
    if m:
        tg = _target(m.group("t"), home, allow_unknown=False)
        if tg is None or not _is_fan(tg, home) or tg.pronoun:
            return None
        d = m.group("d") or m.group("d2")
        return Command("fan_speed", tg, {"step": 1 if d in ("up", "speed up", "increase") else -1})
    return None


def _is_fan(tg: Target, home: Home) -> bool:
    if tg.device_ids:
        return all(home.devices[i].type == "fan" for i in tg.device_ids)
    return tg.types == ["fan"]


def _light_attrs(t: str, home: Home) -> Command | None:
    colors = "|".join(sorted([*COLOR_TEMPS, *COLORS], key=len, reverse=True))
    # brightness
    m = _fm(
        rf"(set|change|turn|put|adjust) (the )?brightness (of|on|for|in) {_TGT} (?P<p2>to|by|at) {_PCT}"
        rf"|(set|change|turn|put) {_TGT} brightness (?P<p3>to|at) {_PCT}"
        rf"|(?P<v>dim|brighten|set|turn|put|change|adjust|make|lower|raise|turn down|turn up) {_TGT}"
        rf"( brightness)? (?P<p>to|by|at) {_PCT}( brightness)?"
        rf"|{_TGT} (?P<p4>to|at) {_PCT}( brightness)?",
        t,
    )  # "kitchen lights to 20 percent" (no verb heard)
    if m:
        tg = _lights_of_place(_target(m.group("t"), home), m.group("v") or ("dim" if m.group("p4") else None))
        if tg is None or not _is_light(tg, home):
            return None
        n = int(float(m.group("n")))
        v = m.group("v") or "set"
        if (m.group("p") or m.group("p2") or "to") == "by":
            return Command("brightness", tg, {"delta": -n if v in ("dim", "lower", "turn down") else n})
        return Command("brightness", tg, {"brightness": n})
    m = _fm(
        rf"(?P<v>dim|brighten|turn down|turn up|lower|raise)( up| down)? {_TGT}( a (bit|little)| a lot| more|"
        rf" slightly)?"
        rf"|(?P<v2>turn|make) {_TGT} (?P<d>up|down|brighter|dimmer|darker|lighter)( a (bit|little)| a"
        rf" lot)?",
        t,
    )
    if m:
        tg = _lights_of_place(_target(m.group("t"), home), m.group("v"))
        if tg is None or not _is_light(tg, home) or (tg.pronoun and m.group("d") in ("up", "down")):
            return None  # "turn it up" is the volume's
        d = m.group("v") or m.group("d")
        sign = 1 if d in ("brighten", "turn up", "raise", "up", "brighter", "lighter") else -1
        return Command("brightness", tg, {"delta": sign * 20})
    m = _fm(
        rf"(set|change|make|turn) (the )?colou?r of {_TGT} (to|into) (?P<c>{colors})"
        rf"|(set|change|make|turn) {_TGT} colou?r (to|into) (?P<c>{colors})"
        rf"|(set|turn|make|change|switch|put) {_TGT} (to |into |in )?(a )?(?P<c>{colors})( colou?r| light| mode)?"
        rf"|(?P<c2>{colors}) {_TGT}",
        t,
    )
    if m:
        tg = _target(m.group("t"), home)
        c = m.group("c") or m.group("c2")
        if tg is None or not _is_light(tg, home):
            return None
        if c in COLOR_TEMPS:
            return Command("color_temp", tg, {"kelvin": COLOR_TEMPS[c], "name": c})
        return Command("color", tg, {"color": c})
    return None


def _lights_of_place(tg: Target | None, verb: str | None) -> Target | None:
    """ "dim the living room": a room (or floor) dimmed or brightened means its lights."""
    if tg is not None and tg.noun == "everything" and verb in ("dim", "brighten") and (tg.areas or tg.floor or tg.here):
        tg.types, tg.noun = ["light"], "lights"
    return tg


def _is_light(tg: Target, home: Home) -> bool:
    if tg.device_ids:
        return all(home.devices[i].type == "light" for i in tg.device_ids)
    if tg.pronoun:
        return True
    return tg.types == ["light"] or (tg.unknown is not None and tg.types == ["light"])


def _media(t: str, home: Home) -> Command | None:
    m = _fm(
        r"(?P<v2>next|previous|skip)( track| song| episode| channel)?( on| in) (?P<t2>.+)"
        rf"|(?P<v>pause|resume|unpause|stop|play|skip|next|previous|mute|unmute)( {_TGT})?"
        rf"|(turn|set|change) (the )?volume to (?P<n>\d+)( percent)? (on|of|for|in) (?P<t4>.+)"
        rf"|(turn|set) (the )?volume (?P<d>up|down)( on (?P<t3>.+))?"
        rf"|volume (?P<d>up|down) (on|in) (?P<t3>.+)"
        rf"|turn (?P<d>up|down) (the )?volume (on|of) (?P<t3>.+)"
        rf"|(turn|set|change) (the )?volume (on |of )?(?P<t4>.+?) to (?P<n>\d+)( percent)?"
        rf"|(turn|set|change) (?P<t5>.+?) volume to (?P<n2>\d+)( percent)?"
        rf"|(turn|set|change) (?P<t6>.+?) (?P<d2>up|down)",
        t,
    )
    if not m:
        return None
    phrase = m.group("t") or m.group("t2") or m.group("t3") or m.group("t4") or m.group("t5") or m.group("t6")
    if not phrase:
        v = m.group("v") or m.group("v2")
        if v in ("pause", "resume", "unpause", "mute", "unmute") and m.group(0) == v:  # not "stop": stop talking
            # a bare "pause": the player playing in this room, if one is (else the music skill's own player)
            tg = Target(said="", types=["tv", "media_player"], noun="tv", here=True, plural=True)
            if v in ("mute", "unmute"):
                return Command(v, tg, {"optional": True})
            op = {"pause": "pause", "resume": "play", "unpause": "play"}[v]
            return Command("media", tg, {"op": op, "optional": True})
        return None
    phrase = re.sub(r"\s+(music|playback|movie|film|show|track|song)$", "", phrase)
    phrase = re.sub(r"^(the )?(music|playback|movie|film|show) (on|in) ", "", phrase)
    tg = _target(phrase, home, allow_unknown=False)
    if tg is None:
        return None
    media_types = ("tv", "media_player", "speaker", "display")
    if tg.device_ids:
        if not all(home.devices[i].type in media_types for i in tg.device_ids):
            return None
    elif not tg.types or not set(tg.types) & set(media_types):
        return None
    v = m.group("v") or m.group("v2")
    if m.group("n") or m.group("n2"):
        return Command("volume", tg, {"volume": int(m.group("n") or m.group("n2"))})
    if m.group("d") or m.group("d2"):
        return Command("volume", tg, {"delta": 10 if (m.group("d") or m.group("d2")) == "up" else -10})
    if v in ("mute", "unmute"):
        return Command(v, tg)
    op = {
        "pause": "pause",
        "stop": "pause",
        "resume": "play",
        "unpause": "play",
        "play": "play",
        "skip": "next",
        "next": "next",
        "previous": "previous",
    }[v]
    return Command("media", tg, {"op": op})


def _vacuum(t: str, home: Home) -> Command | None:
    m = _fm(
        r"(?P<v>start|run|turn on|begin|switch on) (the )?(?P<t>robot vacuum|vacuum cleaner|vacuum|hoover|roomba)"
        r"( cleaning)?|(?P<v2>vacuum|hoover|clean)( the)? (?P<loc>house|floors?|home|.+)"
        r"|(?P<v3>send|return|dock|park) (the )?(?P<t3>robot vacuum|vacuum cleaner|vacuum|hoover|roomba)"
        r"( back)?( to (the |its )?(dock|base|charger|charging station|home)| home| back)?"
        r"|(?P<v6>start|begin) (vacuuming|hoovering|cleaning)( the (house|floors?|home))?"
        r"|(?P<v4>stop|pause) (the )?(?P<t4>robot vacuum|vacuum cleaner|vacuum|hoover|roomba)"
        r"|(?P<v4>stop|pause) (?P<t4>vacuuming|hoovering|cleaning)"
        r"|(?P<t5>robot vacuum|vacuum|hoover|roomba),? (?P<v5>go home|return to base|start"
        r" cleaning|clean)",
        t,
    )
    if not m:
        return None
    if not any(d.type == "vacuum" for d in home.devices.values()):
        if m.group("v2"):
            return None
        return Command(
            "vacuum", Target(said=m.group("t") or "vacuum", unknown="vacuum", types=["vacuum"]), {"op": "start"}
        )
    tg = Target(said="vacuum", types=["vacuum"], noun="vacuum")
    if m.group("v2"):
        loc = m.group("loc")
        if loc not in ("house", "home", "floor", "floors") and not parse_target("everything in " + loc, home):
            return None
        return Command("vacuum", tg, {"op": "start"})
    if m.group("v3") or (m.group("v5") in ("go home", "return to base")):
        return Command("vacuum", tg, {"op": "dock"})
    if m.group("v4"):
        return Command("vacuum", tg, {"op": "pause" if m.group("v4") == "pause" else "dock"})
    return Command("vacuum", tg, {"op": "start"})


def _onoff(t: str, home: Home) -> Command | None:
    m = _fm(
        rf"(?:turn|switch|power|shut|put|flip|set) (?P<d>on|off|out) {_TGT}"
        rf"|(?:turn|switch|power|shut|put|flip|set) {_TGT} (?P<d2>on|off|out)"
        rf"|(?:turn|switch|power|shut|put|flip|set) {_TGT} (?P<d2>on|off|out) (?P<l4>everywhere|in the"
        rf" .+|in .+"
        rf"|downstairs|upstairs|here|in here|on the .+)"
        rf"|(?P<d3>toggle|kill|cut|start|stop|enable|disable|activate|deactivate|light up|switch|flip)"
        rf" {_TGT}"
        rf"|(?P<t4>.+?) (?P<d4>on|off)"
        rf"|(?P<t4>[a-z' ]+?) (?P<d4>on|off) (?P<l4>everywhere|in the .+|in .+|downstairs|upstairs|here"
        rf"|in here|on the .+)"
        rf"|(?P<d5>lights?) (?P<t5>on|off)",
        t,
    )
    if not m:
        return None
    if m.group("d5"):
        tg = _target(m.group("d5"), home)
        d = m.group("t5")
    else:
        phrase = m.group("t") or m.group("t4")
        if m.group("l4"):
            phrase = f"{phrase} {m.group('l4')}"
        d = m.group("d") or m.group("d2") or m.group("d3") or m.group("d4")
        phrase = re.sub(r"\s+(back|again)$", "", phrase)
        if d == "switch" or d == "flip":
            d = "toggle"
        tg = _target(phrase, home)
        if tg is None:
            return None
    if tg is None:
        return None
    if m.group("d4") and (tg.unknown or tg.pronoun):
        return None
    action = {
        "on": "turn_on",
        "off": "turn_off",
        "out": "turn_off",
        "toggle": "toggle",
        "kill": "turn_off",
        "cut": "turn_off",
        "start": "turn_on",
        "stop": "turn_off",
        "enable": "turn_on",
        "disable": "turn_off",
        "activate": "turn_on",
        "deactivate": "turn_off",
        "light up": "turn_on",
    }[d]
    if d in ("start", "stop", "kill", "cut", "enable", "disable", "activate", "deactivate") and tg.unknown:
        return None
    if tg.unknown and not tg.types:
        return None
    return Command(action, tg)
