"""Home commands parsed by the home grammar (assistant/home/grammar.py): act on every device a request names, answer
state questions from the home's state, confirm unlocking and opening a garage door, and schedule delayed commands.

The answer says what actually changed: "Turned off 3 lights on the ground floor: ...", "The kitchen light is already
off.", "There's no lock called front door." (and nothing changes). `run_command` needs no Turn, so scheduled
commands run through the same code when due (see `assistant/skills/scheduled.py`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.home import grammar
from assistant.home.grammar import Command, Target
from assistant.home.targets import ACTION_CAPS, noun_for, select
from assistant.skills.base import Turn, choose_option, join_words, say
from assistant.skills.home_common import ask_to_confirm, ask_which, needs_confirm
from assistant.skills.store import connect

if TYPE_CHECKING:
    from pathlib import Path

    from assistant.home.model import Device, Home

YES = re.compile(
    r"^(yes|yeah|yep|sure|ok|okay|do it|go ahead|confirm|confirmed|please do|correct|affirmative"
    r"|yes please)\b"
)
NO = re.compile(r"^(no|nope|don't|do not|cancel|stop|never mind|nevermind|forget it|wait)\b")
PAST = {
    "turn_on": "Turned on",
    "turn_off": "Turned off",
    "open": "Opened",
    "close": "Closed",
    "lock": "Locked",
    "unlock": "Unlocked",
    "stop_cover": "Stopped",
    "mute": "Muted",
    "unmute": "Unmuted",
    "activate": "Activated",
}
ALREADY = {
    "turn_on": "on",
    "turn_off": "off",
    "open": "open",
    "close": "closed",
    "lock": "locked",
    "unlock": "unlocked",
    "mute": "muted",
    "unmute": "unmuted",
}


class _Cannot(Exception):
    pass


def _set(d: Device, cmd: Command) -> dict[str, Any]:
    """The state change `cmd` asks of device `d` (raises _Cannot)."""
    a, p, s, caps = cmd.action, cmd.params, d.state, d.capabilities
    if a == "activate":
        if "activate" not in caps:
            raise _Cannot(f"The {d.name} is not a scene or a script.")
        return {}
    if a in ("turn_on", "turn_off", "toggle"):
        on = a == "turn_on" if a != "toggle" else None
        if d.type in ("scene", "script") and a == "turn_on":
            return {"last_activated": "now"}
        if "on_off" in caps:
            if on is None:
                on = not bool(s.get("on"))
            ch: dict[str, Any] = {"on": on}
            if d.type == "vacuum":
                ch["status"] = "cleaning" if on else "docked"
            return ch
        if "open_close" in caps:
            if on is None:
                on = s.get("position") != "open"
            return {
                "position": "open" if on else "closed",
                **({"open_percent": 100 if on else 0} if "set_position" in caps else {}),
            }
        if "lock" in caps and a == "toggle":
            return {"locked": not s.get("locked")}
        raise _Cannot(f"The {d.name} can't be switched {'on' if on else 'off'}.")
    if a == "brightness":
        if "brightness" not in caps:
            raise _Cannot(f"The {d.name} can't be dimmed.")
        cur = int(s.get("brightness", 100)) if s.get("on") else 0
        new = p["brightness"] if "brightness" in p else cur + int(p.get("delta", 0))
        new = max(0, min(100, int(new)))
        return {"on": False} if new == 0 else {"on": True, "brightness": new}
    if a == "color":
        if "color" not in caps:
            raise _Cannot(f"The {d.name} can't change colour.")
        return {"on": True, "color": p["color"]}
    if a == "color_temp":
        if "color_temp" in caps:
            return {"on": True, "color_temp": int(p["kelvin"]), "color": p["name"]}
        if "color" in caps:
            return {"on": True, "color": p["name"]}
        raise _Cannot(f"The {d.name} can't change its colour temperature.")
    if a in ("open", "close"):
        if "open_close" not in caps:
            raise _Cannot(f"The {d.name} can't be {'opened' if a == 'open' else 'closed'}.")
        ch = {"position": "open" if a == "open" else "closed"}
        if "set_position" in caps and "open_percent" in s:
            ch["open_percent"] = 100 if a == "open" else 0
        return ch
    if a == "position":
        if "set_position" not in caps:
            raise _Cannot(f"The {d.name} can only open or close fully.")
        pct = max(0, min(100, int(p["percent"])))
        return {"open_percent": pct, "position": "open" if pct > 0 else "closed"}
    if a == "stop_cover":
        return {}
    if a in ("lock", "unlock"):
        if "lock" not in caps:
            raise _Cannot(f"The {d.name} has no lock.")
        return {"locked": a == "lock"}
    if a == "fan_speed":
        if "fan_speed" not in caps:
            raise _Cannot(f"The {d.name} has no speed setting.")
        if "speed" in p:
            return {"on": True, "speed": p["speed"]}
        order = ("low", "medium", "high")
        cur = order.index(s.get("speed", "low")) if s.get("on") else -1
        new = cur + int(p.get("step", 1))
        if new < 0:
            return {"on": False}
        return {"on": True, "speed": order[min(new, 2)]}
    if a == "set_temperature":
        if "temperature" not in caps:
            raise _Cannot(f"The {d.name} has no temperature setting.")
        cur = float(s.get("temperature") or 20)
        new = float(p["temperature"]) if "temperature" in p else cur + float(p.get("delta", 0))
        low, high = (41, 95) if cur > 40 else (5, 35)  # a home in Fahrenheit has its setting in the 60s/70s
        if not low <= new <= high and d.type != "oven":
            raise _Cannot(f"{new:g} degrees is outside what the {d.name} can be set to ({low} to {high}).")
        new_v: float | int = int(new) if float(new).is_integer() else new
        ch = {"temperature": new_v}
        if "on_off" in caps:
            ch["on"] = True
        return ch
    if a == "set_mode":
        if "hvac_mode" not in caps:
            raise _Cannot(f"The {d.name} has no modes.")
        return {"hvac_mode": p["mode"]}
    if a == "media":
        if "media" not in caps:
            raise _Cannot(f"The {d.name} doesn't play media.")
        op = p["op"]
        if op in ("pause", "play"):
            return {"playback": "paused" if op == "pause" else "playing"}
        if s.get("playback") not in ("playing", "paused"):
            raise _Cannot(f"Nothing is playing on the {d.name}.")
        return {"playback": "playing", "media_title": f"{op} track"}
    if a == "volume":
        if "volume" not in caps:
            raise _Cannot(f"The {d.name} has no volume.")
        new = p["volume"] if "volume" in p else int(s.get("volume", 50)) + int(p.get("delta", 0))
        return {"volume": max(0, min(100, int(new)))}
    if a in ("mute", "unmute"):
        if "volume" not in caps:
            raise _Cannot(f"The {d.name} can't be muted.")
        return {"muted": a == "mute"}
    if a == "vacuum":
        if d.type != "vacuum":
            raise _Cannot(f"The {d.name} is not a vacuum.")
        op = p["op"]
        if op == "start":
            return {"on": True, "status": "cleaning"}
        if op == "pause":
            return {"on": False, "status": "paused"}
        return {"on": False, "status": "docked"}
    raise _Cannot("Sorry, I can't do that.")


def _plural_name(name: str) -> bool:
    """A device whose name is a plural ("patio lights", "living room blinds") takes "are"."""
    last = name.lower().split()[-1] if name.strip() else ""
    return len(last) > 3 and last.endswith("s") and not last.endswith(("ss", "us", "is", "'s"))


def _past(cmd: Command, devs: list[Device]) -> str:
    a, p = cmd.action, cmd.params
    if a in PAST:
        return PAST[a]
    return {
        "brightness": "Set",
        "color": "Set",
        "color_temp": "Set",
        "position": "Set",
        "fan_speed": "Set",
        "set_temperature": "Set",
        "set_mode": "Set",
        "volume": "Set the volume of",
        "toggle": "Switched",
    }.get(
        a,
        {
            "pause": "Paused",
            "play": "Resumed",
            "next": "Skipped to the next track on",
            "previous": "Went back a track on",
            "start": "Started",
            "dock": "Sent home",
            "stop": "Stopped",
        }.get(str(p.get("op")), "Done:"),
    )


def _tail(cmd: Command, devs: list[Device]) -> str:
    a, p = cmd.action, cmd.params
    d = devs[0]
    if a == "brightness":
        return f" to {d.state.get('brightness')}%" if d.state.get("on") else " (off)"
    if a == "color":
        return f" to {p['color']}"
    if a == "color_temp":
        return f" to {p['name']}"
    if a == "position":
        return f" to {p['percent']}% open"
    if a == "fan_speed":
        return f" to {d.state.get('speed')} speed" if d.state.get("on") else " (off)"
    if a == "set_temperature":
        return f" to {d.state.get('temperature'):g} degrees"
    if a == "set_mode":
        return f" to {p['mode']} mode"
    if a == "volume":
        return f" to {d.state.get('volume')}"
    if a == "vacuum" and p.get("op") == "dock":
        return " to its dock"
    return ""


def _already(cmd: Command, d: Device) -> str:
    a = cmd.action
    if a in ALREADY:
        return ALREADY[a]
    if a == "toggle":
        return "switched"
    s = d.state
    return {
        "brightness": f"at {s.get('brightness')}%",
        "color": f"{s.get('color')}",
        "color_temp": f"{s.get('color')}",
        "position": f"{s.get('open_percent')}% open",
        "fan_speed": f"on {s.get('speed')} speed",
        "set_temperature": f"set to {s.get('temperature')} degrees",
        "set_mode": f"in {s.get('hvac_mode')} mode",
        "volume": f"at volume {s.get('volume')}",
        "media": f"{s.get('playback')}",
        "vacuum": f"{s.get('status')}",
    }.get(a, "like that")


def _names(devs: list[Device]) -> str:
    return join_words([f"the {d.name}" for d in devs])


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


ACTION_NAMES = {
    "color": "set_color",
    "brightness": "set_brightness",
    "color_temp": "set_color_temp",
    "position": "set_position",
    "fan_speed": "set_speed",
    "volume": "set_volume",
}


def action_name(cmd: Command) -> str:
    """The action's name in traces (after the device type): turn_on, set_color, pause, start ..."""
    if cmd.action in ("media", "vacuum"):
        return str(cmd.params.get("op"))
    return ACTION_NAMES.get(cmd.action, cmd.action)


def _domain(devs: list[Device]) -> str:
    types = {d.type for d in devs}
    return types.pop() if len(types) == 1 else "device"


def _all_already(cmd: Command, devs: list[Device]) -> bool:
    """Every device is already as `cmd` would leave it: nothing to confirm ("The garage door is already open.")."""
    try:
        return all(all(d.state.get(k) == v for k, v in _set(d, cmd).items()) for d in devs)
    except _Cannot:
        return False


def run_command(
    cmd: Command, home: Home, speaking_area: str | None, previous: list[str] | None = None, confirmed: bool = False
) -> tuple[Response, list[str]]:
    """Carry out a parsed (non-question) command on the home. Returns the response and the device ids it was
    about (the next turn's "it"/"them")."""
    if cmd.action == "query":
        return answer_query(cmd, home, speaking_area, previous)
    caps = ACTION_CAPS.get(cmd.action)
    sel = select(cmd.target, home, speaking_area, previous, caps)
    act_name = f"{(cmd.target.types or ['device'])[0]}.{action_name(cmd)}"
    if sel.error:
        return say(
            sel.error,
            act_name,
            "failed",
            params={"command": cmd.to_dict(), "reason": "no-target"},
            result={"changed": {}},
        ), []
    if sel.ask:
        return ask_which(cmd, sel), []
    devs = sel.devices
    act_name = f"{_domain(devs)}.{action_name(cmd)}"
    if needs_confirm(cmd, devs) and not confirmed and not _all_already(cmd, devs):
        what = "unlock" if cmd.action == "unlock" else "open"
        ids = [d.id for d in devs]
        return ask_to_confirm(f"Are you sure you want to {what} {_names(devs)}?", cmd, ids), ids
    changed: dict[str, dict[str, Any]] = {}
    already: list[Device] = []
    done: list[Device] = []
    errors: list[str] = []
    for d in devs:
        try:
            want = _set(d, cmd)
        except _Cannot as e:
            errors.append(str(e))
            continue
        if d.type in ("scene", "script") and cmd.action in ("activate", "turn_on"):
            for dev_id, st in d.sets.items():
                if dev_id in home.devices:
                    try:
                        ch = home.set_state(dev_id, **st)
                    except ValueError:
                        continue
                    if ch:
                        changed[dev_id] = ch
            done.append(d)
            continue
        try:
            ch = home.set_state(d.id, **want)
        except ValueError as e:
            errors.append(f"The {d.name} can't do that ({e}).")
            continue
        media_step = cmd.action == "media" and cmd.params.get("op") in ("next", "previous")
        if ch or media_step or cmd.action == "stop_cover":
            changed[d.id] = ch
            done.append(d)
        else:
            already.append(d)
    ids = [d.id for d in devs]
    params = {"command": cmd.to_dict(), "device_ids": ids}
    result = {"changed": changed, "already": [d.id for d in already], "errors": errors}
    target = "+".join(ids)
    if not done and not already:
        return say(
            errors[0] if errors else "Sorry, I can't do that.",
            act_name,
            "failed",
            target=target,
            params=params,
            result=result,
        ), ids
    parts: list[str] = []
    if done:
        if cmd.action == "activate" or (cmd.action == "turn_on" and done[0].type in ("scene", "script")):
            parts.append(f"Activated {done[0].name}")
        elif sel.group and len(done) > 1:
            noun = noun_for(done, True)
            scope = f" {sel.scope}" if sel.scope else ""
            parts.append(f"{_past(cmd, done)} {len(done)} {noun}{scope}{_tail(cmd, done)}: {_names(done)}")
        else:
            parts.append(f"{_past(cmd, done)} {_names(done)}{_tail(cmd, done)}")
    if already:
        state = _already(cmd, already[0])
        if not done and sel.group and len(already) > 1 and len(already) == len(devs):
            scope = f" {sel.scope}" if sel.scope else ""
            parts.append(f"The {noun_for(already, True)}{scope} are already {state}")
        else:
            one = len(already) == 1 and not _plural_name(already[0].name)  # "the patio lights are"
            verb = "is" if one else "are"
            if done:
                verb = "was" if one else "were"
            who = _cap(_names(already)) if not done else _names(already)
            if done and sel.group and len(already) > 2:
                who = f"the other {len(already)}"
            parts.append(f"{who} {verb} already {state}")
    text = "; ".join(parts) + "."
    if errors:
        text += " " + " ".join(errors)
    return say(_cap(text), act_name, "done", target=target, params=params, result=result), ids


# -- questions -----------------------------------------------------------------------------------------------------
def _is(d: Device, attr: str) -> bool | None:
    s = d.state
    if attr == "on":
        if "on" in s:
            return bool(s["on"])
        if d.type == "cover":
            return s.get("position") == "open"
        return None
    if attr == "open":
        if d.type == "cover":
            return s.get("position") == "open" or int(s.get("open_percent") or 0) > 0
        if d.type == "binary_sensor" and d.device_class in ("door", "window", "garage_door", "opening"):
            return bool(s.get("detected"))
        if d.type == "lock":
            return not s.get("locked", True)
        return None
    if attr == "locked":
        return bool(s["locked"]) if "locked" in s else None
    if attr == "playing":
        return s.get("playback") == "playing" if "media" in d.capabilities else None
    if attr == "cleaning":
        return s.get("status") == "cleaning" if d.type == "vacuum" else None
    if attr == "muted":
        return bool(s.get("muted")) if "volume" in d.capabilities else None
    if attr == "detected":
        return bool(s.get("detected")) if d.type == "binary_sensor" else None
    return None


STATE_WORDS = {
    ("on", True): "on",
    ("on", False): "off",
    ("open", True): "open",
    ("open", False): "closed",
    ("locked", True): "locked",
    ("locked", False): "unlocked",
    ("playing", True): "playing",
    ("playing", False): "not playing",
    ("cleaning", True): "cleaning",
    ("cleaning", False): "not cleaning",
    ("muted", True): "muted",
    ("muted", False): "not muted",
    ("detected", True): "detecting motion",
    ("detected", False): "clear",
}


def answer_query(
    cmd: Command, home: Home, speaking_area: str | None, previous: list[str] | None = None
) -> tuple[Response, list[str]]:
    p = cmd.params
    kind = p.get("kind")
    t = cmd.target
    if kind == "reading":
        return _reading(cmd, home, speaking_area)
    query_t = Target(**{**t.to_dict(), "plural": True}) if kind in ("which", "count", "any") else t
    if kind in ("which", "count", "any") and not (
        t.areas or t.floor or t.here or t.outdoor or t.area_options or t.device_ids or t.pronoun
    ):
        query_t.home = True  # "which lights are on": in the whole home
    if kind == "yesno" and not t.device_ids and not t.pronoun:
        query_t = Target(**{**t.to_dict(), "plural": True})
    if kind == "yesno" and p.get("attr") == "locked" and not t.device_ids and t.types:
        query_t.types = ["lock"]
        query_t.classes = None
    sel = select(query_t, home, speaking_area, previous, None)
    if sel.error:
        return say(sel.error, "device.query", "failed", params={"command": cmd.to_dict()}), []
    devs = sel.devices or sel.ask
    if kind in ("setting", "battery", "attribute"):
        return _attribute(cmd, devs, kind)
    attr, want = p.get("attr", "on"), bool(p.get("value", True))
    if attr == "open":  # "is the front door open": the door's contact sensor, not its lock
        devs = [_contact_sensor(d, home) or d if d.type == "lock" else d for d in devs]
    known = [(d, _is(d, attr)) for d in devs]
    known = [(d, v) for d, v in known if v is not None]
    ids = [d.id for d, _ in known]
    if not known:
        return say(
            f"I can't tell whether {_names(devs)} {'is' if len(devs) == 1 else 'are'} "
            f"{STATE_WORDS.get((attr, want), attr)}.",
            "device.query",
            "failed",
        ), []
    match = [d for d, v in known if v == want]
    word = STATE_WORDS.get((attr, want), attr)
    scope = f" {sel.scope}" if sel.scope else ""
    result = {"devices": {d.id: v for d, v in known}, "matching": [d.id for d in match]}
    if kind == "yesno":
        if len(known) == 1:
            d, v = known[0]
            other = STATE_WORDS.get((attr, not want), "not " + word) if v != want else word
            text = f"{'Yes' if v == want else 'No'}, the {d.name} is {other}."
        elif all(v == want for _, v in known):
            text = f"Yes, all {len(known)} {noun_for([d for d, _ in known], True)}{scope} are {word}."
        elif match:
            rest = [d for d, v in known if v != want]
            text = (
                f"{_cap(_names(match))} {'is' if len(match) == 1 else 'are'} {word}; "
                f"{_names(rest)} {'is' if len(rest) == 1 else 'are'} not."
            )
        else:
            text = f"No, none of the {noun_for([d for d, _ in known], True)}{scope} are {word}."
        return say(text, "device.query", "done", target="+".join(ids), result=result), ids
    noun_pl = noun_for([d for d, _ in known], True)
    if kind == "count":
        n = len(match)
        if n == 0:
            text = f"No {noun_pl}{scope} are {word}."
        elif n == 1:
            text = f"One {noun_for(match, False)}{scope} is {word}: the {match[0].name}."
        else:
            text = f"{n} {noun_pl}{scope} are {word}: {_names(match)}."
        return say(text, "device.query", "done", target="+".join(ids), result={**result, "count": n}), ids
    # which / any
    if not match:
        text = (
            f"No {noun_pl}{scope} are {word}."
            if kind == "which"
            else f"No, nothing{scope} is {word}."
            if t.noun == "everything"
            else f"No, no {noun_pl}{scope} are {word}."
        )
    else:
        verb = "is" if len(match) == 1 else "are"
        text = f"{_cap(_names(match))} {verb} {word}." if kind == "which" else f"Yes: {_names(match)} {verb} {word}."
    return say(text, "device.query", "done", target="+".join(ids), result=result), [d.id for d in match] or ids


def _contact_sensor(lock: Device, home: Home) -> Device | None:
    """The door sensor of a lock's door: one whose name starts with the lock's name, else the only one in its room."""
    doors = [
        d
        for d in home.devices.values()
        if d.type == "binary_sensor" and d.device_class in ("door", "opening", "garage_door")
    ]
    named = [d for d in doors if any(d.name.lower().startswith(n.lower()) for n in lock.names)]
    if len(named) == 1:
        return named[0]
    same_room = [d for d in doors if d.area == lock.area]
    return same_room[0] if len(same_room) == 1 else None


def _attribute(cmd: Command, devs: list[Device], kind: str) -> tuple[Response, list[str]]:
    parts = []
    for d in devs:
        s = d.state
        if kind == "battery":
            if "battery" not in s:
                parts.append(f"the {d.name} doesn't report a battery level")
            else:
                parts.append(f"the {d.name} battery is at {s['battery']} percent")
        elif kind == "setting" or cmd.params.get("attr") == "temperature":
            if "temperature" in s:
                parts.append(f"the {d.name} is set to {s['temperature']:g} degrees")
        else:
            a = cmd.params.get("attr")
            if a == "speed" and "speed" in s:
                parts.append(f"the {d.name} is {'on at ' + s['speed'] + ' speed' if s.get('on') else 'off'}")
            elif a in ("brightness", "volume") and a in s:
                parts.append(f"the {d.name} is at {s[a]} percent {a}")
            elif a == "color" and "color" in s:
                parts.append(f"the {d.name} is {s['color']}")
            else:
                parts.append(f"the {d.name} is {describe_state(d)}")
    if not parts:
        return say(
            f"{_cap(_names(devs))} {'has' if len(devs) == 1 else 'have'} no such setting.", "device.query", "failed"
        ), []
    ids = [d.id for d in devs]
    return say(
        _cap(join_words(parts)) + ".",
        "device.query",
        "done",
        target="+".join(ids),
        result={"states": {d.id: dict(d.state) for d in devs}},
    ), ids


def describe_state(d: Device) -> str:
    s = d.state
    if d.type == "lock":
        return "locked" if s.get("locked") else "unlocked"
    if d.type == "cover":
        pct = s.get("open_percent")
        return f"{pct}% open" if pct not in (None, 0, 100) else str(s.get("position"))
    if d.type == "vacuum":
        return str(s.get("status", "docked"))
    if d.type == "binary_sensor":
        return "detecting" if s.get("detected") else "clear"
    if d.type == "sensor":
        return f"reading {s.get('value')}{d.unit or ''}"
    if "on" in s:
        return "on" if s["on"] else "off"
    if "temperature" in s:
        return f"set to {s['temperature']:g} degrees"
    return "idle"


def _reading(cmd: Command, home: Home, speaking_area: str | None) -> tuple[Response, list[str]]:
    what = cmd.params.get("what", "temperature")
    t = cmd.target

    def sources(area_ok) -> list[Device]:
        out = []
        for d in home.devices.values():
            if not area_ok(d):
                continue
            if what == "temperature" and (
                (d.type == "sensor" and d.device_class == "temperature") or "current_temperature" in d.state
            ):
                out.append(d)
            if what == "humidity" and d.type == "sensor" and d.device_class == "humidity":
                out.append(d)
        return out

    if t.device_ids:
        devs = [home.devices[i] for i in t.device_ids]
        devs = [d for d in devs if d in sources(lambda _d: True)] or devs
        where = ""
    elif t.outdoor:
        devs, where = sources(home.is_outdoor), " outside"
    elif t.areas:
        devs = sources(lambda d: d.area in t.areas)
        where = " in the " + " and the ".join(home.areas[a].name for a in t.areas)
    elif t.floor:
        devs = sources(lambda d: home.floor_of(d.area) == t.floor)
        where = f" on the {home.floors[t.floor].name}"
    else:
        here = [] if t.home else sources(lambda d: d.area == speaking_area and not home.is_outdoor(d))
        if here or t.here:
            devs, where = here, f" in the {home.area_name(speaking_area)}"
        else:
            indoor = sources(lambda d: not home.is_outdoor(d))
            thermo = [d for d in indoor if d.type == "thermostat"]
            devs, where = (thermo or indoor), ""
    if not devs:
        noun = "thermometer or thermostat" if what == "temperature" else "humidity sensor"
        return say(f"There's no {noun}{where}.", "device.query", "failed", params={"command": cmd.to_dict()}), []
    parts = []
    for d in devs:
        s = d.state
        if what == "temperature":
            v = s.get("current_temperature") if "current_temperature" in s else s.get("value")
            if v is None:
                continue
            extra = f", set to {s['temperature']:g}" if d.type == "thermostat" and "temperature" in s else ""
            loc = home.area_name(d.area)
            parts.append(
                (
                    v,
                    f"{v:g} degrees {'at' if d.type == 'thermostat' else 'from'} the {d.name}{extra}"
                    if len(devs) > 1 or d.type == "thermostat"
                    else f"{v:g} degrees",
                    loc,
                )
            )
        else:
            v = s.get("value")
            if v is not None:
                parts.append((v, f"{v:g} percent", home.area_name(d.area)))
    if not parts:
        return say(f"The {devs[0].name} has no reading right now.", "device.query", "failed"), []
    ids = [d.id for d in devs]
    if len(parts) == 1:
        v, desc, loc = parts[0]
        if what == "temperature":
            place = where or (f" in the {loc}" if loc and devs[0].type != "thermostat" else "")
            text = f"It's {desc}{place}." if devs[0].type != "thermostat" else f"It's {desc}{where}."
        else:
            text = f"The humidity{where or ' in the ' + str(loc)} is {desc}."
    else:
        listed = join_words([f"{desc} ({loc})" if loc else desc for _, desc, loc in parts])
        text = f"{_cap(what)}{where}: {listed}."
    return say(
        text,
        "device.query",
        "done",
        target="+".join(ids),
        result={"readings": {d.id: d.state.get("current_temperature", d.state.get("value")) for d in devs}},
    ), ids


# -- the skill -------------------------------------------------------------------------------------------------------
def _last_key(session_id: str) -> str:
    return f"home.last:{session_id}"


def load_last(data_dir: Path, session_id: str) -> dict[str, Any]:
    with connect(data_dir) as db:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (_last_key(session_id),)).fetchone()
    return json.loads(row["value"]) if row else {}


def save_last(data_dir: Path, session_id: str, ids: list[str], cmd: Command | None, now: datetime) -> None:
    value = {"device_ids": ids, "command": cmd.to_dict() if cmd else None, "at": now.isoformat(timespec="seconds")}
    with connect(data_dir) as db:
        db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (_last_key(session_id), json.dumps(value)))


class HomeCommandsSkill:
    """The grammar's commands. Not dispatched by intent: the responder offers every turn's text to `try_handle`."""

    name = "home_commands"
    intents: ClassVar[frozenset[str]] = frozenset()

    def parse(self, turn: Turn) -> Command | None:
        return grammar.parse(turn.text, turn.context.home, turn.context.now)

    def handle(self, turn: Turn) -> Response:
        cmd = self.parse(turn)
        if cmd is None:
            return say("Sorry, I can't do that.", "none", "unsupported")
        return self.run(cmd, turn)

    def try_handle(self, turn: Turn) -> Response | None:
        cmd = self.parse(turn)
        if cmd is not None and cmd.params.pop("optional", False):
            # only if a home player in this room is playing (pause/mute) or paused (resume); else not ours
            home = turn.context.home
            sel = select(cmd.target, home, home.speaking_area(turn.context), None, ACTION_CAPS.get(cmd.action))
            want = "paused" if cmd.params.get("op") == "play" else "playing"
            sel_devs = [d for d in sel.devices if d.state.get("playback") == want]
            if not sel_devs:
                return None
            cmd.target = Target(said="", device_ids=[d.id for d in sel_devs], plural=True)
        return self.run(cmd, turn) if cmd is not None else None

    def run(self, cmd: Command, turn: Turn) -> Response:
        from assistant.skills import scheduled

        ctx = turn.context
        home = ctx.home
        area = home.speaking_area(ctx)
        last = load_last(ctx.data_dir, ctx.session_id)
        previous = last.get("device_ids") or []
        if cmd.action == "schedule_list":
            return scheduled.list_response(ctx.data_dir, ctx.now)
        if cmd.action == "schedule_cancel":
            return scheduled.cancel_response(ctx.data_dir, ctx.now, cmd.params)
        if cmd.action == "all_of_them":
            prev_cmd = last.get("command")
            if not prev_cmd:
                return say("All of what?", "none", "failed")
            cmd = _widen(Command.from_dict(prev_cmd), home, previous, cmd.params.get("noun"))
        if cmd.delay_s or cmd.at:
            return _for_turn(scheduled.schedule(cmd, ctx, area, previous), turn)
        response, ids = run_command(cmd, home, area, previous)
        if ids or response.action.status in ("done",):
            save_last(ctx.data_dir, ctx.session_id, ids or previous, cmd, ctx.now)
        return _for_turn(response, turn)

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        ctx = turn.context
        home = ctx.home
        text = grammar.normalize(turn.text)
        kind = pending.get("kind")
        if kind == "confirm":
            cmd = Command.from_dict(pending["command"])
            if YES.match(text):
                cmd.target = Target(
                    said=cmd.target.said,
                    device_ids=[i for i in pending["device_ids"] if i in home.devices],
                    plural=True,
                )
                if cmd.delay_s or cmd.at:
                    from assistant.skills import scheduled

                    return scheduled.schedule(cmd, ctx, home.speaking_area(ctx), [], confirmed=True)
                response, ids = run_command(cmd, home, home.speaking_area(ctx), confirmed=True)
                save_last(ctx.data_dir, ctx.session_id, ids, cmd, ctx.now)
                return response
            if NO.match(text):
                return say("Okay, I won't.", "none", "done", params={"cancelled": pending.get("intent")})
            return None
        if kind == "choose_device":
            cmd = Command.from_dict(pending["command"])
            cands = [c for c in pending.get("candidates", []) if c in home.devices]
            if re.search(r"\b(both|all|every one|each)\b", text):
                chosen = cands
            else:
                pick = choose_option(text, {c: home.devices[c].name for c in cands})
                if pick is None:
                    tg = grammar.parse_target(text, home)
                    ids = [i for i in (tg.device_ids if tg else []) if i in cands]
                    pick = ids[0] if len(ids) == 1 else None
                if pick is None:
                    if NO.match(text):
                        return say("Okay, never mind.", "none", "done", params={"cancelled": pending.get("intent")})
                    return None
                chosen = [pick]
            cmd.target = Target(said=cmd.target.said, device_ids=chosen, plural=len(chosen) > 1)
            if cmd.delay_s or cmd.at:
                from assistant.skills import scheduled

                return scheduled.schedule(cmd, ctx, home.speaking_area(ctx), [])
            response, ids = run_command(cmd, home, home.speaking_area(ctx))
            save_last(ctx.data_dir, ctx.session_id, ids, cmd, ctx.now)
            return response
        if kind == "choose_schedule":
            from assistant.skills import scheduled

            return scheduled.choose_follow_up(turn, pending)
        return None


def _for_turn(response: Response, turn: Turn) -> Response:
    """A question this skill asks is a turn of the intent the NLU gave the request (history and learning)."""
    if response.pending and response.pending.get("skill") == "home_commands":
        response.pending["intent"] = turn.intent
    return response


def _widen(cmd: Command, home: Home, previous: list[str], noun: str | None) -> Command:
    """'no, all of them' after a command that acted on one device: the same command on every device of that kind,
    in the same area/floor as said before (else the whole home)."""
    t = cmd.target
    types = list(t.types)
    if not types and previous:
        types = sorted({home.devices[i].type for i in previous if i in home.devices})
    if noun:
        tg = grammar.parse_target(noun, home)
        if tg is not None and tg.types:
            types = tg.types
    wide = Target(
        said=f"all {t.said}".strip(),
        types=types,
        classes=t.classes,
        noun=t.noun,
        areas=list(t.areas),
        floor=t.floor,
        plural=True,
        all=True,
        home=not (t.areas or t.floor or t.here),
        here=t.here,
    )
    return Command(cmd.action, wide, dict(cmd.params), text=cmd.text)
