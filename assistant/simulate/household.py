"""Households: a home (a variation of the example home: rooms added or left out, devices renamed or missing),
members with a voice, a noise environment, favourite music, usual rooms, habits (goals by time of day) and a
temperament (patience, how readily they rephrase, barge in or answer "did I answer your question?")."""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.home.model import EXAMPLE_HOME, Home, HomeYamlLoader
from assistant.simulate.goals import Goal, GoalBank

ROOM_POOL: list[tuple[str, str, list[str]]] = [
    ("bathroom", "bathroom", ["bath", "restroom", "toilet"]),
    ("dining_room", "dining room", ["dining area"]),
    ("kids_room", "kids room", ["children's room", "nursery", "kid's room"]),
    ("basement", "basement", ["cellar"]),
    ("guest_room", "guest room", ["spare room", "guest bedroom"]),
    ("porch", "porch", ["front porch", "patio"]),
]
RENAMES: dict[str, list[str]] = {
    "floor lamp": ["floor lamp", "standing lamp", "corner lamp"],
    "ceiling light": ["ceiling light", "main light"],
    "tv": ["tv", "television"],
    "coffee machine": ["coffee machine", "espresso machine", "coffee maker"],
    "robot vacuum": ["robot vacuum", "roomba", "vacuum cleaner"],
    "kettle plug": ["kettle plug", "smart plug", "wemo plug"],
    "desk lamp": ["desk lamp", "study lamp"],
    "heater": ["heater", "radiator"],
}
KEEP_ALWAYS = ("living_room", "kitchen", "bedroom")
NAMES = ["Alex", "Sam", "Priya", "Jonas", "Maria", "Kenji", "Olu", "Hannah", "Luis", "Mei", "Tom", "Aisha"]
ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en+m3", "en-gb-x-rp", "en-029", "en-us+f2"]
NOISE_PROFILES: dict[str, list[tuple[float | None, str, float]]] = {
    # (snr_db or None for clean, colour, weight)
    "quiet": [(None, "white", 0.5), (30.0, "pink", 0.3), (20.0, "white", 0.2)],
    "family": [(None, "white", 0.2), (30.0, "pink", 0.3), (20.0, "pink", 0.3), (15.0, "brown", 0.2)],
    "noisy": [(20.0, "white", 0.3), (15.0, "pink", 0.4), (10.0, "brown", 0.3)],
}
CONFIRM_HABIT = 0.35
"""Probability that a member opens the garage door / unlocks the back door each morning (when the home has it)."""
_GENERIC = {"the", "my", "all", "a", "an", "smart", "one", "two", "in", "of", "on", "off", "please", "s"}


@dataclass(frozen=True)
class VoiceSpec:
    engine: str  # "piper" | "espeak"
    voice: str = ""
    rate_wpm: int = 150
    pitch: int = 50
    length_scale: float = 1.0

    def key(self) -> str:
        if self.engine == "piper":
            return f"piper:{self.length_scale:.2f}"
        return f"espeak:{self.voice}:{self.rate_wpm}:{self.pitch}"


@dataclass
class Member:
    id: str
    name: str
    voice: VoiceSpec
    noise: str
    usual_rooms: list[str]
    """Area ids where the member usually speaks (each has a satellite)."""
    preferred_rooms: list[str]
    favourite: dict[str, str]
    """e.g. {"music_genre": "jazz", "artist_name": "adele"}."""
    habits: dict[str, list[str]]
    """Time of day (morning, day, evening) -> goal ids."""
    phrasing: dict[str, int] = field(default_factory=dict)
    """Goal id -> index of the member's usual way of saying it."""
    max_tries: int = 3
    p_rephrase: float = 0.6
    p_repeat: float = 0.2
    p_cancel: float = 0.05
    p_barge_in: float = 0.6
    p_answer_feedback: float = 0.85
    p_accept_unsupported: float = 0.7

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "voice": self.voice.key(),
            "noise": self.noise,
            "usual_rooms": self.usual_rooms,
            "preferred_rooms": self.preferred_rooms,
            "favourite": self.favourite,
            "habits": self.habits,
            "max_tries": self.max_tries,
        }


@dataclass
class Household:
    id: str
    home_path: Path
    home: Home
    members: list[Member]
    goals: dict[str, Goal]
    """Goals feasible in this home (by id)."""
    personal: dict[str, Goal] = field(default_factory=dict)
    """Personal-meaning goals (simulate/meanings.py), by id: only their member says them."""

    def goal(self, goal_id: str) -> Goal:
        return self.goals.get(goal_id) or self.personal[goal_id]

    def satellite_in(self, area: str) -> str:
        sats = self.home.satellites()
        for s in sats:
            if s.area == area:
                return s.id
        return sats[0].id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "home": str(self.home_path),
            "areas": sorted(self.home.areas),
            "devices": sorted(self.home.devices),
            "members": [m.to_dict() for m in self.members],
            "feasible_goals": len(self.goals),
            "personal_meanings": {
                g.goal_id: {"expect": g.expect, "utterances": g.utterances} for g in self.personal.values()
            },
        }


# -- matching goal slot values against a home ---------------------------------------------------------------------
def _tokens(text: str) -> set[str]:
    return {t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _GENERIC}


def _stem(t: str) -> str:
    return t[:-1] if t.endswith("s") and len(t) > 3 else t


def areas_for_place(home: Home, place: str) -> list[str]:
    """Area ids a `house_place` value names (by name or alias, ignoring articles and plurals)."""
    want = {_stem(t) for t in _tokens(place)}
    if not want:
        return []
    out = []
    for a in home.areas.values():
        for n in (a.name, *a.aliases):
            have = {_stem(t) for t in _tokens(n)}
            if have and (have <= want or want <= have):
                out.append(a.id)
                break
    return out


_TYPE_WORDS = {
    "light": {"light", "lamp", "bulb", "lighting"},
    "vacuum": {"vacuum", "hoover", "roomba", "cleaner", "robot"},
    "coffee_machine": {"coffee", "espresso"},
    "plug": {"plug", "socket", "wemo", "outlet"},
    "fan": {"fan"},
    "heater": {"heater", "radiator", "heating"},
    "tv": {"tv", "television"},
    "kettle": {"kettle"},
    "cover": {"blind", "shade", "curtain", "door"},
    "oven": {"oven", "cooker"},
    "thermostat": {"thermostat"},
}


def devices_for(home: Home, device: str) -> list[str]:
    """Device ids a `device_type` value can mean (name/alias word overlap, or a word for the device's type)."""
    want = {_stem(t) for t in _tokens(device)}
    if not want:
        return []
    out = []
    for d in home.devices.values():
        names = {_stem(t) for n in d.names for t in _tokens(n)}
        type_words = _TYPE_WORDS.get(d.type, {d.type})
        if want & names or want & type_words:
            out.append(d.id)
    return out


def named_devices(home: Home, name: str) -> list[str]:
    """Device ids called exactly `name` (their name or an alias): the one device a confirmed request may act on."""
    want = _tokens(name)
    return [d.id for d in home.devices.values() if want and any(_tokens(n) == want for n in d.names)]


def feasible(goal: Goal, home: Home) -> bool:
    """Can this request be fulfilled in this home (its room and device exist)?"""
    if goal.spec.named_device and not named_devices(home, goal.slots.get("device_type") or ""):
        return False
    place = goal.slots.get("house_place")
    if place and goal.spec.home and not areas_for_place(home, place):
        return False
    dev = goal.slots.get("device_type")
    if dev and goal.spec.home and not devices_for(home, dev):
        return False
    if goal.intent == "iot_cleaning" and not home.find_devices(type="vacuum"):
        return False
    if goal.intent == "iot_coffee" and not home.find_devices(type="coffee_machine"):
        return False
    if goal.spec.home and goal.intent.startswith("iot_hue") and not home.find_devices(type="light"):
        return False
    return True


# -- building ------------------------------------------------------------------------------------------------------
def make_home(rng: random.Random, base: Path = EXAMPLE_HOME) -> dict[str, Any]:
    raw = yaml.load(base.read_text(encoding="utf-8"), Loader=HomeYamlLoader)  # noqa: S506 (safe loader)
    raw = copy.deepcopy(raw)
    keep = [a for a in raw["areas"] if a["id"] in KEEP_ALWAYS or rng.random() < 0.7]
    for rid, name, aliases in rng.sample(ROOM_POOL, rng.randint(1, 3)):
        keep.append({"id": rid, "name": name, "aliases": list(aliases)})
        raw.setdefault("devices", []).append(
            {
                "id": f"{rid}.light",
                "name": f"{name} light",
                "aliases": [f"{name} lights", f"{name} lamp"],
                "type": "light",
                "area": rid,
            }
        )
    area_ids = {a["id"] for a in keep}
    raw["areas"] = keep
    devices = []
    for d in raw["devices"]:
        if d["area"] not in area_ids:
            continue
        if d["type"] != "light" and rng.random() < 0.2:
            continue
        if d["name"] in RENAMES:
            new = rng.choice(RENAMES[d["name"]])
            if new != d["name"]:
                d["aliases"] = [a for a in d.get("aliases", []) if a != new] + [d["name"]]
                d["name"] = new
        devices.append(d)
    # scenes and scripts set only devices this home kept (one with nothing left goes too)
    kept = {d["id"] for d in devices}
    for d in devices:
        if "sets" in d:
            d["sets"] = {k: v for k, v in d["sets"].items() if k in kept}
    raw["devices"] = [d for d in devices if "sets" not in d or d["sets"]]
    raw["satellites"] = [
        s for s in raw["satellites"] if s["area"] in area_ids and (s["area"] != "bedroom" or rng.random() < 0.7)
    ]
    if "office" in area_ids and rng.random() < 0.5:
        raw["satellites"].append({"id": "office.speaker", "name": "office speaker", "area": "office"})
    raw["members"] = []
    return raw


def _pick_goals(rng: random.Random, pool: list[Goal], k: int) -> list[str]:
    return [g.goal_id for g in rng.sample(pool, min(k, len(pool)))] if pool else []


POPULAR_INTENTS = (
    "weather_query",
    "datetime_query",
    "play_music",
    "general_joke",
    "iot_hue_lighton",
    "iot_hue_lightoff",
    "audio_volume_up",
    "music_query",
    "play_radio",
    "lists_query",
    "alarm_set",
    "iot_coffee",
    "play_podcasts",
    "qa_factoid",
    "news_query",
)


def popular_goals(bank: GoalBank, seed: int, k: int) -> list[tuple[str, int]]:
    """k (goal id, phrasing index) the whole simulated population shares: common requests said the common way.
    Drawn from the seed alone (not the household), from everyday intents, goals without a room (feasible anywhere)."""
    if k <= 0:
        return []
    rng = random.Random(f"popular:{seed}")
    pool = [
        g
        for g in bank.goals
        if g.intent in POPULAR_INTENTS and not g.slots.get("house_place") and len(g.utterances) >= 2
    ]
    pool.sort(key=lambda g: g.goal_id)
    return [(g.goal_id, rng.randrange(len(g.utterances))) for g in rng.sample(pool, min(k, len(pool)))]


def make_household(
    index: int,
    seed: int,
    bank: GoalBank,
    out_dir: Path,
    voices: tuple[str, ...] = ("piper", "espeak"),
    n_members: int | None = None,
    shared_goals: int = 0,
    personal_meanings: float = 0.0,
    room_words: float = 0.0,
) -> Household:
    rng = random.Random(f"household:{seed}:{index}")
    raw = make_home(rng)
    hid = f"h{index}"
    raw["name"] = f"Simulated home {hid}"
    n = n_members or rng.choice((1, 2, 2, 3, 4))
    names = rng.sample(NAMES, n)
    raw["members"] = [{"id": nm.lower(), "name": nm} for nm in names]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{hid}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    home = Home.load(path)
    goals = {g.goal_id: g for g in bank.goals if feasible(g, home)}
    by_intent: dict[str, list[Goal]] = {}
    for g in goals.values():
        by_intent.setdefault(g.intent, []).append(g)

    def pool(*intents: str) -> list[Goal]:
        return [g for i in intents for g in by_intent.get(i, [])]

    sat_areas = sorted({s.area for s in home.satellites()})
    lights = sorted({d.area for d in home.find_devices(type="light")})
    from assistant.simulate.meanings import personal_meanings as draw_meanings
    from assistant.simulate.meanings import room_words as draw_room_words

    meanings = draw_meanings(home, seed, index, names, personal_meanings)
    known = lambda w: bool(areas_for_place(home, w))  # noqa: E731
    for nm, extra in draw_room_words(home, seed, index, names, room_words, known).items():
        meanings[nm] = meanings.get(nm, []) + extra
    personal: dict[str, Goal] = {}
    members = []
    for nm in names:
        engine = rng.choice(voices)
        voice = (
            VoiceSpec("piper", length_scale=rng.choice((0.9, 1.0, 1.0, 1.15)))
            if engine == "piper"
            else VoiceSpec("espeak", rng.choice(ESPEAK_VOICES), rng.choice((130, 150, 170)), rng.choice((35, 50, 65)))
        )
        preferred = rng.sample(lights, min(2, len(lights)))
        fav: dict[str, str] = {}
        music = pool("play_music")
        genre = [g for g in music if set(g.slots) == {"music_genre"}]
        artist = [g for g in music if set(g.slots) == {"artist_name"}]
        fav_goals = []
        if genre:
            g = rng.choice(genre)
            fav["music_genre"] = g.slots["music_genre"]
            fav_goals.append(g.goal_id)
        if artist:
            g = rng.choice(artist)
            fav["artist_name"] = g.slots["artist_name"]
            fav_goals.append(g.goal_id)
        in_preferred = [
            g
            for g in pool(
                "iot_hue_lighton", "iot_hue_lightoff", "iot_hue_lightdim", "iot_hue_lightup", "iot_hue_lightchange"
            )
            if not g.slots.get("house_place") or set(areas_for_place(home, g.slots["house_place"])) & set(preferred)
        ]
        habits = {
            "morning": _pick_goals(
                rng, pool("datetime_query", "weather_query", "iot_coffee", "alarm_query", "news_query"), 2
            )
            + _pick_goals(rng, [g for g in in_preferred if "on" in g.intent or "up" in g.intent], 1),
            "day": _pick_goals(
                rng,
                pool(
                    "lists_createoradd",
                    "lists_query",
                    "timer_set",
                    "play_podcasts",
                    "iot_cleaning",
                    "general_joke",
                    "music_query",
                    "audio_volume_up",
                    "audio_volume_down",
                ),
                3,
            )
            + _pick_goals(rng, [g for g in goals.values() if not g.supported], 2),
            "evening": _pick_goals(
                rng, [g for g in in_preferred if "off" in g.intent or "dim" in g.intent or "change" in g.intent], 2
            )
            + fav_goals
            + _pick_goals(rng, pool("alarm_set", "lists_query", "play_audiobook", "audio_volume_mute"), 2),
        }
        phrasing = {gid: rng.randrange(len(goals[gid].utterances)) for hs in habits.values() for gid in hs}
        if shared_goals:  # a separate stream, so the rest of the household is the same with or without them
            prng = random.Random(f"popular:{seed}:{index}:{nm}")
            for gid, idx in popular_goals(bank, seed, shared_goals):
                if gid in goals and prng.random() < 0.5:
                    habits[prng.choice(("morning", "day", "evening"))].append(gid)
                    phrasing[gid] = idx
        # Opening the garage or unlocking the back door in the morning (asked "are you sure?" every time), closing or
        # locking it in the evening (own stream, as above).
        crng = random.Random(f"confirm:{seed}:{index}:{nm}")
        for g in pool("iot_cover_open"):
            if crng.random() < CONFIRM_HABIT:
                habits["morning"].append(g.goal_id)
                phrasing[g.goal_id] = crng.randrange(len(g.utterances))
                shut = [c for c in pool("iot_cover_close") if c.slots == g.slots]
                if shut and crng.random() < 0.7:
                    habits["evening"].append(shut[0].goal_id)
                    phrasing[shut[0].goal_id] = crng.randrange(len(shut[0].utterances))
        for part, g in meanings.get(nm, ()):  # the person's own phrase first, always
            personal[g.goal_id] = g
            habits[part].append(g.goal_id)
            phrasing[g.goal_id] = 0
        members.append(
            Member(
                id=nm.lower(),
                name=nm,
                voice=voice,
                noise=rng.choice(("quiet", "quiet", "family", "noisy")),
                usual_rooms=rng.sample(sat_areas, min(len(sat_areas), rng.choice((1, 2)))),
                preferred_rooms=preferred,
                favourite=fav,
                habits=habits,
                phrasing=phrasing,
                max_tries=rng.choice((2, 3, 3, 4)),
                p_rephrase=rng.uniform(0.5, 0.8),
                p_repeat=rng.uniform(0.1, 0.3),
                p_cancel=rng.uniform(0.0, 0.1),
                p_barge_in=rng.uniform(0.4, 0.8),
                p_answer_feedback=rng.uniform(0.7, 0.95),
                p_accept_unsupported=rng.uniform(0.5, 0.9),
            )
        )
    return Household(hid, path, home, members, goals, personal)
