"""The SQLite trace store: migrations, one transaction per turn, nothing half-written."""

from __future__ import annotations

import sqlite3

import pytest

from assistant.errors import AssistantError
from assistant.trace.schema import SCHEMA_VERSION
from assistant.trace.store import Span, TraceStore, TurnTrace


def _trace(turn_id: str, session: str = "s1", started: float = 1000.0) -> TurnTrace:
    rec = {
        "turn_id": turn_id,
        "transcript": "turn on the light",
        "intent": "iot_hue_lighton",
        "intent_confidence": 0.9,
        "action": {"name": "light.turn_on"},
        "response_text": "ok",
        "error": None,
    }
    return TurnTrace(
        turn_id,
        session,
        "kitchen_speaker",
        "u1",
        started,
        started + 1,
        {"kind": "text"},
        {"nlu": "x"},
        {"device_id": "kitchen_speaker"},
        rec,
        spans=[Span("nlu", "onnx", "1", 0, 5, {"text": "turn on the light"}, {"intent": "iot_hue_lighton"}, 0.9)],
        events=[{"type": "wake", "t_ms": 0, "data": {"score": 0.99}}],
    )


def test_new_store_is_migrated_and_in_wal_mode(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    assert store.schema_version == SCHEMA_VERSION
    mode = sqlite3.connect(tmp_path / "t.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_turn_round_trip_with_spans_events_and_session_order(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    store.write_turn(_trace("a", started=1000))
    store.write_turn(_trace("b", started=1010))
    store.add_event("a", "barge-in", {"offset_ms": 420})
    turn = store.get_turn("a")
    assert turn["record"]["intent"] == "iot_hue_lighton"
    assert turn["spans"][0]["stage"] == "nlu" and turn["spans"][0]["confidence"] == 0.9
    assert [e["type"] for e in turn["events"]] == ["wake", "barge-in"]
    assert store.get_turn("b")["seq"] == 2
    assert [r["turn_id"] for r in store.list_turns()] == ["b", "a"]
    assert store.find_turn_id("a") == "a"


def test_failed_write_leaves_nothing_behind(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    store.write_turn(_trace("a"))
    with pytest.raises(sqlite3.IntegrityError):
        store.write_turn(_trace("a"))  # same id: the whole second turn must roll back
    assert store.count_turns() == 1
    assert len(store.get_turn("a")["spans"]) == 1


def test_reopen_keeps_data_and_newer_schema_is_refused(tmp_path):
    path = tmp_path / "t.db"
    TraceStore(path).write_turn(_trace("a"))
    assert TraceStore(path).count_turns() == 1
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(AssistantError) as err:
        TraceStore(path)
    assert err.value.code == "trace-store-newer"


def test_corrupt_store_is_moved_aside_and_replaced(tmp_path):
    """Issue 21: a damaged store no longer stops the assistant: it is kept aside and a new one is created."""
    path = tmp_path / "t.db"
    path.write_bytes(b"not a database" * 100)
    store = TraceStore(path)
    assert store.moved_aside is not None and store.moved_aside.read_bytes() == b"not a database" * 100
    assert store.count_turns() == 0
    store.close()
