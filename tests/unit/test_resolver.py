"""CatalogResolver: devices/areas from the home, music (fuzzy + phonetic), contacts, spoken numbers and times."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from assistant.core.context import TurnContext
from assistant.core.stages.nlu import NluResult, Slot
from assistant.home.model import Home
from assistant.training.catalogs import DEFAULT_DATA, DEFAULT_OUT, build, synthetic_rows
from assistant.understanding import spoken
from assistant.understanding.resolve.catalog import CatalogResolver, MusicCatalog

NOW = datetime(2025, 3, 14, 9, 0)  # a Friday morning


@pytest.fixture(scope="module")
def resolver() -> CatalogResolver:
    return CatalogResolver(Home.example())


def run(resolver: CatalogResolver, intent: str, device: str = "kitchen.speaker", text: str = "", **slots: str):
    home = Home.example()
    ctx = TurnContext(home=home, device_id=device, user_id="alex", now=NOW, session_id="s", data_dir=Path("."))
    nlu = NluResult(
        text=text or " ".join(slots.values()),
        intent=intent,
        confidence=0.9,
        slots=tuple(Slot(k, v) for k, v in slots.items()),
    )
    return resolver.resolve(nlu, ctx)


def test_generic_light_defaults_to_the_speaking_devices_area(resolver: CatalogResolver) -> None:
    dev = run(resolver, "iot_hue_lighton", "kitchen.speaker", device_type="light").first("device")
    assert dev is not None and dev.entity_id == "kitchen.light"


def test_two_equal_lights_are_ambiguous(resolver: CatalogResolver) -> None:
    dev = run(resolver, "iot_hue_lighton", "living_room.display", text="turn on the light").first("device")
    assert dev is not None and dev.ambiguous
    assert {c.entity_id for c in dev.candidates} == {"living_room.floor_lamp", "living_room.ceiling_light"}


def test_named_device_and_alias_win_anywhere(resolver: CatalogResolver) -> None:
    assert (
        run(resolver, "iot_hue_lighton", "kitchen.speaker", device_type="floor lamp").first("device").entity_id
        == "living_room.floor_lamp"
    )
    assert (
        run(resolver, "iot_hue_lighton", "living_room.display", device_type="big light").first("device").entity_id
        == "living_room.ceiling_light"
    )
    assert (
        run(resolver, "iot_cover_open", "kitchen.speaker", device_type="garage door").first("device").entity_id
        == "garage.door"
    )
    assert (
        run(resolver, "iot_appliance_on", "bedroom.speaker", device_type="oven").first("device").entity_id
        == "kitchen.oven"
    )


def test_misspelt_type_word_beats_the_intents_device_class(resolver: CatalogResolver) -> None:
    # the NLU said "plug" (iot_wemo_on) but the words say light: the light, not the kettle plug
    assert (
        run(resolver, "iot_wemo_on", "bedroom.speaker", device_type="kitchin lihgt").first("device").entity_id
        == "kitchen.light"
    )
    assert (
        run(resolver, "iot_wemo_on", "bedroom.speaker", device_type="kitchen plug").first("device").entity_id
        == "kitchen.kettle_plug"
    )


def test_house_place_overrides_speaking_area(resolver: CatalogResolver) -> None:
    res = run(resolver, "iot_hue_lightoff", "kitchen.speaker", house_place="bedroom")
    assert res.first("area").entity_id == "bedroom"
    assert res.first("device").entity_id == "bedroom.light"
    res = run(resolver, "iot_hue_lightoff", "kitchen.speaker", house_place="lounge", device_type="lights")
    group = res.first("device_group")
    assert group is not None and set(group.normalized["device_ids"]) == {
        "living_room.floor_lamp",
        "living_room.ceiling_light",
    }


def test_phonetic_music_match(resolver: CatalogResolver) -> None:
    res = run(resolver, "play_music", song_name="purple K's", artist_name="Jimmy Hendrix")
    track, artist = res.first("track"), res.first("artist")
    assert track.entity_id == "track:purple-haze" and track.name == "Purple Haze"
    assert artist.entity_id == "artist:jimi-hendrix"
    assert track.normalized["artist_id"] == "artist:jimi-hendrix"


def test_fuzzy_music_types(resolver: CatalogResolver) -> None:
    assert run(resolver, "play_music", artist_name="the beetles").first("artist").name == "The Beatles"
    assert run(resolver, "play_music", music_genre="jazz").first("genre").entity_id == "genre:jazz"
    miss = run(resolver, "play_music", song_name="zzqx wuvvle frrumptious").first("track")
    assert miss.entity_id is None


def test_contact(resolver: CatalogResolver) -> None:
    assert run(resolver, "email_sendemail", person="grandma's").first("contact").entity_id == "contact.grandma"
    assert run(resolver, "email_sendemail", person="sam").first("contact").entity_id == "sam"


@pytest.mark.parametrize(
    ("slot", "value", "etype", "expected"),
    [
        ("change_amount", "fifty percent", "number", 50),
        ("change_amount", "to 30%", "number", 30),
        ("temperature", "two hundred degrees", "temperature", 200),
        ("temperature", "twenty one degrees", "temperature", 21),
        ("duration", "ten minutes", "duration", 600),
        ("duration", "an hour and a half", "duration", 5400),
        ("duration", "half an hour", "duration", 1800),
        ("time", "half past seven", "time", "07:30"),
        ("time", "7:30 pm", "time", "19:30"),
        ("time", "seven thirty pm", "time", "19:30"),
        ("time", "quarter to eight", "time", "07:45"),
        ("time", "noon", "time", "12:00"),
        ("time", "three hours", "time", "12:00"),
        ("date", "tomorrow", "date", "2025-03-15"),
        ("date", "monday", "date", "2025-03-17"),
        ("color_type", "blue", "color", "blue"),
    ],
)
def test_spoken_values(resolver: CatalogResolver, slot: str, value: str, etype: str, expected: object) -> None:
    ent = run(resolver, "x", **{slot: value}).first(etype)
    assert ent is not None and ent.normalized == expected


def test_spoken_helpers() -> None:
    assert spoken.parse_number("a hundred and fifty") == 150
    assert spoken.parse_duration("two and a half hours") == 9000
    assert spoken.parse_time("six am") == "06:00"
    assert spoken.say_duration(5400) == "1 hour and 30 minutes"
    assert spoken.say_time("19:30") == "7:30 PM"


def test_catalog_file_is_built_from_data() -> None:
    rows = [json.loads(line) for line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines()]
    types = {r["type"] for r in rows}
    assert types == {"track", "artist", "album", "genre", "playlist"}
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["sources"] for r in rows)


@pytest.mark.skipif(not (DEFAULT_DATA / "snips").is_dir(), reason="shared data not present")
def test_catalog_build_is_reproducible() -> None:
    rows = build(DEFAULT_DATA)
    on_disk = [json.loads(line) for line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines()]
    assert rows == on_disk


def test_lookup_stays_fast_on_a_large_catalog() -> None:
    cat = MusicCatalog(
        synthetic_rows(20000) + [{"id": "track:x", "type": "track", "name": "Purple Haze", "artist": "Jimi Hendrix"}]
    )
    t0 = time.perf_counter()
    hits = cat.search("purple k's", etype="track", artist="jimmy hendrix")
    assert time.perf_counter() - t0 < 0.5
    assert hits[0][0]["id"] == "track:x"


def test_specific_word_picks_among_room_lights(resolver: CatalogResolver) -> None:
    res = run(
        resolver, "iot_hue_lighton", "kitchen.speaker", text="turn on the living room lamp", house_place="living room"
    )
    assert res.first("device").entity_id == "living_room.floor_lamp"
    res = run(resolver, "iot_hue_lighton", "kitchen.speaker", house_place="living room", device_type="lamp")
    assert res.first("device").entity_id == "living_room.floor_lamp"
    res = run(
        resolver, "iot_hue_lighton", "kitchen.speaker", text="turn on the living room light", house_place="living room"
    )
    assert res.first("device").ambiguous
