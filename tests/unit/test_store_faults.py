"""The trace store at start and under faults: corrupt, foreign and newer stores; a full disk (SQLite's own
"database or disk is full", injected with max_page_count); a failing store seen by the recorder. No models."""

from __future__ import annotations

import logging
import os
import sqlite3
import time

import pytest

from assistant.core.events import StageEnded, StageStarted, TurnEnded, TurnStarted
from assistant.core.record import TurnRecord
from assistant.errors import AssistantError
from assistant.trace.recorder import TraceRecorder
from assistant.trace.schema import SCHEMA_VERSION
from assistant.trace.store import TraceNotSaved, TraceStore, TurnTrace


def _trace(i: int, session: str = "s1") -> TurnTrace:
    rec = {"turn_id": f"t{i:05d}", "transcript": f"turn {i}", "intent": "x", "intent_confidence": 0.9, "error": None}
    return TurnTrace(
        turn_id=f"t{i:05d}",
        session_id=session,
        device_id="d",
        user_id="u",
        started_at=1000.0 + i,
        ended_at=1000.5 + i,
        source={"kind": "text"},
        pipeline={},
        context={},
        record=rec,
    )


def _integrity(path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def _asides(path):
    return sorted(p for p in path.parent.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm")))


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all\n" * 40, os.urandom(8192), b"\x00" * 4096],
    ids=["text", "random", "zeros"],
)
def test_a_file_that_is_not_sqlite_is_moved_aside_and_a_new_store_created(tmp_path, caplog, content):
    path = tmp_path / "traces.db"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="assistant.trace.store"):
        store = TraceStore(path)
    (aside,) = _asides(path)
    assert aside.read_bytes() == content  # kept, byte for byte
    assert store.moved_aside == aside
    assert str(path) in caplog.text and str(aside) in caplog.text  # the message names both paths
    store.write_turn(_trace(1))
    assert store.count_turns() == 1 and store.schema_version == SCHEMA_VERSION
    store.close()


def test_a_damaged_sqlite_store_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "traces.db"
    store = TraceStore(path)
    for i in range(300):
        store.write_turn(_trace(i))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[2 * page : 5 * page] = os.urandom(3 * page)  # the header survives, table pages do not
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="assistant.trace.store"):
        store = TraceStore(path)
    assert len(_asides(path)) == 1 and "moved it aside" in caplog.text.lower()
    assert store.count_turns() == 0
    store.write_turn(_trace(1))
    assert _integrity(path) == "ok"
    store.close()


def test_another_programs_database_is_moved_aside_not_migrated(tmp_path):
    path = tmp_path / "traces.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO photos(name) VALUES ('holiday')")
    db.commit()
    db.close()
    store = TraceStore(path)
    (aside,) = _asides(path)
    assert sqlite3.connect(aside).execute("SELECT name FROM photos").fetchall() == [("holiday",)]
    assert store.count_turns() == 0
    store.close()


def test_a_store_from_a_newer_release_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "traces.db"
    store = TraceStore(path)
    store.write_turn(_trace(1))
    store._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    before = path.read_bytes()
    with pytest.raises(AssistantError) as err:
        TraceStore(path)
    assert err.value.code == "trace-store-newer" and "newer than this release" in err.value.message
    assert str(path) in err.value.message
    assert path.read_bytes() == before and not _asides(path)


def test_an_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "traces.db"
    path.touch()
    store = TraceStore(path)
    assert store.schema_version == SCHEMA_VERSION and not _asides(path)
    store.close()


def test_full_disk_raises_trace_not_saved_and_damages_nothing(tmp_path):
    path = tmp_path / "traces.db"
    store = TraceStore(path)
    for i in range(20):
        store.write_turn(_trace(i))
    writer = store._wdb  # the store's write connection (open after the first write)
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages}")  # SQLite now answers SQLITE_FULL, as on a full disk
    big = _trace(999)
    big.record["transcript"] = "x" * 200_000
    with pytest.raises(TraceNotSaved) as err:
        store.write_turn(big)
    assert err.value.code == "trace-not-saved" and "full" in err.value.message
    assert store.count_turns() == 20 and store.get_turn("t00999") is None  # no half turn
    store.close()
    assert _integrity(path) == "ok"
    again = TraceStore(path)
    again.write_turn(big)  # space is back (a new connection has no page limit): the store carries on
    assert again.count_turns() == 21
    again.close()


class _FullStore:
    """A store whose disk is full for the first `fail` writes."""

    writable = True

    def __init__(self, fail: int) -> None:
        self.fail, self.written = fail, []

    def write_turn(self, trace):
        if self.fail:
            self.fail -= 1
            raise TraceNotSaved(
                "trace-not-saved", "Traces are not being saved: /x/traces.db: database or disk is full."
            )
        self.written.append(trace.turn_id)


def _turn(recorder, turn_id: str) -> TurnRecord:
    rec = TurnRecord(
        turn_id=turn_id,
        session_id="s",
        source={"kind": "text"},
        wake={"detected": False},
        transcript="hello",
        response_text="Hi.",
    )
    recorder(TurnStarted(turn_id, "s", rec.source, rec.wake, "2026-01-01T00:00:00"))
    recorder(StageStarted(turn_id, "nlu", "fake", "1", 0.0, {"text": "hello"}))
    recorder(StageEnded(turn_id, "nlu", 1.0, output={}, confidence=0.9))
    recorder(TurnEnded(record=rec, started_at=time.time()))
    return rec


def test_a_write_while_a_read_cursor_is_open_does_not_wait_for_ever(tmp_path):
    """label_store's pattern: stream turns in batches and write labels between them, while another process writes.
    On one connection the open cursor pins an old snapshot and the write fails with SQLITE_BUSY_SNAPSHOT."""
    path = tmp_path / "traces.db"
    store, other = TraceStore(path), TraceStore(path)
    for i in range(50):
        store.write_turn(_trace(i))
    batches = store.iter_turn_batches(batch_size=10, spans=False, events=False, labels=False)
    first = next(batches)  # a read cursor is open now
    other.write_turn(_trace(100, session="s2"))  # another process commits: the cursor's snapshot is old
    t0 = time.monotonic()
    store.write_labels([(r["turn_id"], "ok", 0.9, [], "test") for r in first])
    assert time.monotonic() - t0 < 5
    assert sum(len(b) for b in batches) == 40
    assert store.get_label(first[0]["turn_id"])["label"] == "ok"
    store.close()
    other.close()


def test_recorder_warns_once_marks_the_record_and_recovers():
    warnings: list[str] = []
    store = _FullStore(fail=2)
    recorder = TraceRecorder(store, warn=warnings.append)
    first, second, third = (_turn(recorder, t) for t in ("a", "b", "c"))
    assert first["events"] == [
        {
            "type": "trace-not-saved",
            "code": "trace-not-saved",
            "message": "Traces are not being saved: /x/traces.db: database or disk is full.",
        }
    ]
    assert second["events"][0]["type"] == "trace-not-saved" and "events" not in third
    assert store.written == ["c"] and recorder.failures == 2
    assert len(warnings) == 2 and "not being saved" in warnings[0] and "saved again" in warnings[1]
    assert "trace-not-saved" in first.to_dict()["events"][0]["code"]  # what --json prints


def test_a_store_that_cannot_be_opened_for_writing_still_opens(tmp_path, monkeypatch):
    """A read-only medium: opening for writing fails with SQLite's "readonly database"; the store opens read-only."""
    path = tmp_path / "traces.db"
    store = TraceStore(path)
    store.write_turn(_trace(1))
    store.close()

    def readonly(self):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(TraceStore, "_open_checked", readonly)
    store = TraceStore(path)
    assert store.writable is False and "readonly" in store.unsaved_reason
    assert store.count_turns() == 1  # what is stored can still be read
    warnings: list[str] = []
    recorder = TraceRecorder(store, warn=warnings.append)
    rec = _turn(recorder, "z")
    assert rec["events"][0]["type"] == "trace-not-saved" and len(warnings) == 1
    store.close()
    assert _integrity(path) == "ok"
