"""Goals: what a simulated person wants from one request, built from held-out SLURP sentences.

A goal is an intent with slot values and an expected outcome that can be checked against a turn record. Its
utterances are SLURP devel/test sentences (never NLU training rows: the model is trained on HWU64 minus every
SLURP devel/test sentence plus templates) with the same intent and the same normalised slot values, plus a few
template paraphrases that are checked not to be training rows either.

`GoalBank.load()` groups the held-out rows; `SPECS` says, per intent, which action a correct answer takes, with which
statuses, and which slots must survive ASR and NLU for the request to be understood.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import shared_data_dir
from assistant.text import normalize_dataset
from assistant.training.nlu_eval import load_slurp

DATA_ROOT = shared_data_dir()


@dataclass(frozen=True)
class Spec:
    """What a correct answer to an intent looks like."""

    actions: tuple[str, ...]
    """Acceptable action names; `*.verb` matches any device type (home control names actions `type.verb`)."""
    statuses: tuple[str, ...] = ("done",)
    key_slots: tuple[str, ...] = ()
    """Slot types whose values must be understood (when the goal has them)."""
    intents: tuple[str, ...] = ()
    """Other intents that lead to the same outcome (e.g. iot_wemo_on / iot_appliance_on)."""
    home: bool = False
    """Home control: the action's devices must be in the goal's room and of the goal's device type."""
    named_device: bool = False
    """The action must act on exactly the device the goal names (the garage door, the back door). Opening and unlocking
    are confirmed first: "are you sure?" is the right first answer, and the person's "yes" carries it out."""


_ON = ("iot_hue_lighton", "iot_wemo_on", "iot_appliance_on")
_OFF = ("iot_hue_lightoff", "iot_wemo_off", "iot_appliance_off")
_MUSIC_KEYS = ("artist_name", "music_genre", "song_name", "playlist_name")
SPECS: dict[str, Spec] = {
    "iot_hue_lighton": Spec(("light.turn_on", "device.turn_on"), key_slots=("house_place",), intents=_ON, home=True),
    "iot_hue_lightoff": Spec(
        ("light.turn_off", "device.turn_off"), key_slots=("house_place",), intents=_OFF, home=True
    ),
    "iot_hue_lightchange": Spec(
        ("light.set_color", "light.set_brightness", "device.set_color"),
        key_slots=("house_place", "color_type"),
        home=True,
    ),
    "iot_hue_lightdim": Spec(("light.dim", "device.dim"), key_slots=("house_place",), home=True),
    "iot_hue_lightup": Spec(("light.brighten", "device.brighten"), key_slots=("house_place",), home=True),
    "iot_wemo_on": Spec(("*.turn_on", "cover.open"), key_slots=("device_type",), intents=_ON, home=True),
    "iot_wemo_off": Spec(("*.turn_off", "cover.close"), key_slots=("device_type",), intents=_OFF, home=True),
    # Opening a garage door and unlocking a door are confirmed first ("Are you sure ...?"); the NLU calls both
    # iot_cover_open, and whichever home intent it picks, the home grammar acts on the words.
    "iot_cover_open": Spec(
        ("cover.open", "lock.unlock"),
        key_slots=("device_type",),
        intents=("iot_wemo_on", "iot_appliance_on"),
        home=True,
        named_device=True,
    ),
    "iot_cover_close": Spec(
        ("cover.close", "lock.lock"),
        key_slots=("device_type",),
        intents=("iot_wemo_off", "iot_appliance_off"),
        home=True,
        named_device=True,
    ),
    "iot_cleaning": Spec(("vacuum.start",), home=True),
    "iot_coffee": Spec(("coffee_machine.brew",), home=True),
    "datetime_query": Spec(("datetime.query",)),
    "alarm_set": Spec(("alarm.set",), key_slots=("time",)),
    "alarm_query": Spec(("alarm.query",)),
    "alarm_remove": Spec(("alarm.cancel",), statuses=("done", "failed")),  # "there's no alarm to cancel" is right too
    "timer_set": Spec(("timer.start",), key_slots=("duration",)),
    "timer_query": Spec(("timer.query",)),
    "lists_createoradd": Spec(("list.add", "list.create"), key_slots=("list_name",)),
    "lists_query": Spec(("list.query",), statuses=("done", "failed"), key_slots=("list_name",)),
    "lists_remove": Spec(("list.remove", "list.delete"), statuses=("done", "failed"), key_slots=("list_name",)),
    "play_music": Spec(("music.play",), key_slots=_MUSIC_KEYS),
    "music_query": Spec(("music.query",)),
    "music_likeness": Spec(("music.like",), statuses=("done", "failed")),
    "audio_volume_up": Spec(("volume.up", "volume.set")),
    "audio_volume_down": Spec(("volume.down", "volume.set")),
    "audio_volume_mute": Spec(("volume.mute", "volume.set")),
    "media_pause": Spec(("music.pause",), statuses=("done", "failed")),
    "media_next": Spec(("music.next",), statuses=("done", "failed")),
    "play_audiobook": Spec(("media.play",), statuses=("done", "failed")),
    "play_podcasts": Spec(("media.play",), statuses=("done", "failed")),
    # Offline there is no weather service: understanding the request and saying so is the right answer.
    "weather_query": Spec(("weather.query",), statuses=("done", "unavailable")),
    "general_joke": Spec(("joke.tell",)),
}
UNSUPPORTED_SPEC = Spec(("none",), statuses=("unsupported",))
# Intents no skill handles: the right answer is "Sorry, I can't do that." (status unsupported).
UNSUPPORTED_INTENTS = (
    "calendar_set",
    "calendar_query",
    "email_query",
    "email_sendemail",
    "news_query",
    "qa_factoid",
    "transport_query",
    "transport_ticket",
    "cooking_recipe",
    "takeaway_order",
    "social_post",
    "recommendation_events",
    "qa_currency",
    "play_radio",
)


def spec_for(intent: str) -> Spec:
    return SPECS.get(intent, UNSUPPORTED_SPEC)


# Template paraphrases: used when every placeholder is a slot of the goal and every slot of the goal is used.
TEMPLATES: dict[str, list[str]] = {
    "iot_hue_lighton": [
        "switch on the lights please",
        "lights on please",
        "could you switch on the light",
        "switch on the {house_place} lights please",
        "lights on in the {house_place} please",
        "could you turn the {house_place} light on",
    ],
    "iot_hue_lightoff": [
        "switch off the lights please",
        "lights off please",
        "could you switch off the light",
        "switch off the {house_place} lights please",
        "lights off in the {house_place} please",
        "could you turn the {house_place} light off",
    ],
    "iot_hue_lightchange": [
        "could you make the lights {color_type}",
        "set the light colour to {color_type} please",
        "make the {house_place} lights {color_type} please",
    ],
    "iot_hue_lightdim": [
        "could you dim the lights a bit",
        "make the lights a little dimmer please",
        "dim the {house_place} lights a bit please",
        "make the {house_place} a little darker please",
    ],
    "iot_hue_lightup": [
        "could you make the lights brighter",
        "brighten the lights a bit please",
        "make the {house_place} lights brighter please",
    ],
    "iot_wemo_on": ["could you switch on the {device_type}", "switch the {device_type} on please"],
    "iot_wemo_off": ["could you switch off the {device_type}", "switch the {device_type} off please"],
    "iot_cleaning": [
        "could you start the robot vacuum",
        "start cleaning the floors please",
        "could you start the {device_type}",
    ],
    "iot_coffee": ["could you brew me a coffee please", "i would like a coffee please"],
    "datetime_query": [
        "could you tell me the time please",
        "what time is it right now please",
        "what is the date {date} please",
    ],
    "alarm_set": [
        "please set an alarm for {time}",
        "could you wake me up at {time}",
        "i need an alarm at {time} please",
    ],
    "alarm_query": ["which alarms have i got set", "could you list my alarms please"],
    "alarm_remove": ["please cancel my alarm", "could you delete my alarm please"],
    "timer_set": [
        "please set a timer for {duration}",
        "could you start a {duration} timer",
        "timer for {duration} please",
    ],
    "timer_query": ["how much time is left on my timer", "how long is left on the timer please"],
    "lists_query": ["could you read me my {list_name} list", "what have i got on my {list_name} list please"],
    "lists_remove": ["please delete my {list_name} list", "could you get rid of the {list_name} list"],
    "lists_createoradd": ["please make a new {list_name} list", "could you start a {list_name} list"],
    "play_music": [
        "could you play some {music_genre} please",
        "put on some {music_genre} music please",
        "could you play something by {artist_name}",
        "please put on some {artist_name}",
        "could you play the song {song_name}",
        "please play {song_name}",
    ],
    "music_query": ["what song is playing right now", "could you tell me what this song is"],
    "audio_volume_up": ["could you turn the volume up please", "make it a bit louder please"],
    "audio_volume_down": ["could you turn the volume down please", "make it a bit quieter please"],
    "audio_volume_mute": ["please mute the sound", "could you mute the speaker please"],
    "media_pause": ["please pause the music", "could you pause this please"],
    "media_next": ["please skip to the next song", "could you play the next track please"],
    "weather_query": [
        "what is the weather like today please",
        "could you tell me the weather forecast",
        "what is the weather going to be like {date} please",
    ],
    "general_joke": ["could you tell me a joke please", "say something funny please", "i would like to hear a joke"],
}
# Goals no SLURP sentence covers (timers, transport controls): template-only, still checked against training rows.
TEMPLATE_ONLY: list[tuple[str, dict[str, str], list[str]]] = [
    (
        "timer_set",
        {"duration": "ten minutes"},
        ["set a timer for ten minutes please", "could you start a ten minute timer"],
    ),
    (
        "timer_set",
        {"duration": "five minutes"},
        ["please set a timer for five minutes", "could you start a five minute timer"],
    ),
    (
        "timer_set",
        {"duration": "twenty minutes"},
        ["could you set a timer for twenty minutes", "timer for twenty minutes please"],
    ),
    ("timer_query", {}, ["how much time is left on my timer", "how long is left on the timer please"]),
    # SLURP has no garage doors or locks; every phrasing names the device (its words are the key slot).
    (
        "iot_cover_open",
        {"device_type": "garage door"},
        [
            "could you open the garage door for me",
            "please open up the garage door",
            "i need the garage door open",
            "open the garage door please",
            "can you open the garage door",
        ],
    ),
    (
        "iot_cover_open",
        {"device_type": "back door"},
        [
            "could you unlock the back door for me",
            "please unlock the back door",
            "unlock the back door please",
            "i need the back door unlocked",
        ],
    ),
    (
        "iot_cover_close",
        {"device_type": "garage door"},
        ["could you close the garage door for me", "please shut the garage door", "close the garage door please"],
    ),
    (
        "iot_cover_close",
        {"device_type": "back door"},
        ["could you lock the back door for me", "please lock the back door", "lock the back door please"],
    ),
    ("media_pause", {}, ["please pause the music", "could you pause this please"]),
    ("media_next", {}, ["please skip to the next song", "could you play the next track please"]),
]


@dataclass
class Goal:
    goal_id: str
    intent: str
    slots: dict[str, str]
    """Normalised slot values (type -> value) shared by every utterance."""
    utterances: list[str]
    """Held-out sentences first, then template paraphrases."""
    sources: list[str] = field(default_factory=list)
    """Where each utterance comes from: `slurp-devel:ID`, `slurp-test:ID`, `template` or `personal`."""
    expect: dict[str, Any] | None = None
    """A personal meaning (simulate/meanings.py): `devices` (the action must target exactly these), `entity`
    ({slot, id}: the slot must resolve to this catalog id), `phrase` (the person's own words for it)."""

    @property
    def spec(self) -> Spec:
        return spec_for(self.intent)

    @property
    def supported(self) -> bool:
        return self.intent in SPECS

    def key_slots(self) -> dict[str, str]:
        return {k: v for k, v in self.slots.items() if k in self.spec.key_slots}

    def to_dict(self) -> dict[str, Any]:
        d = {"goal_id": self.goal_id, "intent": self.intent, "slots": dict(self.slots), "supported": self.supported}
        if self.expect:
            d["expect"] = dict(self.expect)
        return d


def _goal_id(intent: str, slots: dict[str, str]) -> str:
    key = json.dumps([intent, sorted(slots.items())])
    return f"{intent}:{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _fill(template: str, slots: dict[str, str]) -> str | None:
    import re

    names = set(re.findall(r"{(\w+)}", template))
    if names != set(slots):
        return None
    return template.format(**slots)


@functools.lru_cache(maxsize=2)
def training_texts(data_root: str = str(DATA_ROOT)) -> frozenset[str]:
    """Normalised text of every NLU training row (HWU64 minus SLURP devel/test, plus the template rows)."""
    from assistant.training.nlu import build_datasets

    try:
        d = build_datasets(data_root=Path(data_root))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(normalize_dataset(r["text"]) for r in d["train"])


class GoalBank:
    """All goals: supported intents and a share of intents no skill handles."""

    def __init__(self, goals: list[Goal]) -> None:
        self.goals = goals
        self.by_id = {g.goal_id: g for g in goals}
        self.by_intent: dict[str, list[Goal]] = defaultdict(list)
        for g in goals:
            self.by_intent[g.intent].append(g)

    @classmethod
    @functools.lru_cache(maxsize=2)
    def load(cls, data_root: Path = DATA_ROOT) -> GoalBank:
        banned = training_texts(str(data_root))
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[str, str]]] = defaultdict(list)
        seen: set[str] = set()
        for split in ("devel", "test"):
            path = Path(data_root) / "slurp" / f"{split}.jsonl"
            if not path.exists():
                continue
            for row in load_slurp(path):
                intent = row["intent"]
                if intent not in SPECS and intent not in UNSUPPORTED_INTENTS:
                    continue
                text = normalize_dataset(row["text"])
                if not text or text in banned or text in seen or len(text.split()) > 14:
                    continue
                seen.add(text)
                slots: dict[str, str] = {}
                for s, e, t in row["spans"]:
                    slots.setdefault(t, normalize_dataset(row["text"][s:e]))
                groups[(intent, tuple(sorted(slots.items())))].append((text, f"slurp-{split}:{row['id']}"))
        goals: list[Goal] = []
        for (intent, slot_items), rows in sorted(groups.items()):
            slots = dict(slot_items)
            utts = [t for t, _ in rows]
            srcs = [s for _, s in rows]
            for tpl in TEMPLATES.get(intent, ()):
                text = _fill(tpl, slots)
                if text and normalize_dataset(text) not in banned and text not in utts:
                    utts.append(text)
                    srcs.append("template")
            goals.append(Goal(_goal_id(intent, slots), intent, slots, utts, srcs))
        for intent, slots, texts in TEMPLATE_ONLY:
            utts = [t for t in texts if normalize_dataset(t) not in banned]
            if utts and _goal_id(intent, slots) not in {g.goal_id for g in goals}:
                goals.append(Goal(_goal_id(intent, slots), intent, slots, utts, ["template"] * len(utts)))
        return cls(goals)

    def supported(self) -> list[Goal]:
        return [g for g in self.goals if g.supported]

    def unsupported(self) -> list[Goal]:
        return [g for g in self.goals if not g.supported]


def goal_from_dict(d: dict[str, Any]) -> Goal:
    return Goal(
        d["goal_id"],
        d["intent"],
        dict(d.get("slots") or {}),
        list(d.get("utterances") or []),
        list(d.get("sources") or []),
        expect=d.get("expect"),
    )


__all__ = ["SPECS", "UNSUPPORTED_INTENTS", "Goal", "GoalBank", "Spec", "asdict", "spec_for"]
