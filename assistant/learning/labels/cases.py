"""Hand-built sessions with a known failure at each stage, written into a trace store exactly as the pipeline writes
turns (record, asr / nlu / resolve / respond spans, events). Used by the tests and as worked examples.

Each case is a list of turns of one session with the indices of its defective turns, their failing stage, the goals
(lists of turn indices) and whether each goal succeeded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from assistant.trace.store import Span, TraceStore, TurnTrace


@dataclass
class T:
    """One turn: what the device heard, understood, resolved and did."""

    text: str
    intent: str | None
    conf: float = 0.95
    asr_conf: float = 0.93
    slots: dict[str, str] = field(default_factory=dict)
    entities: list[dict[str, Any]] = field(default_factory=list)
    action: str = "none"
    status: str = "done"
    response: str = "OK."
    at: float = 0.0
    """seconds after the session's start"""
    expects_reply: bool = False
    error: dict[str, Any] | None = None
    nbest: list[tuple[str, float]] | None = None
    barge_in_ms: float | None = None
    wake_score: float | None = None
    """The wake word's score when the turn began with one (a wake span is written), else no wake stage."""


@dataclass
class Case:
    name: str
    stage: str
    turns: list[T]
    defects: list[int]
    """indices of the defective turns (all failing at `stage`)"""
    goals: list[list[int]]
    success: list[bool]


def _audio_seconds(text: str) -> float:
    return round(0.6 + len(text.split()) / 2.6, 2)


def write_case(
    store: TraceStore, case: Case, t0: float = 1_740_985_000.0, user: str = "h-test", device: str = "kitchen.speaker"
) -> list[str]:
    """Write the case's turns as one session; returns their turn ids."""
    session = f"s-{case.name}-{uuid.uuid4().hex[:6]}"
    ids = []
    for t in case.turns:
        tid = uuid.uuid4().hex
        ids.append(tid)
        audio_s = _audio_seconds(t.text)
        start = t0 + t.at
        nbest = t.nbest or ([(t.intent, t.conf), ("general_quirky", round(1 - t.conf, 4))] if t.intent else [])
        slot_spans = []
        for k, v in t.slots.items():  # where the value is in the text, as the NLU reports it (0 when it is not)
            at = max(t.text.lower().find(v.lower()), 0)
            slot_spans.append({"name": k, "value": v, "start": at, "end": at + len(v), "confidence": 0.9})
        action = {"name": t.action, "status": t.status, "target": None, "params": {}, "result": {}}
        rec = {
            "turn_id": tid,
            "session_id": session,
            "source": {"kind": "test"},
            "wake": None if t.wake_score is None else _wake(t.wake_score),
            "transcript": t.text,
            "asr_confidence": t.asr_conf,
            "intent": t.intent,
            "intent_confidence": t.conf,
            "slots": t.slots,
            "entities": t.entities,
            "action": action,
            "response_text": t.response,
            "response_audio": None,
            "expects_reply": t.expects_reply,
            "latency_ms": {},
            "error": t.error,
        }
        spans = [
            Span(
                "asr",
                "test",
                "1",
                0.0,
                300.0,
                {"audio_seconds": audio_s},
                {"text": t.text, "confidence": t.asr_conf, "no_speech_prob": 0.05, "audio_seconds": audio_s},
                t.asr_conf,
            ),
            Span(
                "nlu",
                "test",
                "1",
                300.0,
                320.0,
                {"text": t.text},
                {
                    "text": t.text,
                    "intent": t.intent,
                    "confidence": t.conf,
                    "slots": slot_spans,
                    "nbest": [list(x) for x in nbest],
                },
                t.conf,
            ),
            Span("resolve", "test", "1", 320.0, 330.0, {"slots": t.slots}, {"entities": t.entities}),
            Span(
                "respond",
                "test",
                "1",
                330.0,
                350.0,
                {"intent": t.intent},
                {"text": t.response, "action": action, "expects_reply": t.expects_reply},
            ),
        ]
        if t.wake_score is not None:
            wake_in = {"models": ["alexa", "hey_jarvis"], "threshold": 0.5}
            spans.insert(0, Span("wake", "test", "1", 0.0, 0.0, wake_in, _wake(t.wake_score), t.wake_score))
        events = []
        if t.barge_in_ms is not None:
            events.append({"type": "barge-in", "t_ms": t.barge_in_ms, "data": {"offset_ms": t.barge_in_ms}})
        store.write_turn(
            TurnTrace(tid, session, device, user, start, start + 0.4, {"kind": "test"}, {}, {}, rec, spans, events)
        )
    return ids


def _wake(score: float) -> dict[str, Any]:
    return {"detected": True, "score": score, "model": "hey_jarvis", "offset_seconds": 1.0}


def _room(name: str, ok: bool = True) -> dict[str, Any]:
    return {
        "slot": "house_place",
        "value": name,
        "entity_type": "area",
        "entity_id": name if ok else None,
        "name": name if ok else None,
        "score": 1.0 if ok else 0.0,
        "candidates": [],
    }


_OPEN_GARAGE = T(
    "Open the garage door.",
    "iot_cover_open",
    0.99,
    0.95,
    slots={"device_type": "garage door"},
    action="confirm",
    status="clarify",
    response="Are you sure you want to open the garage door?",
    expects_reply=True,
)
"""A request the skill confirms first (the start of the confirm-* cases)."""

CASES: list[Case] = [
    Case(
        "false-wake",
        "false_wake",
        [
            T(
                "She said she would call him first thing tomorrow.",
                "calendar_set",
                0.64,
                0.74,
                action="none",
                status="unsupported",
                response="Sorry, I can't do that.",
            ),
            T("Stop.", "general_commandstop", 0.99, 0.9, action="stop", status="done", response="", at=3.2),
        ],
        defects=[0],
        goals=[[0, 1]],
        success=[False],
    ),
    Case(
        "asr",
        "asr",
        [
            T(
                "Raise the lamp slide.",
                "iot_cover_open",
                0.55,
                0.42,
                slots={"device_type": "lamp slide"},
                action="cover.open",
                status="failed",
                response="There is no blind to open here.",
            ),
            T(
                "Raise the lamp's light.",
                "iot_hue_lightup",
                0.93,
                0.9,
                slots={"device_type": "lamp's light"},
                action="light.brighten",
                status="done",
                response="Brightening the lamp.",
                at=5.5,
            ),
        ],
        defects=[0],
        goals=[[0, 1]],
        success=[True],
    ),
    Case(
        "nlu",
        "nlu",
        [
            T(
                "Add milk to my shopping list.",
                "lists_query",
                0.52,
                0.96,
                slots={"list_name": "shopping"},
                action="lists.query",
                status="done",
                response="Your shopping list is empty.",
                nbest=[("lists_query", 0.52), ("lists_createoradd", 0.44), ("lists_remove", 0.02)],
            ),
            T(
                "Put milk on the shopping list.",
                "lists_createoradd",
                0.97,
                0.95,
                slots={"list_name": "shopping", "item": "milk"},
                action="lists.add",
                status="done",
                response="Added milk to your shopping list.",
                at=4.8,
            ),
        ],
        defects=[0],
        goals=[[0, 1]],
        success=[True],
    ),
    Case(
        "entity",
        "entity_resolution",
        [
            T(
                "Turn off the light in the hallway.",
                "iot_hue_lightoff",
                0.97,
                0.95,
                slots={"house_place": "hallway"},
                entities=[_room("hallway", ok=False)],
                action="light.off",
                status="failed",
                response="I don't know a room called hallway.",
            ),
            T(
                "Turn off the hallway light.",
                "iot_hue_lightoff",
                0.97,
                0.95,
                slots={"house_place": "hallway"},
                entities=[_room("hallway", ok=False)],
                action="light.off",
                status="failed",
                response="I don't know a room called hallway.",
                at=6.0,
            ),
        ],
        defects=[0, 1],
        goals=[[0, 1]],
        success=[False],
    ),
    Case(
        "result",
        "result",
        [
            T(
                "Set a timer for ten minutes.",
                "timer_set",
                0.98,
                0.96,
                slots={"duration": "ten minutes"},
                action="timer.set",
                status="failed",
                response="Sorry, something went wrong with the timer.",
                error={"stage": "respond", "code": "skill-error", "message": "timer store locked"},
            ),
            T(
                "Set a ten minute timer.",
                "timer_set",
                0.98,
                0.96,
                slots={"duration": "ten minute"},
                action="timer.set",
                status="done",
                response="Timer set for 10 minutes.",
                at=5.0,
            ),
        ],
        defects=[0],
        goals=[[0, 1]],
        success=[True],
    ),
    Case(
        "endpointing",
        "endpointing",
        [
            T(
                "What's the weather in",
                "weather_query",
                0.93,
                0.9,
                action="weather.query",
                status="done",
                response="It's 12 degrees and cloudy here.",
            ),
            T(
                "What's the weather in Paris?",
                "weather_query",
                0.97,
                0.94,
                slots={"place_name": "paris"},
                action="weather.query",
                status="done",
                response="It's 15 degrees and sunny in Paris.",
                at=5.0,
            ),
        ],
        defects=[0],
        goals=[[0, 1]],
        success=[True],
    ),
    Case(
        "ok-then-new",
        "correct",
        [
            T(
                "Turn on the kitchen light.",
                "iot_hue_lighton",
                0.98,
                0.95,
                slots={"house_place": "kitchen"},
                entities=[_room("kitchen")],
                action="light.on",
                status="done",
                response="Kitchen light on.",
            ),
            T(
                "What time is it?",
                "datetime_query",
                0.99,
                0.96,
                action="datetime.query",
                status="done",
                response="It's 7:05.",
                at=40.0,
            ),
        ],
        defects=[],
        goals=[[0], [1]],
        success=[True, True],
    ),
    Case(
        "clarify",
        "correct",
        [
            T(
                "Turn on the lamp.",
                "iot_hue_lighton",
                0.97,
                0.95,
                slots={"device_type": "lamp"},
                action="light.on",
                status="clarify",
                response="Which one: the floor lamp or the desk lamp?",
                expects_reply=True,
            ),
            T(
                "The desk lamp.",
                "iot_hue_lighton",
                0.7,
                0.93,
                action="light.on",
                status="done",
                response="Desk lamp on.",
                at=4.5,
            ),
        ],
        defects=[],
        goals=[[0, 1]],
        success=[True],
    ),
    Case(
        "confirm-yes",
        "correct",
        [
            _OPEN_GARAGE,
            T(
                "Yes.",
                "iot_cover_open",
                0.99,
                0.9,
                action="cover.open",
                status="done",
                response="Opened the garage door.",
                at=4.0,
            ),
        ],
        defects=[],
        goals=[[0, 1]],
        success=[True],
    ),
    Case(
        # "Are you sure?" left unanswered, and a new request two seconds after the question ended: two goals, the
        # first not reached (the garage stayed shut) and no defect anywhere.
        "confirm-walk-away",
        "correct",
        [
            _OPEN_GARAGE,
            T(
                "What time is it?",
                "datetime_query",
                0.99,
                0.96,
                action="datetime.query",
                status="done",
                response="It's 7:05.",
                at=8.5,
            ),
        ],
        defects=[],
        goals=[[0], [1]],
        success=[False, True],
    ),
]

KNOWN_MISSES: dict[str, str] = {
    "entity": (
        "labels-1-cc51609c (as labels-1-6c02c4fa and labels-1-b86dfcc2 before it) calls the unknown 'hallway' an NLU "
        "failure: its training "
        "runs have people who call a room by a word the home lacks, but the device they trained on answers "
        '"There\'s no den here.", and this case\'s "I don\'t know a room called hallway." (with that answer the '
        "previous model named the second turn entity_resolution; models/labels/MODEL_CARD.md, Limits)"
    ),
    "tv-false-wake": (
        "labels-1-cc51609c gives the TV line that woke the device (wake score 0.56, threshold 0.5) a defect "
        "probability of 0.30 (labels-1-6c02c4fa: 0.41): a confident, carried-out answer nobody followed up looks "
        "right, and the marginal-wake evidence (x5) does not lift it over 0.5; the simulator runs no wake stage, "
        "so no model learns wake scores (models/labels/MODEL_CARD.md, Limits)"
    ),
    "fw-marginal": (
        "labels-1-cc51609c gives the hand-built false wake nobody answered a defect probability of 0.41 after a "
        "marginal wake (0.12 after a clear one; labels-1-6c02c4fa: 0.51 and 0.17): the marginal-wake likelihood "
        "ratio (x5, evidence.py) is hand-set, because the simulator runs no wake stage, and this model is surer that "
        "a lone confident answer was right (models/labels/MODEL_CARD.md, Limits)"
    ),
}
"""Hand-built cases the shipped model gets wrong, and why (the tests expect them to fail until a model fixes them)."""
