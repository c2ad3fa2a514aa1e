"""Bring a house from Home Assistant: `assistant home import EXPORT.json --out my-home.yaml`.

The export is JSON or YAML of this shape (what HA's registries and `/api/states` hold; write it by hand or with a
template):

    {"name": "My home",                                                  # optional
     "floors":   [{"floor_id": "ground", "name": "Ground floor", "aliases": ["downstairs"], "level": 0}],
     "areas":    [{"area_id": "kitchen", "name": "Kitchen", "floor_id": "ground", "aliases": []}],
     "entities": [{"entity_id": "light.kitchen", "name": "Kitchen light", "area_id": "kitchen",
                   "device_class": null, "aliases": ["big light"], "state": "on",
                   "attributes": {"brightness": 200, "friendly_name": "Kitchen light"}}]}

A bare list of entities (the body of `/api/states`) also works; areas then come from `area_id` (or
`attributes.area_id`) when present. Domains: light, switch, fan, cover, lock, climate, media_player, vacuum, sensor,
binary_sensor, scene, script; other domains (automation, person, sun, ...) are skipped and listed. States and
attributes become this project's state keys (brightness 0-255 -> percent, current_position -> open_percent,
volume_level -> volume, ...). The result is validated like any home file before it is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import ConfigError
from assistant.home.model import DEVICE_CLASSES, FAN_SPEEDS, HVAC_MODES, VACUUM_STATUS, Home

DOMAINS = {
    "light": "light",
    "switch": "switch",
    "fan": "fan",
    "cover": "cover",
    "lock": "lock",
    "climate": "thermostat",
    "media_player": "media_player",
    "vacuum": "vacuum",
    "sensor": "sensor",
    "binary_sensor": "binary_sensor",
    "scene": "scene",
    "script": "script",
    "input_boolean": "switch",
}
UNASSIGNED = "unassigned"


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", s.lower()).strip("_") or "x"


def load_export(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("import-not-found", f"export file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError("import-invalid", f"{path} is neither JSON nor YAML: {e}") from e


def _pct(v: Any, scale: float = 100.0) -> int | None:
    try:
        return max(0, min(100, round(float(v) / scale * 100)))
    except (TypeError, ValueError):
        return None


def _state(
    domain: str, dclass: str | None, state: Any, attrs: dict[str, Any]
) -> tuple[dict[str, Any], list[str] | None]:
    """(state keys, capabilities or None for the type's defaults)."""
    s = str(state).lower() if state is not None else ""
    out: dict[str, Any] = {}
    caps = None
    if domain in ("light", "switch", "fan", "input_boolean"):
        out["on"] = s == "on"
    if domain == "light":
        b = _pct(attrs.get("brightness"), 255)
        if b is not None and b > 0:
            out["brightness"] = b
        k = attrs.get("color_temp_kelvin")
        if isinstance(k, (int, float)) and 1000 <= k <= 10000:
            out["color_temp"] = int(k)
        modes = attrs.get("supported_color_modes")
        if isinstance(modes, list) and modes == ["onoff"]:
            caps = ["on_off"]
        elif isinstance(modes, list) and set(modes) <= {"onoff", "brightness"}:
            caps = ["on_off", "brightness"]
    if domain == "fan":
        p = attrs.get("percentage")
        if isinstance(p, (int, float)) and p > 0:
            out["speed"] = FAN_SPEEDS[min(2, int(p // 34))]
        if "percentage" not in attrs and "preset_mode" not in attrs:
            caps = ["on_off"]
    if domain == "cover":
        out["position"] = "open" if s in ("open", "opening") else "closed"
        cp = attrs.get("current_position")
        if isinstance(cp, (int, float)):
            out["open_percent"] = int(cp)
        else:
            caps = ["open_close"]
    if domain == "lock":
        out["locked"] = s in ("locked", "locking")
    if domain == "climate":
        if isinstance(attrs.get("temperature"), (int, float)):
            out["temperature"] = attrs["temperature"]
        if isinstance(attrs.get("current_temperature"), (int, float)):
            out["current_temperature"] = attrs["current_temperature"]
        if s in HVAC_MODES:
            out["hvac_mode"] = s
    if domain == "media_player":
        out["on"] = s not in ("off", "standby", "unavailable", "")
        if s in ("playing", "paused", "idle"):
            out["playback"] = s
        v = _pct(attrs.get("volume_level"), 1.0)
        if v is not None:
            out["volume"] = v
        if isinstance(attrs.get("is_volume_muted"), bool):
            out["muted"] = attrs["is_volume_muted"]
    if domain == "vacuum":
        out["on"] = s == "cleaning"
        if s in VACUUM_STATUS:
            out["status"] = s
    if domain == "sensor":
        try:
            out["value"] = float(state)
        except (TypeError, ValueError):
            pass
    if domain == "binary_sensor":
        out["detected"] = s == "on"
    bl = attrs.get("battery_level", attrs.get("battery"))
    if domain in ("sensor", "binary_sensor") and isinstance(bl, (int, float)) and 0 <= bl <= 100:
        out["battery"] = int(bl)
    return out, caps


def convert(raw: Any, name: str | None = None, satellite_area: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """An HA-style export -> (a home dict for Home.from_dict, notes on what was skipped)."""
    if isinstance(raw, list):
        raw = {"entities": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("entities"), list):
        raise ConfigError(
            "import-invalid",
            "the export must be a list of entities or a mapping with `entities:` "
            "(and optionally `areas:`, `floors:`); see assistant/home/importer.py for the shape",
        )
    notes: list[str] = []
    floors = []
    for f in raw.get("floors") or []:
        fid = _slug(str(f.get("floor_id") or f.get("id") or f.get("name") or ""))
        floors.append(
            {
                "id": fid,
                "name": str(f.get("name") or fid.replace("_", " ")).lower(),
                "aliases": [str(a).lower() for a in f.get("aliases") or []],
                **({"level": int(f["level"])} if isinstance(f.get("level"), int) else {}),
            }
        )
    floor_ids = {f["id"] for f in floors}
    areas: dict[str, dict[str, Any]] = {}
    for a in raw.get("areas") or []:
        aid = _slug(str(a.get("area_id") or a.get("id") or a.get("name") or ""))
        fl = a.get("floor_id") or a.get("floor")
        areas[aid] = {
            "id": aid,
            "name": str(a.get("name") or aid.replace("_", " ")).lower(),
            "aliases": [str(x).lower() for x in a.get("aliases") or []],
            **({"floor": _slug(str(fl))} if fl and _slug(str(fl)) in floor_ids else {}),
        }
        if fl and _slug(str(fl)) not in floor_ids:
            notes.append(f"area {aid}: floor {fl!r} is not among the floors; left without a floor")
    devices = []
    for i, e in enumerate(raw["entities"]):
        if not isinstance(e, dict) or not e.get("entity_id"):
            notes.append(f"entities[{i}]: no entity_id; skipped")
            continue
        eid = str(e["entity_id"])
        domain = eid.split(".", 1)[0]
        attrs = e.get("attributes") or {}
        if domain not in DOMAINS:
            notes.append(f"{eid}: domain {domain!r} is not a device the assistant controls; skipped")
            continue
        dtype = DOMAINS[domain]
        dclass = e.get("device_class") or attrs.get("device_class")
        if dtype == "media_player" and dclass == "tv":
            dtype = "tv"
        if domain == "switch" and dclass == "outlet":
            dtype = "plug"
        allowed = DEVICE_CLASSES.get(dtype, ())
        if dclass and dclass not in allowed:
            if dtype in ("sensor", "binary_sensor"):
                notes.append(f"{eid}: device class {dclass!r} is not one the assistant reads; skipped")
                continue
            dclass = None
        if dtype in ("sensor", "binary_sensor") and not dclass:
            notes.append(f"{eid}: a {domain} without a device class; skipped")
            continue
        if dtype == "tv":
            dclass = None
        area = e.get("area_id") or attrs.get("area_id")
        area = _slug(str(area)) if area else UNASSIGNED
        if area not in areas:
            areas[area] = {"id": area, "name": area.replace("_", " "), "aliases": []}
            if area == UNASSIGNED:
                notes.append(f"{eid}: no area; put in the area {UNASSIGNED!r} (assign one in the YAML)")
        state, caps = _state(domain, dclass, e.get("state"), attrs)
        dname = str(e.get("name") or attrs.get("friendly_name") or eid.split(".", 1)[1].replace("_", " ")).lower()
        dev: dict[str, Any] = {"id": eid, "name": dname, "type": dtype, "area": area}
        aliases = [str(a).lower() for a in e.get("aliases") or [] if str(a).lower() != dname]
        if aliases:
            dev["aliases"] = aliases
        if dclass:
            dev["device_class"] = dclass
        if caps is not None:
            dev["capabilities"] = caps
        if attrs.get("unit_of_measurement") and dtype == "sensor":
            dev["unit"] = str(attrs["unit_of_measurement"])
        if state:
            dev["state"] = state
        devices.append(dev)
    if not areas:
        raise ConfigError("import-invalid", "the export has no areas and no entity with an area_id")
    sat_area = satellite_area or next(iter(areas))
    if sat_area not in areas:
        raise ConfigError("import-invalid", f"--satellite-area {sat_area!r} is not an area; areas: {', '.join(areas)}")
    home = {
        "name": name or raw.get("name") or "imported home",
        **({"floors": floors} if floors else {}),
        "areas": list(areas.values()),
        "devices": devices,
        "satellites": [
            {"id": f"satellite.{sat_area}", "name": f"{areas[sat_area]['name']} assistant", "area": sat_area}
        ],
    }
    return home, notes


def import_home(
    src: Path, out: Path, name: str | None = None, satellite_area: str | None = None
) -> tuple[Home, list[str]]:
    """Convert, validate (Home.from_dict) and write `out`; returns the home and the notes."""
    home_dict, notes = convert(load_export(src), name, satellite_area)
    home = Home.from_dict(home_dict, source=out)
    header = (
        f"# Imported from {Path(src).name} by `assistant home import` "
        "(format: assistant/data/homes/example.yaml).\n"
        "# Check names and aliases: they are what people say. Satellites are the devices people talk to.\n"
    )
    Path(out).write_text(header + yaml.safe_dump(home_dict, sort_keys=False, allow_unicode=True), encoding="utf-8")
    Home.load(out)  # what was written loads back
    return home, notes
