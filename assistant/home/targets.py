"""Which devices a request means: names, areas, floors, domains and device classes, "here", "it"/"them".

`select(target, home, speaking_area, previous, capability)` -> `Selection`: every matching device (plural, "all",
a floor, a whole-home domain), one device, a question (two or more equally likely devices for a singular request)
or nothing, with the reason ("There's no lock called front door."). It never guesses beyond the words said and
the speaking satellite's area: the devices it returns are the ones the request names. Pure logic, no models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.home.grammar import Target

if TYPE_CHECKING:
    from assistant.home.model import Device, Home

# what a command needs a device to have (capability; None = any device of the types asked for)
ACTION_CAPS: dict[str, tuple[str, ...]] = {
    "turn_on": ("on_off", "open_close", "activate"),
    "turn_off": ("on_off", "open_close"),
    "toggle": ("on_off", "open_close", "lock"),
    "brightness": ("brightness",),
    "color": ("color",),
    "color_temp": ("color_temp", "color"),
    "open": ("open_close",),
    "close": ("open_close",),
    "position": ("open_close",),
    "stop_cover": ("open_close",),
    "lock": ("lock",),
    "unlock": ("lock",),
    "fan_speed": ("fan_speed",),
    "set_temperature": ("temperature",),
    "set_mode": ("hvac_mode",),
    "media": ("media",),
    "volume": ("volume",),
    "mute": ("volume",),
    "unmute": ("volume",),
    "vacuum": ("clean", "on_off"),
    "activate": ("activate",),
}
NOUN_OF_TYPE = {
    "light": ("light", "lights"),
    "switch": ("switch", "switches"),
    "plug": ("plug", "plugs"),
    "fan": ("fan", "fans"),
    "cover": ("cover", "covers"),
    "lock": ("lock", "locks"),
    "thermostat": ("thermostat", "thermostats"),
    "heater": ("heater", "heaters"),
    "tv": ("TV", "TVs"),
    "media_player": ("media player", "media players"),
    "speaker": ("speaker", "speakers"),
    "display": ("display", "displays"),
    "vacuum": ("vacuum", "vacuums"),
    "oven": ("oven", "ovens"),
    "kettle": ("kettle", "kettles"),
    "coffee_machine": ("coffee machine", "coffee machines"),
    "sensor": ("sensor", "sensors"),
    "binary_sensor": ("sensor", "sensors"),
    "scene": ("scene", "scenes"),
    "script": ("script", "scripts"),
}
NOUN_OF_CLASS = {
    "window": ("window", "windows"),
    "blind": ("blind", "blinds"),
    "curtain": ("curtain", "curtains"),
    "shade": ("shade", "shades"),
    "shutter": ("shutter", "shutters"),
    "awning": ("awning", "awnings"),
    "garage": ("garage door", "garage doors"),
    "gate": ("gate", "gates"),
    "door": ("door", "doors"),
    "garage_door": ("garage door", "garage doors"),
    "motion": ("motion sensor", "motion sensors"),
    "smoke": ("smoke alarm", "smoke alarms"),
}


@dataclass
class Selection:
    devices: list[Device] = field(default_factory=list)
    ask: list[Device] = field(default_factory=list)
    """Two or more devices a singular request could mean: ask which."""
    error: str | None = None
    scope: str = ""
    """Where, for the answer: "in the kitchen", "on the ground floor", "" """
    group: bool = False
    """True when the request meant a group (plural, "all", a floor): the answer counts them."""


def noun_for(devs: list[Device], plural: bool) -> str:
    classes = {d.device_class for d in devs}
    types = {d.type for d in devs}
    if len(classes) == 1 and None not in classes and next(iter(classes)) in NOUN_OF_CLASS:
        return NOUN_OF_CLASS[next(iter(classes))][1 if plural else 0]
    if len(types) == 1:
        return NOUN_OF_TYPE.get(next(iter(types)), ("device", "devices"))[1 if plural else 0]
    return "devices" if plural else "device"


def _matches(d: Device, t: Target) -> bool:
    if t.types and d.type not in t.types:
        return False
    classless = ("light", "switch", "plug", "fan", "lock", "thermostat", "heater", "tv", "speaker", "display", "vacuum")
    if t.classes is not None and d.type not in classless and d.device_class not in t.classes:
        return False
    return not (t.classes is not None and d.type == "lock" and "lock" not in t.classes)


def scope_words(t: Target, home: Home) -> str:
    if t.areas:
        names = [home.areas[a].name for a in t.areas]
        return "in the " + " and the ".join(names)
    if t.floor:
        f = home.floors[t.floor]
        return f"on the {f.name}" if "floor" in f.name else f.name
    if t.outdoor:
        return "outside"
    return ""


def select(
    t: Target,
    home: Home,
    speaking_area: str | None,
    previous: list[str] | None = None,
    caps: tuple[str, ...] | None = None,
) -> Selection:
    """The devices `t` names (see module doc). `caps`: the command needs one of these capabilities."""

    def capable(d: Device) -> bool:
        return caps is None or any(c in d.capabilities for c in caps)

    if t.pronoun:
        devs = [home.devices[i] for i in (previous or []) if i in home.devices]
        if not devs:
            return Selection(error="I'm not sure which device you mean.")
        return Selection(devices=devs, group=len(devs) > 1)
    if t.unknown:
        kind = t.noun or (NOUN_OF_TYPE.get(t.types[0], ("device",))[0] if t.types else "device")
        kind = {"door": "lock" if t.types == ["lock"] else "door"}.get(kind, kind)
        if kind.endswith("s") and kind not in ("glass",):
            kind = kind[:-1] if not kind.endswith("ches") else kind[:-2]
        name = t.unknown
        return Selection(error=f"There's no {kind} called {name}.")
    if t.device_ids:
        devs = [home.devices[i] for i in t.device_ids]
        ok = [d for d in devs if capable(d)]
        if not ok:
            return Selection(error=f"The {devs[0].name} can't do that.")
        if len(ok) > 1 and not t.plural and not t.all:
            return Selection(ask=ok)
        return Selection(devices=ok, group=len(ok) > 1)
    if t.area_options and not t.areas:  # "the bedroom lights": the bedroom you are in, else the only one
        opts = [a for a in t.area_options if a in home.areas]
        having = [a for a in opts if any(_matches(d, t) and capable(d) and d.area == a for d in home.devices.values())]
        if len(having) == 1 and speaking_area not in opts:  # "the tv in the bedroom": the bedroom with a tv
            opts = having
        pick = [speaking_area] if speaking_area in opts else opts if len(opts) == 1 else []
        if not pick:
            names = [f"the {home.areas[a].name}" for a in opts]
            return Selection(error=f"Which room do you mean: {', '.join(names[:-1])} or {names[-1]}?")
        t = Target(**{**t.to_dict(), "areas": pick, "area_options": []})
    pool = [d for d in home.devices.values() if _matches(d, t) and capable(d)]
    if not t.types:  # "everything in the kitchen": things that switch on and off; no covers, locks, sensors, scenes
        pool = [
            d
            for d in pool
            if not d.satellite
            and d.type not in ("sensor", "binary_sensor", "scene", "script")
            and (caps is None or "on_off" in d.capabilities)
        ]
    if t.types and not any(ty in ("speaker", "display") for ty in t.types):
        pool = [d for d in pool if not d.satellite]
    noun = t.noun or "device"
    scope = scope_words(t, home)
    if t.areas:
        pool = [d for d in pool if d.area in t.areas]
    elif t.floor:
        pool = [d for d in pool if home.floor_of(d.area) == t.floor]
    elif t.outdoor:
        pool = [d for d in pool if home.is_outdoor(d)]
    elif t.here:
        if speaking_area is None:
            return Selection(error="I don't know which room you're in.")
        pool = [d for d in pool if d.area == speaking_area]
        scope = f"in the {home.area_name(speaking_area)}"
    elif not t.home and not t.all and t.noun != "everything":
        local = [d for d in pool if d.area == speaking_area]
        if local:
            pool = local
            scope = f"in the {home.area_name(speaking_area)}"
    if not pool:
        any_kind = [d for d in home.devices.values() if _matches(d, t)]
        where = f" {scope}" if scope else ""
        if (
            any_kind
            and caps is not None
            and (t.areas or t.floor or t.here or t.outdoor)
            and not [
                d
                for d in any_kind
                if d.area in t.areas
                or (t.floor and home.floor_of(d.area) == t.floor)
                or (t.here and d.area == speaking_area)
                or (t.outdoor and home.is_outdoor(d))
            ]
        ):
            return Selection(error=f"There's no {_sing(noun)}{where}.")
        if any_kind and caps is not None and not (t.areas or t.floor or t.here or t.outdoor):
            return Selection(error=f"The {any_kind[0].name} can't do that.")
        return Selection(error=f"There's no {_sing(noun)}{where}.")
    group = t.plural or t.all or (t.noun == "everything")
    if not group and len(pool) > 1:
        said = set(t.said.split())
        named = [d for d in pool if said & {w for n in d.names for w in n.lower().split()} - {"light", "the"}]
        if len(named) == 1:
            return Selection(devices=named, scope=scope)
        return Selection(ask=pool, scope=scope)
    return Selection(devices=pool, scope=scope, group=group and len(pool) > 1)


def _sing(noun: str) -> str:
    if noun in ("everything", "anything", "device", "thing"):
        return "device"
    if noun.endswith(("ches", "shes")):
        return noun[:-2]
    if noun.endswith("s") and noun not in ("glass",):
        return noun[:-1]
    return noun
