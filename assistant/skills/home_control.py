"""Home control: lights (on/off/dim/brighten/colour), plugs, oven, thermostat, covers, fans, TVs, vacuum, coffee.

Acts on `context.home` through `Home.set_state`; when the resolver returns several equally good devices it asks
which one ("Which light: the floor lamp or the ceiling light?") and keeps the plan in `pending` for the answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from rapidfuzz import fuzz

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, cancelled, join_words, say
from assistant.text import norm_key
from assistant.understanding import spoken

if TYPE_CHECKING:
    from assistant.home.model import Device

NOUNS = {
    "light": "light",
    "plug": "plug",
    "switch": "switch",
    "oven": "oven",
    "thermostat": "thermostat",
    "cover": "one",
    "fan": "fan",
    "tv": "TV",
    "heater": "heater",
    "coffee_machine": "coffee machine",
    "vacuum": "vacuum",
    "kettle": "kettle",
    "speaker": "speaker",
    "display": "display",
}
STEP = 20  # brightness step for "dim"/"brighter" without a number
ALL_WORDS = ("both", "all", "all of them", "both of them", "either", "every one", "everything")


class HomeControlSkill:
    name = "home_control"
    intents: ClassVar[frozenset[str]] = frozenset(
        {
            "iot_hue_lighton",
            "iot_hue_lightoff",
            "iot_hue_lightchange",
            "iot_hue_lightdim",
            "iot_hue_lightup",
            "iot_wemo_on",
            "iot_wemo_off",
            "iot_cleaning",
            "iot_coffee",
            "iot_cover_open",
            "iot_cover_close",
            "iot_climate_set",
            "iot_appliance_on",
            "iot_appliance_off",
            "iot_device_query",
        }
    )

    # -- entry points -----------------------------------------------------------------------------------------
    def handle(self, turn: Turn) -> Response:
        if turn.intent == "iot_device_query":
            return self.query(turn)
        params = self._params(turn)
        refusal = self._unknown_place_or_name(turn, params)
        if refusal is not None:
            return refusal
        group = turn.entity("device_group")
        if group is not None and group.normalized:
            return self.execute(turn.intent, list(group.normalized["device_ids"]), params, turn, target=group.entity_id)
        dev = turn.entity("device")
        if dev is None:
            return say("Which device do you mean?", "device.unknown", "failed", params=params)
        if dev.entity_id:
            stray = _stray_words(dev.value, turn.context.home, dev.entity_id)
            if stray:  # "front door" is not the garage door: never act on a device nobody named
                return say(
                    f"There's no {dev.value.strip()} here.",
                    "device.unknown",
                    "failed",
                    params={**params, "said": dev.value, "unmatched": stray},
                )
            dev_obj = turn.context.home.devices.get(dev.entity_id)
            if (
                dev_obj is not None
                and dev_obj.type == "cover"
                and dev_obj.device_class in ("garage", "gate")
                and turn.intent in ("iot_cover_open", "iot_hue_lighton", "iot_wemo_on", "iot_appliance_on")
            ):
                # opening a garage door or a gate is confirmed, whichever way the request came in
                from assistant.home.grammar import Command, Target
                from assistant.skills.home_commands import _for_turn, run_command

                cmd = Command("open", Target(said=dev.value or "", device_ids=[dev_obj.id]), text=turn.text)
                response, _ids = run_command(cmd, turn.context.home, turn.context.home.speaking_area(turn.context))
                return _for_turn(response, turn)
            return self.execute(turn.intent, [dev.entity_id], params, turn)
        if dev.ambiguous:
            cands = [c.entity_id for c in dev.candidates]
            if dev.value and all(_stray_words(dev.value, turn.context.home, c) for c in cands):
                return say(
                    f"There's no {dev.value.strip()} here.",
                    "device.unknown",
                    "failed",
                    params={**params, "said": dev.value},
                )
            return self._clarify(turn, cands, params)
        what = dev.value or self._noun_for_intent(turn.intent)
        area = turn.entity("area")
        where = f" in the {area.name}" if area is not None and area.name else ""
        return say(
            f"I couldn't find {_the(what)}{where}.", "device.unknown", "failed", params={**params, "said": dev.value}
        )

    @staticmethod
    def _unknown_place_or_name(turn: Turn, params: dict[str, Any]) -> Response | None:
        """A room the home lacks ("the porch") or a name word before the device noun that no device has ("walk the
        front door" -> front): say so instead of acting on some other device."""
        home = turn.context.home
        for e in turn.entities.entities:
            if e.entity_type == "area" and e.value and not e.entity_id:
                return say(
                    f"There's no {e.value.strip()} here.",
                    "device.unknown",
                    "failed",
                    params={**params, "said": e.value, "reason": "unknown-area"},
                )
        devs = [e for e in turn.entities.entities if e.entity_type in ("device", "device_group")]
        ids = [e.entity_id for e in devs if e.entity_type == "device" and e.entity_id]
        ids += [c.entity_id for e in devs if e.entity_type == "device" and not e.entity_id for c in e.candidates]
        for e in devs:
            if e.entity_type == "device_group" and e.normalized:
                ids += list(e.normalized.get("device_ids", []))
        if not ids:
            return None
        words = norm_key(turn.text).split()
        nouns = {w for d in ids if d in home.devices for n in home.devices[d].names for w in norm_key(n).split()}
        from assistant.understanding.resolve.catalog import TYPE_WORDS

        nouns |= {
            w for d in ids if d in home.devices for t in TYPE_WORDS.get(home.devices[d].type, ()) for w in t.split()
        }
        for i, w in enumerate(words):
            if w not in ("door", "doors", "gate", "window", "blinds", "light", "lights", "lamp", "plug", "fan"):
                continue
            before = [x for x in words[max(0, i - 2) : i] if x not in _GENERIC and x not in _COMMAND_WORDS]
            stray = [x for x in before if all(_stray_words(x, home, d) for d in ids if d in home.devices)]
            if stray and w in nouns:
                phrase = " ".join([*before, w])
                return say(
                    f"There's no {phrase} here.",
                    "device.unknown",
                    "failed",
                    params={**params, "said": phrase, "unmatched": stray},
                )
        return None

    def query(self, turn: Turn) -> Response:
        """A device's state ("what is the temperature" with the oven on: the context reranker chose the oven)."""
        dev_e = turn.entity("device")
        home = turn.context.home
        if dev_e is None or not dev_e.entity_id or dev_e.entity_id not in home.devices:
            return say("Which device do you mean?", "device.query", "failed")
        refusal = self._unknown_place_or_name(turn, {})
        if refusal is not None:
            return say(refusal.text, "device.query", "failed", params=refusal.action.params)
        dev = home.device(dev_e.entity_id)
        attrs = (dev_e.normalized or {}).get("attributes") if isinstance(dev_e.normalized, dict) else None
        state = dict(dev.state)
        parts = []
        for key in attrs or [k for k in ("temperature", "brightness", "volume", "position") if k in state]:
            if key not in state:
                continue
            v = state[key]
            parts.append(
                f"set to {v:g} degrees"
                if key == "temperature"
                else f"at {v} percent {key}"
                if key in ("brightness", "volume")
                else f"{v}"
            )
        on = state.get("on")
        prefix = f"The {dev.name} is {'on' if on else 'off'}" if on is not None else f"The {dev.name} is"
        text = f"{prefix}{' and ' if on is not None and parts else ' '}{join_words(parts)}." if parts else f"{prefix}."
        return say(text.replace("  ", " "), "device.query", "done", target=dev.id, result={"state": state})

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        if pending.get("kind") != "choose_device":
            return None
        home = turn.context.home
        cands: list[str] = [c for c in pending.get("candidates", []) if c in home.devices]
        text = norm_key(turn.text)
        stop = cancelled(turn, pending.get("intent"))
        if stop is not None:
            return stop
        if text in ALL_WORDS or re.search(r"\b(both|all of them|all)\b", text):
            return self.execute(pending["intent"], cands, pending.get("params", {}), turn)
        chosen = _pick(text, [home.devices[c] for c in cands])
        if chosen is None:
            # a named device among the resolved entities of this turn also counts
            dev = turn.entity("device")
            if dev is not None and dev.entity_id in cands:
                chosen = dev.entity_id
        if chosen is None:
            return None
        return self.execute(pending["intent"], [chosen], pending.get("params", {}), turn)

    # -- planning ---------------------------------------------------------------------------------------------
    @staticmethod
    def _params(turn: Turn) -> dict[str, Any]:
        p: dict[str, Any] = {}
        num = turn.entity("number")
        if num is not None and num.normalized is not None:
            p["amount"] = num.normalized
            p["relative"] = bool(re.search(r"\b(by|more|less)\b", num.value.lower()))
        temp = turn.value("temperature")
        if (
            temp is None
            and turn.intent in ("iot_climate_set", "iot_appliance_on")
            and re.search(r"\bdegrees?\b", turn.text.lower())
        ):
            temp = spoken.parse_number(re.sub(r"^.*?\b(to|at)\b", "", turn.text.lower()))
        if (
            temp is None
            and turn.intent == "iot_climate_set"
            and "amount" in p
            and not re.search(r"\b(percent|per cent|brightness|dim|bright)\b|%", turn.text.lower())
        ):  # 30 percent is no temperature
            temp = p.pop("amount")
        if temp is not None and re.search(r"\b(percent|per cent|brightness)\b|%", turn.text.lower()):
            temp = None  # "to 30 percent" is never a temperature
        if temp is not None:
            p["temperature"] = temp
        color = turn.value("color")
        if color:
            p["color"] = color
        return p

    @staticmethod
    def _noun_for_intent(intent: str) -> str:
        return {
            "iot_cover_open": "cover",
            "iot_cover_close": "cover",
            "iot_climate_set": "thermostat",
            "iot_cleaning": "vacuum",
            "iot_coffee": "coffee machine",
        }.get(intent, "light" if "hue" in intent else "device")

    def _clarify(self, turn: Turn, cands: list[str], params: dict[str, Any]) -> Response:
        home = turn.context.home
        devs = [home.devices[c] for c in cands if c in home.devices]
        types = {d.type for d in devs}
        noun = NOUNS.get(types.pop(), "device") if len(types) == 1 else "device"
        names = [f"the {d.name}" for d in devs]
        text = f"Which {noun}: {join_words(names, 'or')}?"
        pending = {
            "skill": self.name,
            "kind": "choose_device",
            "intent": turn.intent,
            "text": turn.text,
            "params": params,
            "candidates": [d.id for d in devs],
            "candidate_names": {d.id: d.name for d in devs},
        }
        return say(
            text,
            "clarify",
            "clarify",
            params={"intent": turn.intent, "candidates": [d.id for d in devs]},
            expects_reply=True,
            pending=pending,
        )

    # -- execution --------------------------------------------------------------------------------------------
    def execute(
        self, intent: str, device_ids: list[str], params: dict[str, Any], turn: Turn, target: str | None = None
    ) -> Response:
        home = turn.context.home
        devices = [home.device(d) for d in device_ids]
        results: dict[str, dict[str, Any]] = {}
        verb = ""
        errors: list[str] = []
        for dev in devices:
            try:
                verb, changes = self._changes(intent, dev, params)
            except _CannotDo as e:
                errors.append(str(e))
                continue
            try:
                changed = home.set_state(dev.id, **changes)
            except ValueError as e:
                errors.append(f"The {dev.name} can't do that.")
                results[dev.id] = {"error": str(e)}
                continue
            results[dev.id] = {"changed": changed, "state": dict(dev.state)}
        done = [d for d in devices if d.id in results and "error" not in results[d.id]]
        action_type = devices[0].type if len({d.type for d in devices}) == 1 else "device"
        name = f"{action_type}.{verb or 'none'}"
        if not done:
            return say(
                errors[0] if errors else "Sorry, I can't do that.",
                name,
                "failed",
                target=target or (devices[0].id if len(devices) == 1 else None),
                params=params,
                result=results,
            )
        if len(devices) == 1:
            res = results[devices[0].id]
            return say(
                self._sentence(verb, devices, params), name, "done", target=devices[0].id, params=params, result=res
            )
        params = {**params, "device_ids": [d.id for d in done]}
        return say(
            self._sentence(verb, done, params),
            name,
            "done",
            target=target or "+".join(d.id for d in done),
            params=params,
            result=results,
        )

    def _changes(self, intent: str, dev: Device, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        caps = dev.capabilities
        amount = p.get("amount")
        if intent in ("iot_hue_lighton", "iot_wemo_on", "iot_appliance_on", "iot_cleaning", "iot_coffee"):
            if dev.type == "cover":
                return "open", {"position": "open"}
            if dev.type == "thermostat":
                if "temperature" in p:
                    return "set_temperature", {"temperature": p["temperature"]}
                raise _CannotDo("What temperature should I set?")
            if "on_off" not in caps:
                raise _CannotDo(f"The {dev.name} can't be switched on.")
            ch: dict[str, Any] = {"on": True}
            if dev.type == "vacuum":
                ch["status"] = "cleaning"
            verb = {"iot_cleaning": "start", "iot_coffee": "brew"}.get(intent, "turn_on")
            if "temperature" in p and "temperature" in caps:
                ch["temperature"] = p["temperature"]
                verb = "preheat" if dev.type == "oven" else verb
            if amount is not None and "brightness" in caps:
                ch["brightness"] = _clamp(amount)
            if p.get("color") and "color" in caps:
                ch["color"] = p["color"]
            return verb, ch
        if intent in ("iot_hue_lightoff", "iot_wemo_off", "iot_appliance_off"):
            if dev.type == "cover":
                return "close", {"position": "closed"}
            if "on_off" not in caps:
                raise _CannotDo(f"The {dev.name} can't be switched off.")
            return "turn_off", {"on": False, **({"status": "docked"} if dev.type == "vacuum" else {})}
        if intent == "iot_hue_lightchange":
            if p.get("color"):
                if "color" not in caps:
                    raise _CannotDo(f"The {dev.name} can't change colour.")
                return "set_color", {"on": True, "color": p["color"]}
            if amount is not None and "brightness" in caps:
                return "set_brightness", {"on": True, "brightness": _clamp(amount)}
            raise _CannotDo("Which colour would you like?")
        if intent in ("iot_hue_lightdim", "iot_hue_lightup"):
            if "brightness" not in caps:
                raise _CannotDo(f"The {dev.name} can't be dimmed.")
            cur = int(dev.state.get("brightness", 100)) if dev.state.get("on", True) else 0
            sign = -1 if intent == "iot_hue_lightdim" else 1
            if amount is None:
                new = cur + sign * STEP
            elif p.get("relative"):
                new = cur + sign * int(amount)
            else:
                new = int(amount)
            new = _clamp(new, low=1)
            return ("dim" if sign < 0 else "brighten"), {"on": True, "brightness": new}
        if intent == "iot_cover_open":
            if "open_close" not in caps:
                raise _CannotDo(f"The {dev.name} can't be opened.")
            return "open", {"position": "open"}
        if intent == "iot_cover_close":
            if "open_close" not in caps:
                raise _CannotDo(f"The {dev.name} can't be closed.")
            return "close", {"position": "closed"}
        if intent == "iot_climate_set":
            if "temperature" not in caps:
                raise _CannotDo(f"The {dev.name} has no temperature setting.")
            if "temperature" not in p:
                raise _CannotDo("What temperature should I set?")
            ch = {"temperature": p["temperature"]}
            if "on_off" in caps:
                ch["on"] = True
            return "set_temperature", ch
        raise _CannotDo("Sorry, I can't do that.")

    @staticmethod
    def _sentence(verb: str, devs: list[Device], p: dict[str, Any]) -> str:
        names = join_words([d.name for d in devs])
        the = f"the {names}"
        d = devs[0]
        if verb == "turn_on":
            extra = f" at {d.state['brightness']}%" if p.get("amount") is not None and "brightness" in d.state else ""
            return f"Turned on {the}{extra}."
        if verb == "turn_off":
            return f"Turned off {the}."
        if verb == "preheat":
            return f"Preheating {the} to {_deg(p['temperature'])}."
        if verb == "set_temperature":
            return f"Set {the} to {_deg(p['temperature'])}."
        if verb == "set_color":
            return f"{the[0].upper()}{the[1:]} {'is' if len(devs) == 1 else 'are'} now {p['color']}."
        if verb in ("set_brightness", "dim", "brighten"):
            done = "Dimmed" if verb == "dim" else "Set" if verb == "set_brightness" else "Brightened"
            return f"{done} {the} to {d.state['brightness']}%."
        if verb == "open":
            return f"Opening {the}."
        if verb == "close":
            return f"Closing {the}."
        if verb == "start":
            return f"Starting {the}."
        if verb == "brew":
            return "Making coffee."
        return "Done."


class _CannotDo(Exception):
    pass


def _clamp(v: float, low: int = 0) -> int:
    return max(low, min(100, int(round(v))))


def _deg(t: float) -> str:
    return f"{t:g} degrees"


def _the(what: str) -> str:
    w = what.strip()
    return w if re.match(r"^(the|my|a|an)\b", w.lower()) else f"the {w}"


# Words of a request that never name a device or a room: modal and auxiliary verbs, the verbs of home commands,
# pronouns, determiners and modifiers. Before a device noun they are not a name the home lacks ("can the lights be
# changed to green", "change the lights to a different hue", "the current light settings" said nothing about which
# light; "the front door" or "the garden light" did).
_COMMAND_WORDS = frozenset(
    """off on up down over out into at by for from with and or but then so if when
    can could would will shall should may might must do does did is are was were be been am have has had get let lets
    turn switch put set make change changed adjust activate dim brighten lower raise increase decrease start stop open
    close shut lock unlock show give keep leave try use want need like
    current different other another new same every each some any both this that these those here there it its them
    their your our his her me us you i we
    please just now also again hey okay ok""".split()
)

_GENERIC = {
    "the",
    "my",
    "a",
    "an",
    "all",
    "in",
    "of",
    "on",
    "to",
    "room",
    "please",
    "smart",
    "this",
    "that",
    "one",
    "its",
    "it",
    "our",
    "your",
    "some",
    "light",
    "lights",
    "lamp",
    "lamps",
    "device",
    "devices",
    "thing",
}


def _stray_words(said: str | None, home: Any, device_id: str) -> list[str]:
    """Words of what was said that neither the device's names, its type words nor an area name account for
    ("front" in "front door" for the garage door). ASR slips within a letter or two still count as matches."""
    from assistant.understanding.resolve.catalog import TYPE_WORDS

    if not said or device_id not in home.devices:
        return []
    d = home.devices[device_id]
    known = {w for n in d.names for w in norm_key(n).split()}
    known |= {w for ws in TYPE_WORDS.get(d.type, ()) for w in ws.split()}
    own = home.areas.get(d.area)  # its own room's words only: "front" (of "front room") does not name the garage door
    known |= {w for n in ((own.name, *own.aliases) if own else ()) for w in norm_key(n).split()}
    out = []
    for w in norm_key(said).split():
        if w in _GENERIC or w in known or w.rstrip("s") in known:
            continue
        if any(fuzz.ratio(w, k) >= 80 for k in known if len(k) >= 4):
            continue
        out.append(w)
    return out


def _pick(text: str, devs: list[Device]) -> str | None:
    """The device whose name or alias best matches an answer like 'the floor lamp' or 'ceiling'."""
    t = re.sub(r"\b(the|one|please|my|turn|on|off|light|lamp)\b", " ", text)
    t = " ".join(t.split()) or text
    best: tuple[float, str | None] = (0.0, None)
    second = 0.0
    for d in devs:
        score = 0.0
        for n in d.names:
            k = norm_key(n)
            s = max(fuzz.token_set_ratio(text, k), fuzz.partial_ratio(t, k) if len(t) >= 3 else 0, fuzz.ratio(t, k))
            score = max(score, s)
        if score > best[0]:
            second = best[0]
            best = (score, d.id)
        elif score > second:
            second = score
    if best[0] >= 70 and best[0] - second >= 10:
        return best[1]
    return None
