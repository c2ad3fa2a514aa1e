"""The home model: areas, devices (with their live state), satellites, members and contacts.

A home is described by a YAML file (see `assistant/data/homes/example.yaml`) and loaded with `Home.load(path)`.
The file is validated with pydantic; every problem raises a `ConfigError` that names the file, the field and what
to write instead. Skills change device state only through `Home.set_state`, which checks the change against the
device's capabilities and returns what changed.
"""

from __future__ import annotations

import copy
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.config import PACKAGE_DATA
from assistant.errors import ConfigError

if TYPE_CHECKING:
    from assistant.core.context import TurnContext

EXAMPLE_HOME = PACKAGE_DATA / "homes" / "example.yaml"

# Device type -> capabilities it has unless the file lists its own, and the state it starts in.
DEVICE_TYPES: dict[str, dict[str, Any]] = {
    "light": {
        "capabilities": ["on_off", "brightness", "color", "color_temp"],
        "state": {"on": False, "brightness": 100, "color": "white"},
    },
    "switch": {"capabilities": ["on_off"], "state": {"on": False}},
    "plug": {"capabilities": ["on_off"], "state": {"on": False}},
    "oven": {"capabilities": ["on_off", "temperature"], "state": {"on": False, "temperature": 0}},
    "thermostat": {"capabilities": ["temperature", "hvac_mode"], "state": {"temperature": 20}},
    "cover": {"capabilities": ["open_close", "set_position"], "state": {"position": "closed"}},
    "fan": {"capabilities": ["on_off", "fan_speed"], "state": {"on": False}},
    "tv": {"capabilities": ["on_off", "volume", "media"], "state": {"on": False, "volume": 30}},
    "heater": {"capabilities": ["on_off", "temperature"], "state": {"on": False}},
    "speaker": {"capabilities": ["volume", "media"], "state": {"volume": 50}},
    "display": {"capabilities": ["volume", "media", "screen"], "state": {"volume": 50}},
    "coffee_machine": {"capabilities": ["on_off"], "state": {"on": False}},
    "vacuum": {"capabilities": ["on_off", "clean"], "state": {"on": False, "status": "docked"}},
    "kettle": {"capabilities": ["on_off"], "state": {"on": False}},
    "lock": {"capabilities": ["lock"], "state": {"locked": True}},
    "media_player": {"capabilities": ["on_off", "volume", "media"], "state": {"on": False, "volume": 30}},
    "sensor": {"capabilities": [], "state": {}},
    "binary_sensor": {"capabilities": [], "state": {"detected": False}},
    "scene": {"capabilities": ["activate"], "state": {}},
    "script": {"capabilities": ["activate"], "state": {}},
}
SATELLITE_TYPES = ("speaker", "display")
CAPABILITIES = (
    "on_off",
    "brightness",
    "color",
    "color_temp",
    "temperature",
    "hvac_mode",
    "open_close",
    "set_position",
    "fan_speed",
    "volume",
    "media",
    "screen",
    "lock",
    "clean",
    "activate",
)

# Device classes a type may carry (Home Assistant's names). Covers and sensors need them to be found by class
# ("every window", "the garage door", "how warm is it"); the others are optional.
DEVICE_CLASSES: dict[str, tuple[str, ...]] = {
    "cover": ("garage", "gate", "door", "blind", "curtain", "shade", "shutter", "awning", "window", "damper"),
    "binary_sensor": (
        "door",
        "window",
        "garage_door",
        "opening",
        "motion",
        "occupancy",
        "presence",
        "smoke",
        "moisture",
        "gas",
        "battery",
        "lock",
        "vibration",
        "sound",
    ),
    "sensor": (
        "temperature",
        "humidity",
        "battery",
        "power",
        "energy",
        "illuminance",
        "pressure",
        "carbon_dioxide",
        "pm25",
        "voltage",
    ),
    "switch": ("switch", "outlet"),
    "plug": ("outlet",),
    "media_player": ("tv", "speaker", "receiver"),
    "lock": ("lock",),
}
FAN_SPEEDS = ("low", "medium", "high")
HVAC_MODES = ("off", "heat", "cool", "auto", "heat_cool", "dry", "fan_only")
PLAYBACK = ("playing", "paused", "idle")
VACUUM_STATUS = ("docked", "cleaning", "paused", "returning", "idle", "error")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pct(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100


# State key -> (capability that allows changing it, check, description for error messages). A key whose capability
# is None is read-only (sensors report it; no command changes it).
STATE_KEYS: dict[str, tuple[str | None, Any, str]] = {
    "on": ("on_off", lambda v: isinstance(v, bool), "true or false"),
    "brightness": ("brightness", _pct, "a whole number 0-100"),
    "color": (
        "color",
        lambda v: isinstance(v, str) and bool(v.strip()),
        "a colour name such as 'warm white' or 'blue'",
    ),
    "color_temp": (
        "color_temp",
        lambda v: isinstance(v, int) and 1000 <= v <= 10000,
        "a colour temperature in kelvin (1000-10000)",
    ),
    "temperature": ("temperature", _is_num, "a number of degrees"),
    "current_temperature": (None, _is_num, "a number of degrees"),
    "hvac_mode": ("hvac_mode", lambda v: v in HVAC_MODES, f"one of {', '.join(HVAC_MODES)}"),
    "position": ("open_close", lambda v: v in ("open", "closed"), "'open' or 'closed'"),
    "open_percent": ("set_position", _pct, "a whole number 0-100 (0 = closed)"),
    "speed": ("fan_speed", lambda v: v in FAN_SPEEDS, f"one of {', '.join(FAN_SPEEDS)}"),
    "volume": ("volume", _pct, "a whole number 0-100"),
    "muted": ("volume", lambda v: isinstance(v, bool), "true or false"),
    "playback": ("media", lambda v: v in PLAYBACK, f"one of {', '.join(PLAYBACK)}"),
    "media_title": ("media", lambda v: isinstance(v, str), "a title"),
    "locked": ("lock", lambda v: isinstance(v, bool), "true or false"),
    "status": ("clean", lambda v: v in VACUUM_STATUS, f"one of {', '.join(VACUUM_STATUS)}"),
    "value": (None, lambda v: _is_num(v) or isinstance(v, str), "a number (the sensor's reading)"),
    "detected": (None, lambda v: isinstance(v, bool), "true or false (door/window open, motion, smoke ...)"),
    "battery": (None, _pct, "a whole number 0-100"),
    "humidity": (None, _is_num, "a percentage"),
    "last_activated": ("activate", lambda v: isinstance(v, str), "an ISO time"),
}
PERCENT_KEYS = ("brightness", "volume")


class HomeYamlLoader(yaml.SafeLoader):
    """YAML 1.2-style booleans: only true/false are booleans, so `on:` stays the string key "on"."""


HomeYamlLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
HomeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _check_state(state: dict[str, Any]) -> dict[str, Any]:
    for key, value in state.items():
        if key not in STATE_KEYS:
            raise ValueError(f"unknown state key {key!r}; use one of: {', '.join(STATE_KEYS)}")
        _cap, check, desc = STATE_KEYS[key]
        if not check(value):
            raise ValueError(f"state {key!r} must be {desc}, not {value!r}")
    return state


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloorConfig(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    level: int | None = None


class AreaConfig(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    floor: str | None = None
    outdoor: bool = False


class DeviceConfig(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: str
    area: str
    aliases: list[str] = Field(default_factory=list)
    capabilities: list[str] | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    has_screen: bool = False
    device_class: str | None = None
    unit: str | None = None
    outdoor: bool = False
    sets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """For a scene or script: device id -> the state it sets when activated."""

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in DEVICE_TYPES:
            raise ValueError(f"unknown device type {v!r}; write one of: {', '.join(DEVICE_TYPES)}")
        return v

    @field_validator("capabilities")
    @classmethod
    def _known_caps(cls, v: list[str] | None) -> list[str] | None:
        for cap in v or []:
            if cap not in CAPABILITIES:
                raise ValueError(f"unknown capability {cap!r}; write any of: {', '.join(CAPABILITIES)}")
        return v

    @field_validator("state")
    @classmethod
    def _valid_state(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_state(v)

    @model_validator(mode="after")
    def _known_class(self) -> DeviceConfig:
        classes = DEVICE_CLASSES.get(self.type, ())
        if self.device_class is not None and self.device_class not in classes:
            hint = f"write one of: {', '.join(classes)}" if classes else f"a {self.type} takes no device_class"
            raise ValueError(f"device_class {self.device_class!r} is not one for a {self.type}; {hint}")
        if self.sets and self.type not in ("scene", "script"):
            raise ValueError(f"`sets:` is for scenes and scripts, not a {self.type}; remove it")
        for state in self.sets.values():
            _check_state(state)
        if self.type in ("sensor", "binary_sensor") and self.device_class is None:
            raise ValueError(
                f"a {self.type} needs a device_class (one of: {', '.join(classes)}), "
                "so questions like 'what is the temperature' find it"
            )
        return self


class SatelliteConfig(_Strict):
    """A device the user speaks to; it is also a device of type `speaker` (or `display` if it has a screen)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    area: str
    has_screen: bool = False
    aliases: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)

    @field_validator("state")
    @classmethod
    def _valid_state(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_state(v)


class PersonConfig(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    phone: str | None = None
    email: str | None = None


class HomeConfig(_Strict):
    name: str = "home"
    timezone: str | None = None
    floors: list[FloorConfig] = Field(default_factory=list)
    areas: list[AreaConfig] = Field(min_length=1)
    devices: list[DeviceConfig] = Field(default_factory=list)
    satellites: list[SatelliteConfig] = Field(min_length=1)
    members: list[PersonConfig] = Field(default_factory=list)
    contacts: list[PersonConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> HomeConfig:
        area_ids = [a.id for a in self.areas]
        floor_ids = [f.id for f in self.floors]
        _no_duplicates("floors", floor_ids)
        _no_duplicates("areas", area_ids)
        for i, a in enumerate(self.areas):
            if a.floor is not None and a.floor not in floor_ids:
                raise ValueError(
                    f"areas[{i}] (id {a.id!r}): floor {a.floor!r} is not defined; write one of the floor ids: "
                    f"{', '.join(floor_ids) or '(none yet)'} (or add it under `floors:`)"
                )
        _no_duplicates("devices and satellites", [d.id for d in self.devices] + [s.id for s in self.satellites])
        _no_duplicates("members and contacts", [p.id for p in self.members] + [p.id for p in self.contacts])
        all_ids = {d.id for d in self.devices} | {s.id for s in self.satellites}
        for i, d in enumerate(self.devices):
            for target in d.sets:
                if target not in all_ids:
                    raise ValueError(
                        f"devices[{i}] (id {d.id!r}): sets {target!r}, which is not a device id in this home"
                    )
        for section, items in (("devices", self.devices), ("satellites", self.satellites)):
            for i, d in enumerate(items):
                if d.area not in area_ids:
                    raise ValueError(
                        f"{section}[{i}] (id {d.id!r}): area {d.area!r} is not defined; "
                        f"write one of the area ids: {', '.join(area_ids)} (or add it under `areas:`)"
                    )
        return self


def _no_duplicates(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate id {i!r} in {section}; every id must be unique, rename one of them")
        seen.add(i)


def _format_validation_error(path: Path, raw: Any, err: ValidationError) -> str:
    lines = [f"home file {path} is invalid:"]
    for e in err.errors():
        loc = list(e.get("loc", ()))
        parts: list[str] = []
        node: Any = raw
        for item in loc:
            if isinstance(item, int):
                ident = (
                    node[item].get("id")
                    if isinstance(node, list) and item < len(node) and isinstance(node[item], dict)
                    else None
                )
                parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]" + (f" (id {ident!r})" if ident else "")]
            else:
                parts.append(str(item))
            try:
                node = node[item]
            except (KeyError, IndexError, TypeError):
                node = None
        field = ".".join(parts) or "(top level)"
        msg = e.get("msg", "invalid")
        msg = msg.removeprefix("Value error, ")
        etype = e.get("type")
        if etype == "missing":
            msg = f"field is required; add `{loc[-1]}:` there" if loc else "a required field is missing"
        elif etype == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling (see assistant/data/homes/example.yaml)"
        lines.append(f"  - {field}: {msg}")
    return "\n".join(lines)


class Device:
    """A device in the home with its live state."""

    def __init__(self, cfg: DeviceConfig | SatelliteConfig, *, satellite: bool = False) -> None:
        if isinstance(cfg, SatelliteConfig):
            dtype = "display" if cfg.has_screen else "speaker"
            caps = list(DEVICE_TYPES[dtype]["capabilities"])
            has_screen = cfg.has_screen
        else:
            dtype = cfg.type
            caps = list(cfg.capabilities if cfg.capabilities is not None else DEVICE_TYPES[dtype]["capabilities"])
            has_screen = cfg.has_screen or dtype == "display"
        self.id = cfg.id
        self.name = cfg.name
        self.type = dtype
        self.area = cfg.area
        self.aliases = list(cfg.aliases)
        self.capabilities = caps
        self.has_screen = has_screen
        self.satellite = satellite
        self.device_class: str | None = None if isinstance(cfg, SatelliteConfig) else cfg.device_class
        self.unit: str | None = None if isinstance(cfg, SatelliteConfig) else cfg.unit
        self.outdoor: bool = False if isinstance(cfg, SatelliteConfig) else cfg.outdoor
        self.sets: dict[str, dict[str, Any]] = {} if isinstance(cfg, SatelliteConfig) else copy.deepcopy(cfg.sets)
        self.state: dict[str, Any] = {**copy.deepcopy(DEVICE_TYPES[dtype]["state"]), **copy.deepcopy(cfg.state)}
        if "set_position" in caps and "open_percent" not in self.state:
            self.state["open_percent"] = 100 if self.state.get("position") == "open" else 0

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "area": self.area,
            "aliases": list(self.aliases),
            "capabilities": list(self.capabilities),
            "has_screen": self.has_screen,
            "satellite": self.satellite,
            "device_class": self.device_class,
            "state": copy.deepcopy(self.state),
        }

    def __repr__(self) -> str:
        return f"Device({self.id!r}, type={self.type!r}, area={self.area!r}, state={self.state!r})"


class Home:
    """Areas, devices and people of one home. Device state lives here and changes only via `set_state`."""

    def __init__(self, config: HomeConfig, source: Path | None = None) -> None:
        self.config = config
        self.source = source
        self.name = config.name
        self.floors: dict[str, FloorConfig] = {f.id: f for f in config.floors}
        self.areas: dict[str, AreaConfig] = {a.id: a for a in config.areas}
        self.devices: dict[str, Device] = {}
        for d in config.devices:
            self.devices[d.id] = Device(d)
        for s in config.satellites:
            self.devices[s.id] = Device(s, satellite=True)
        self.members: dict[str, PersonConfig] = {m.id: m for m in config.members}
        self.contacts: dict[str, PersonConfig] = {c.id: c for c in config.contacts}
        self._lock = threading.Lock()

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Home:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                "home-not-found",
                f"home file {path} does not exist; pass the path of a home YAML file (an example is {EXAMPLE_HOME})",
            )
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=HomeYamlLoader)  # noqa: S506 (safe loader)
        except yaml.YAMLError as e:
            where = ""
            mark = getattr(e, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(
                "home-yaml",
                f"home file {path} is not valid YAML{where}: {problem}; check the indentation and quoting there "
                f"(see {EXAMPLE_HOME} for the layout)",
            ) from e
        return cls.from_dict(raw, source=path)

    @classmethod
    def from_dict(cls, raw: Any, source: Path | None = None) -> Home:
        where = str(source) if source else "<dict>"
        if not isinstance(raw, dict):
            raise ConfigError(
                "home-invalid",
                f"home file {where} must be a mapping with `areas:`, `devices:` and `satellites:` at the top level, "
                f"got {type(raw).__name__}; see {EXAMPLE_HOME}",
            )
        try:
            config = HomeConfig.model_validate(raw)
        except ValidationError as e:
            raise ConfigError("home-invalid", _format_validation_error(Path(where), raw, e)) from e
        return cls(config, source)

    @classmethod
    def example(cls) -> Home:
        return cls.load(EXAMPLE_HOME)

    # ---- queries -------------------------------------------------------------------------------------------
    def device(self, device_id: str) -> Device:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in home {self.name!r}") from None

    def area_name(self, area_id: str | None) -> str | None:
        return self.areas[area_id].name if area_id in self.areas else None

    def find_devices(
        self,
        *,
        area: str | None = None,
        type: str | tuple[str, ...] | list[str] | None = None,
        capability: str | None = None,
    ) -> list[Device]:
        types = (type,) if isinstance(type, str) else tuple(type) if type else None
        return [
            d
            for d in self.devices.values()
            if (area is None or d.area == area)
            and (types is None or d.type in types)
            and (capability is None or capability in d.capabilities)
        ]

    def floor_of(self, area_id: str | None) -> str | None:
        a = self.areas.get(area_id or "")
        return a.floor if a is not None else None

    def is_outdoor(self, dev: Device) -> bool:
        a = self.areas.get(dev.area)
        return dev.outdoor or bool(a is not None and a.outdoor)

    def satellites(self) -> list[Device]:
        return [d for d in self.devices.values() if d.satellite]

    def speaking_device(self, context: TurnContext) -> Device | None:
        """The device the user spoke to (context.device_id), or None if the home does not know it."""
        return self.devices.get(context.device_id)

    def speaking_area(self, context: TurnContext) -> str | None:
        dev = self.speaking_device(context)
        return dev.area if dev else None

    def people(self) -> list[PersonConfig]:
        return [*self.members.values(), *self.contacts.values()]

    # ---- changes -------------------------------------------------------------------------------------------
    def set_state(self, device_id: str, **changes: Any) -> dict[str, Any]:
        """Apply `changes` to a device's state; return {key: new value} for the keys that actually changed.

        Raises KeyError for an unknown device and ValueError for a change the device cannot do."""
        dev = self.device(device_id)
        _check_state(changes)
        # a read-only key (a sensor's reading) may be "set" to the value it has (restoring a saved state)
        changes = {k: v for k, v in changes.items() if STATE_KEYS[k][0] is not None or dev.state.get(k) != v}
        for key in changes:
            cap = STATE_KEYS[key][0]
            if cap is None or cap not in dev.capabilities:
                raise ValueError(f"{dev.name} ({dev.id}) cannot change {key!r}: it has no {cap!r} capability")
        with self._lock:
            changed = {k: v for k, v in changes.items() if dev.state.get(k) != v}
            dev.state.update(changes)
        return copy.deepcopy(changed)

    def report(self, device_id: str, **values: Any) -> dict[str, Any]:
        """A device reports what it measures or senses (a sensor's value, a door opened by hand): any valid state key,
        read-only ones included, no capability needed. Returns what changed. Commands go through `set_state`."""
        dev = self.device(device_id)
        _check_state(values)
        with self._lock:
            changed = {k: v for k, v in values.items() if dev.state.get(k) != v}
            dev.state.update(values)
        return copy.deepcopy(changed)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe view of the whole home, for traces."""
        with self._lock:
            return {
                "name": self.name,
                "source": str(self.source) if self.source else None,
                "floors": [f.model_dump() for f in self.floors.values()],
                "areas": [a.model_dump() for a in self.areas.values()],
                "devices": {d.id: d.to_dict() for d in self.devices.values()},
                "members": [m.model_dump(exclude_none=True) for m in self.members.values()],
                "contacts": [c.model_dump(exclude_none=True) for c in self.contacts.values()],
            }

    def states(self) -> dict[str, dict[str, Any]]:
        """Device id -> state (a copy)."""
        with self._lock:
            return {d.id: copy.deepcopy(d.state) for d in self.devices.values()}
