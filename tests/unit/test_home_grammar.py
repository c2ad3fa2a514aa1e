"""The home grammar and target selection: pure logic on the example home, no models."""

from __future__ import annotations

from datetime import datetime

import pytest

from assistant.home import grammar
from assistant.home.model import Home
from assistant.home.targets import ACTION_CAPS, select

NOW = datetime(2026, 1, 5, 18, 0)


@pytest.fixture(scope="module")
def home():
    return Home.example()


def parse(text, home):
    return grammar.parse(text, home, NOW)


@pytest.mark.parametrize(
    "text, action, key, value",
    [
        ("turn off all the lights", "turn_off", "all", True),
        ("turn off all the lights downstairs", "turn_off", "floor", "ground"),
        ("switch the upstairs lights on", "turn_on", "floor", "upstairs"),
        ("lock the back door", "lock", "device_ids", ["kitchen.back_door"]),
        ("i need the back door unlocked", "unlock", "device_ids", ["kitchen.back_door"]),
        ("i want the garage door shut", "close", "device_ids", ["garage.door"]),
        ("lock the front door", "lock", "unknown", "front door"),
        ("open the blinds in the bedroom", "open", "device_ids", ["bedroom.blinds"]),
        ("close every window", "close", "classes", ["window"]),
        ("turn it off", "turn_off", "pronoun", True),
        ("turn off the lights here", "turn_off", "here", True),
        ("activate movie time", "activate", "device_ids", ["scene.movie_time"]),
    ],
)
def test_targets(home, text, action, key, value):
    cmd = parse(text, home)
    assert cmd is not None and cmd.action == action
    assert getattr(cmd.target, key) == value


@pytest.mark.parametrize(
    "text, action, params",
    [
        ("dim the bedroom light to 30 percent", "brightness", {"brightness": 30}),
        ("set the living room lights to warm white", "color_temp", {"kelvin": 2700, "name": "warm white"}),
        ("make the floor lamp candle light", "color_temp", {"kelvin": 1900, "name": "candle light"}),
        ("turn the floor lamp blue", "color", {"color": "blue"}),
        ("open the blinds halfway", "position", {"percent": 50}),
        ("set the fan to high", "fan_speed", {"speed": "high"}),
        ("set the thermostat to 21 degrees", "set_temperature", {"temperature": 21.0}),
        ("turn the heating up", "set_temperature", {"delta": 1}),
        ("pause the tv", "media", {"op": "pause"}),
        ("send the vacuum home", "vacuum", {"op": "dock"}),
    ],
)
def test_params(home, text, action, params):
    cmd = parse(text, home)
    assert cmd is not None and cmd.action == action and cmd.params == params


def test_delays_and_times(home):
    cmd = parse("in ten minutes turn off the lights", home)
    assert cmd.action == "turn_off" and cmd.delay_s == 600
    assert parse("turn off the lights in 1 hour 5 minutes", home).delay_s == 3900
    cmd = parse("at 7 pm close the blinds", home)
    assert cmd.action == "close" and cmd.at == "2026-01-05T19:00:00"
    assert parse("at 7 am open the blinds", home).at == "2026-01-06T07:00:00"  # passed today: tomorrow


@pytest.mark.parametrize(
    "text, kind",
    [
        ("is the back door locked", "yesno"),
        ("which lights are on", "which"),
        ("how many windows are open", "count"),
        ("is the garage door open", "yesno"),
        ("what's the battery of the smoke alarm", "battery"),
        ("what is the temperature", "reading"),
        ("what's the temperature in the living room", "reading"),
    ],
)
def test_questions(home, text, kind):
    cmd = parse(text, home)
    assert cmd is not None and cmd.action == "query" and cmd.params["kind"] == kind


@pytest.mark.parametrize(
    "text",
    [
        "play some jazz",
        "set a timer for ten minutes",
        "what is the temperature tomorrow",
        "what's the temperature in paris",
        "what time is it",
        "turn up the music",
        "add milk to the shopping list",
    ],
)
def test_not_home_commands_are_left_to_the_nlu(home, text):
    assert parse(text, home) is None


def test_select_every_matching_device_and_never_another(home):
    cmd = parse("turn off all the lights downstairs", home)
    sel = select(cmd.target, home, "kitchen", None, ACTION_CAPS["turn_off"])
    assert {d.id for d in sel.devices} == {
        "living_room.floor_lamp",
        "living_room.ceiling_light",
        "kitchen.light",
        "hallway.light",
    }
    assert sel.group and sel.scope == "on the ground floor"
    sel = select(parse("lock the front door", home).target, home, "kitchen", None, ACTION_CAPS["lock"])
    assert sel.devices == [] and sel.error == "There's no lock called front door."


def test_singular_with_two_candidates_asks(home):
    sel = select(parse("turn on the light", home).target, home, "living_room", None, ACTION_CAPS["turn_on"])
    assert not sel.devices and {d.id for d in sel.ask} == {"living_room.floor_lamp", "living_room.ceiling_light"}
    sel = select(parse("turn on the lamp", home).target, home, "living_room", None, ACTION_CAPS["turn_on"])
    assert [d.id for d in sel.devices] == ["living_room.floor_lamp"]


def test_here_and_pronouns(home):
    sel = select(parse("turn off the lights here", home).target, home, "bedroom", None, ACTION_CAPS["turn_off"])
    assert [d.id for d in sel.devices] == ["bedroom.light"]
    sel = select(parse("turn it off", home).target, home, "bedroom", ["office.desk_lamp"], ACTION_CAPS["turn_off"])
    assert [d.id for d in sel.devices] == ["office.desk_lamp"]


def test_several_targets_in_one_request(home):
    cmd = parse("turn off the floor lamp, the desk lamp and the bedroom light", home)
    assert cmd.target.device_ids == ["living_room.floor_lamp", "office.desk_lamp", "bedroom.light"]
    cmd = parse("turn on the lights in the kitchen and the living room", home)
    assert cmd.target.areas == ["kitchen", "living_room"] and cmd.target.types == ["light"]
    assert parse("set the fan to 80 percent", home).params == {"speed": "high"}


def test_brand_words_name_a_kind_and_asr_slips_only_for_real_locks(home):
    assert parse("turn off smart plug socket", home).target.types == ["plug", "switch"]
    assert parse("walk the back door", home).action == "lock"  # Whisper's "lock"
    assert parse("walk the dog", home) is None
