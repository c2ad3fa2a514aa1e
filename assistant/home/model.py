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
    "light": {"capabilities": ["on_off", "brightness", "color"], "state": {"on": False, "brightness": 100, "color": "white"}},
    "switch": {"capabilities": ["on_off"], "state": {"on": False}},
    "plug": {"capabilities": ["on_off"], "state": {"on": False}},
    "oven": {"capabilities": ["on_off", "temperature"], "state": {"on": False, "temperature": 0}},
    "thermostat": {"capabilities": ["temperature"], "state": {"temperature": 20}},
    "cover": {"capabilities": ["open_close"], "state": {"position": "closed"}},
    "fan": {"capabilities": ["on_off"], "state": {"on": False}},
    "tv": {"capabilities": ["on_off", "volume"], "state": {"on": False, "volume": 30}},
    "heater": {"capabilities": ["on_off", "temperature"], "state": {"on": False}},
    "speaker": {"capabilities": ["volume", "media"], "state": {"volume": 50}},
    "display": {"capabilities": ["volume", "media", "screen"], "state": {"volume": 50}},
    "coffee_machine": {"capabilities": ["on_off"], "state": {"on": False}},
    "vacuum": {"capabilities": ["on_off"], "state": {"on": False}},
    "kettle": {"capabilities": ["on_off"], "state": {"on": False}},
}
SATELLITE_TYPES = ("speaker", "display")
CAPABILITIES = ("on_off", "brightness", "color", "temperature", "open_close", "volume", "media", "screen")

# State key -> (capability that allows changing it, python type(s), description for error messages)
STATE_KEYS: dict[str, tuple[str, tuple[type, ...], str]] = {
    "on": ("on_off", (bool,), "true or false"),
    "brightness": ("brightness", (int,), "a whole number 0-100"),
    "color": ("color", (str,), "a colour name such as 'warm white' or 'blue'"),
    "temperature": ("temperature", (int, float), "a number of degrees"),
    "position": ("open_close", (str,), "'open' or 'closed'"),
    "volume": ("volume", (int,), "a whole number 0-100"),
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
        _cap, types, desc = STATE_KEYS[key]
        if key != "on" and isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(f"state {key!r} must be {desc}, not {value!r}")
        if key in PERCENT_KEYS and not 0 <= value <= 100:
            raise ValueError(f"state {key!r} must be {desc}, not {value!r}")
        if key == "position" and value not in ("open", "closed"):
            raise ValueError(f"state 'position' must be 'open' or 'closed', not {value!r}")
    return state


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AreaConfig(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class DeviceConfig(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: str
    area: str
    aliases: list[str] = Field(default_factory=list)
    capabilities: list[str] | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    has_screen: bool = False

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
    areas: list[AreaConfig] = Field(min_length=1)
    devices: list[DeviceConfig] = Field(default_factory=list)
    satellites: list[SatelliteConfig] = Field(min_length=1)
    members: list[PersonConfig] = Field(default_factory=list)
    contacts: list[PersonConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> HomeConfig:
        area_ids = [a.id for a in self.areas]
        _no_duplicates("areas", area_ids)
        _no_duplicates("devices and satellites", [d.id for d in self.devices] + [s.id for s in self.satellites])
        _no_duplicates("members and contacts", [p.id for p in self.members] + [p.id for p in self.contacts])
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
                ident = node[item].get("id") if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) else None
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
        self.state: dict[str, Any] = {**copy.deepcopy(DEVICE_TYPES[dtype]["state"]), **copy.deepcopy(cfg.state)}

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
                f"home file {path} does not exist; pass the path of a home YAML file "
                f"(an example is {EXAMPLE_HOME})",
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
        self, *, area: str | None = None, type: str | tuple[str, ...] | list[str] | None = None, capability: str | None = None
    ) -> list[Device]:
        types = (type,) if isinstance(type, str) else tuple(type) if type else None
        return [
            d
            for d in self.devices.values()
            if (area is None or d.area == area)
            and (types is None or d.type in types)
            and (capability is None or capability in d.capabilities)
        ]

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
        for key in changes:
            cap = STATE_KEYS[key][0]
            if cap not in dev.capabilities:
                raise ValueError(f"{dev.name} ({dev.id}) cannot change {key!r}: it has no {cap!r} capability")
        with self._lock:
            changed = {k: v for k, v in changes.items() if dev.state.get(k) != v}
            dev.state.update(changes)
        return copy.deepcopy(changed)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe view of the whole home, for traces."""
        with self._lock:
            return {
                "name": self.name,
                "source": str(self.source) if self.source else None,
                "areas": [a.model_dump() for a in self.areas.values()],
                "devices": {d.id: d.to_dict() for d in self.devices.values()},
                "members": [m.model_dump(exclude_none=True) for m in self.members.values()],
                "contacts": [c.model_dump(exclude_none=True) for c in self.contacts.values()],
            }

    def states(self) -> dict[str, dict[str, Any]]:
        """Device id -> state (a copy)."""
        with self._lock:
            return {d.id: copy.deepcopy(d.state) for d in self.devices.values()}
