"""`assistant home import`: a Home Assistant-style export becomes a valid home file (no models)."""

from __future__ import annotations

import json

import pytest

from assistant.errors import ConfigError
from assistant.home import grammar
from assistant.home.importer import convert, import_home
from assistant.home.model import Home

EXPORT = {
    "name": "Cabin",
    "floors": [{"floor_id": "ground", "name": "Ground floor", "aliases": ["downstairs"], "level": 0}],
    "areas": [
        {"area_id": "living_room", "name": "Living Room", "floor_id": "ground"},
        {"area_id": "porch", "name": "Porch", "floor_id": "ground"},
    ],
    "entities": [
        {
            "entity_id": "light.lamp",
            "name": "Living Room Lamp",
            "area_id": "living_room",
            "state": "on",
            "attributes": {"brightness": 128},
        },
        {"entity_id": "lock.front_door", "name": "Front Door", "area_id": "porch", "state": "unlocked"},
        {
            "entity_id": "cover.blinds",
            "name": "Blinds",
            "area_id": "living_room",
            "device_class": "blind",
            "state": "open",
            "attributes": {"current_position": 60},
        },
        {
            "entity_id": "climate.t",
            "name": "Thermostat",
            "area_id": "living_room",
            "state": "heat",
            "attributes": {"temperature": 20, "current_temperature": 18.5},
        },
        {
            "entity_id": "sensor.porch",
            "name": "Porch Temperature",
            "area_id": "porch",
            "device_class": "temperature",
            "state": "3.5",
            "attributes": {"unit_of_measurement": "°C", "battery_level": 70},
        },
        {"entity_id": "automation.morning", "state": "on"},
        {"entity_id": "sensor.uptime", "state": "12"},
    ],
}


def test_import_converts_states_and_skips_what_it_cannot_control(tmp_path):
    src = tmp_path / "export.json"
    src.write_text(json.dumps(EXPORT))
    home, notes = import_home(src, tmp_path / "home.yaml")
    assert home.device("light.lamp").state == {"on": True, "brightness": 50, "color": "white"}
    assert home.device("lock.front_door").state["locked"] is False
    assert home.device("cover.blinds").state["open_percent"] == 60
    assert home.device("climate.t").state["current_temperature"] == 18.5
    assert home.device("sensor.porch").state == {"value": 3.5, "battery": 70}
    assert home.floor_of("porch") == "ground"
    assert any("automation.morning" in n for n in notes) and any("sensor.uptime" in n for n in notes)
    again = Home.load(tmp_path / "home.yaml")  # the written file loads and the grammar understands it
    cmd = grammar.parse("lock the front door", again)
    assert cmd.action == "lock" and cmd.target.device_ids == ["lock.front_door"]


def test_a_bare_state_list_works_and_bad_shapes_are_clear_errors():
    home, _ = convert([{"entity_id": "light.x", "state": "off", "area_id": "hall"}])
    assert Home.from_dict(home).device("light.x").area == "hall"
    with pytest.raises(ConfigError, match="entities"):
        convert({"devices": []})
    with pytest.raises(ConfigError, match="satellite-area"):
        convert(EXPORT, satellite_area="attic")
