"""Home model: loading the example, queries, set_state, snapshot, and helpful ConfigErrors for malformed files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from assistant.core.context import TurnContext
from assistant.errors import ConfigError
from assistant.home.model import EXAMPLE_HOME, Home

MINIMAL = """
areas:
  - {id: kitchen, name: kitchen}
devices:
  - {id: kitchen.light, name: kitchen light, type: light, area: kitchen}
satellites:
  - {id: kitchen.speaker, name: kitchen speaker, area: kitchen}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "home.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_home_loads_with_required_content() -> None:
    home = Home.load(EXAMPLE_HOME)
    living_lights = home.find_devices(area="living_room", type="light")
    assert len(living_lights) >= 2
    assert home.find_devices(type="oven") and home.find_devices(type="thermostat")
    covers = {d.name for d in home.find_devices(type="cover")}
    assert "garage door" in covers and any("blinds" in c for c in covers)
    sats = {d.id: d for d in home.satellites()}
    assert sats["kitchen.speaker"].has_screen is False
    assert sats["living_room.display"].has_screen is True
    assert home.members and home.contacts


def test_on_off_keys_are_not_yaml_booleans(tmp_path: Path) -> None:
    home = Home.load(
        write(
            tmp_path, MINIMAL.replace("area: kitchen}\nsat", "area: kitchen, state: {on: true, brightness: 40}}\nsat")
        )
    )
    assert home.device("kitchen.light").state == {"on": True, "brightness": 40, "color": "white"}


def test_set_state_returns_the_change_and_snapshot_is_json_safe() -> None:
    home = Home.example()
    assert home.set_state("kitchen.oven", on=True, temperature=200) == {"on": True, "temperature": 200}
    assert home.set_state("kitchen.oven", on=True) == {}
    assert home.device("kitchen.oven").state["temperature"] == 200
    snap = home.snapshot()
    json.dumps(snap)
    assert snap["devices"]["kitchen.oven"]["state"]["on"] is True


def test_set_state_rejects_what_the_device_cannot_do() -> None:
    home = Home.example()
    with pytest.raises(ValueError, match="capability"):
        home.set_state("kitchen.oven", brightness=10)
    with pytest.raises(ValueError):
        home.set_state("kitchen.light", brightness=150)
    with pytest.raises(KeyError):
        home.set_state("nope", on=True)


def test_speaking_device() -> None:
    home = Home.example()
    ctx = TurnContext(
        home=home,
        device_id="kitchen.speaker",
        user_id="alex",
        now=datetime(2025, 1, 1),
        session_id="s",
        data_dir=Path("."),
    )
    dev = home.speaking_device(ctx)
    assert dev is not None and dev.area == "kitchen"


@pytest.mark.parametrize(
    ("text", "must_contain"),
    [
        ("areas: [\n  - id: x\n", ["not valid YAML", "line"]),
        (
            MINIMAL.replace("type: light", "type: toaster"),
            ["devices[0]", "kitchen.light", "type", "toaster", "write one of", "light"],
        ),
        (MINIMAL.replace("id: kitchen.speaker", "id: kitchen.light"), ["duplicate id", "kitchen.light"]),
        (
            MINIMAL.replace("type: light, area: kitchen", "type: light, area: attic"),
            ["area 'attic'", "not defined", "kitchen"],
        ),
        (MINIMAL.replace(", area: kitchen}\nsat", "}\nsat"), ["devices[0]", "area", "required"]),
        (MINIMAL.replace("type: light,", "type: light, colour: red,"), ["colour", "unknown field"]),
        ("- just a list\n", ["must be a mapping"]),
    ],
)
def test_malformed_home_files_give_helpful_config_errors(tmp_path: Path, text: str, must_contain: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        Home.load(path)
    msg = err.value.message
    assert str(path) in msg
    for part in must_contain:
        assert part in msg, msg


def test_missing_home_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Home.load(tmp_path / "nope.yaml")
    assert err.value.code == "home-not-found"
