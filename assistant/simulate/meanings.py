"""Personal meanings: phrases whose meaning depends on who says them.

One person's "the big light" is the ceiling light, their partner's the floor lamp; one person's "Portland" is Maine,
another's Oregon (the catalog's default); "put on my usual" is each person's favourite artist. A personal goal is a
`Goal` whose first utterance is the person's own phrase and whose other utterances say the meaning explicitly (what
the person says when the assistant got it wrong); `Goal.expect` pins the meaning, so the truth checks the device or
place the person meant, not just the intent (`ground_truth.result_ok`).

Households whose members disagree: the second member to take a phrase takes the other meaning with probability
`DISAGREE` (for places: one of them usually means the catalog's default, so a global rewrite to the other meaning
hurts them). Drawn from their own random stream (`personal:{seed}:{household}:{name}`), so the rest of the household
is the same with or without them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from assistant.home.model import Home
from assistant.simulate.goals import Goal

DISAGREE = 0.7
# (phrase city, catalog default meaning, other meaning): geonames ids as the resolver reports them (`place:<id>`)
PLACES: list[tuple[str, tuple[str, str], tuple[str, str]]] = [
    ("portland", ("oregon", "place:5746545"), ("maine", "place:4975802")),
    ("paris", ("france", "place:2988507"), ("texas", "place:4717560")),
    ("birmingham", ("england", "place:2655603"), ("alabama", "place:4049979")),
]
# Words people use for a room that homes rarely list (area id -> words): a person who says "the den" for the living
# room hears "I don't know a room called den" and says the room's name instead (an entity the home does not know).
ROOM_WORDS: dict[str, list[str]] = {
    "living_room": ["den", "family room", "tv room"],
    "kitchen": ["scullery", "kitchenette"],
    "bedroom": ["our room", "master suite"],
    "office": ["computer room", "library"],
    "hallway": ["landing", "foyer", "entryway"],
    "bathroom": ["washroom", "loo"],
    "kids_room": ["playroom"],
    "dining_room": ["breakfast room"],
    "basement": ["downstairs room"],
    "guest_room": ["box room"],
}
# artists the music catalog resolves exactly when said in full
ARTISTS = ["taylor swift", "coldplay", "adele", "queen", "ed sheeran", "elton john", "madonna", "bruno mars"]


def _goal(key: str, intent: str, slots: dict[str, str], utterances: list[str], expect: dict[str, Any]) -> Goal:
    return Goal(key, intent, slots, utterances, ["personal"] * len(utterances), expect=expect)


def big_light(home: Home, member: str, device_id: str, name: str) -> list[tuple[str, Goal]]:
    """(habit time, goal): "turn on the big light" in the morning, "turn off the big light" in the evening."""
    out = []
    for verb, part, intent in (("on", "morning", "iot_hue_lighton"), ("off", "evening", "iot_hue_lightoff")):
        g = _goal(
            f"personal:{member}:big-light-{verb}",
            intent,
            {},
            [f"turn {verb} the big light", f"turn {verb} the {name}", f"switch {verb} the {name} please"],
            {"devices": [device_id], "phrase": "the big light"},
        )
        out.append((part, g))
    return out


def place(member: str, city: str, region: str, place_id: str) -> list[tuple[str, Goal]]:
    g = _goal(
        f"personal:{member}:place-{city}",
        "datetime_query",
        {"place_name": city},
        [f"what time is it in {city}", f"what time is it in {city} {region}", f"what's the time in {city} {region}"],
        {"entity": {"slot": "place_name", "id": place_id}, "phrase": city},
    )
    return [("morning", g)]


def room_word(home: Home, member: str, area_id: str, word: str) -> list[tuple[str, Goal]]:
    """(habit time, goal): the lights of a room called by a word the home does not list ("the den lights"); the
    other utterances name the room as the home does. `expect.area`: the room slot must resolve to that area."""
    area = home.areas[area_id].name
    lights = sorted(d.id for d in home.devices.values() if d.type == "light" and d.area == area_id)
    out = []
    for verb, part, intent in (("on", "morning", "iot_hue_lighton"), ("off", "evening", "iot_hue_lightoff")):
        g = _goal(
            f"personal:{member}:room-{word.replace(' ', '-')}-{verb}",
            intent,
            {},
            [
                f"turn {verb} the lights in the {word}",
                f"turn {verb} the lights in the {area}",
                f"switch {verb} the {area} lights please",
            ],
            {"devices": lights, "area": area_id, "phrase": word},
        )
        out.append((part, g))
    return out


def room_words(
    home: Home, seed: int, index: int, names: list[str], rate: float, names_a_room: Callable[[str], bool]
) -> dict[str, list[tuple[str, Goal]]]:
    """Member name -> [(habit time, goal)]: with probability `rate` a member calls one room with lights by a word the
    home lacks (ROOM_WORDS, minus words `names_a_room` finds among the home's names and aliases). Its own random
    stream."""
    out: dict[str, list[tuple[str, Goal]]] = {nm: [] for nm in names}
    if rate <= 0:
        return out
    lit = {d.area for d in home.devices.values() if d.type == "light"}
    for nm in names:
        rng = random.Random(f"room-word:{seed}:{index}:{nm}")
        if rng.random() >= rate:
            continue
        choices = [(a, w) for a in sorted(lit) if a in home.areas for w in ROOM_WORDS.get(a, [])]
        choices = [(a, w) for a, w in choices if not names_a_room(w)]
        if choices:
            a, w = rng.choice(choices)
            out[nm] += room_word(home, nm.lower(), a, w)
    return out


def usual(member: str, artist: str) -> list[tuple[str, Goal]]:
    g = _goal(
        f"personal:{member}:usual",
        "play_music",
        {"artist_name": artist},
        ["put on my usual", f"please put on some {artist}", f"could you play something by {artist}"],
        {"target": "artist:" + artist.replace(" ", "-"), "phrase": "my usual"},
    )
    return [("evening", g)]


def living_room_lights(home: Home) -> list[tuple[str, str]]:
    """(device id, name) of the living room's lights when it has at least two (a "big light" to disagree about)."""
    lights = sorted((d.id, d.name) for d in home.devices.values() if d.type == "light" and d.area == "living_room")
    return lights if len(lights) >= 2 else []


def personal_meanings(
    home: Home, seed: int, index: int, names: list[str], rate: float
) -> dict[str, list[tuple[str, Goal]]]:
    """Member name -> [(habit time, personal goal)]: each member takes each kind of meaning with probability `rate`;
    a later member who takes a phrase an earlier one took disagrees with probability DISAGREE."""
    out: dict[str, list[tuple[str, Goal]]] = {nm: [] for nm in names}
    if rate <= 0:
        return out
    lights = living_room_lights(home)
    taken: dict[str, str] = {}  # phrase -> the meaning the first member gave it
    hrng = random.Random(f"personal:{seed}:{index}")
    city, default, other = PLACES[hrng.randrange(len(PLACES))]
    for nm in names:
        rng = random.Random(f"personal:{seed}:{index}:{nm}")
        mid = nm.lower()
        if lights and rng.random() < rate:
            ids = [d for d, _ in lights]
            first = taken.get("big light")
            if first is None:
                dev = rng.choice(ids)
            elif rng.random() < DISAGREE:
                dev = rng.choice([d for d in ids if d != first])
            else:
                dev = first
            taken.setdefault("big light", dev)
            out[nm] += big_light(home, mid, dev, dict(lights)[dev])
        if rng.random() < rate:
            first = taken.get(city)
            if first is None:
                region, pid = other if rng.random() < 0.6 else default
            elif rng.random() < DISAGREE:
                region, pid = default if first == other[1] else other
            else:
                region, pid = other if first == other[1] else default
            taken.setdefault(city, pid)
            out[nm] += place(mid, city, region, pid)
        if rng.random() < rate:
            out[nm] += usual(mid, rng.choice(ARTISTS))
    return out


__all__ = [
    "ARTISTS",
    "DISAGREE",
    "PLACES",
    "ROOM_WORDS",
    "big_light",
    "living_room_lights",
    "personal_meanings",
    "place",
    "room_word",
    "room_words",
    "usual",
]
