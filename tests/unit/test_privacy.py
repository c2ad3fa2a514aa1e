"""Privacy controls: redaction, pseudonyms, per-user opt-out, retention (prune)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from assistant.trace.export import export
from assistant.trace.privacy import (
    is_opted_out,
    load_salt,
    needs_redaction,
    opt_in,
    opt_out,
    prune,
    pseudonym,
    redact,
    redact_obj,
)
from assistant.trace.store import Span, TraceStore, TurnTrace

REPO = Path(__file__).resolve().parents[2]
needs_nlu = pytest.mark.skipif(
    not (REPO / "models" / "nlu" / "model.onnx").exists(), reason="models/nlu/model.onnx not trained yet"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("call me on 555-123-4567 or mail bob@example.com", "call me on [PHONE] or mail [EMAIL]"),
        ("my number is +44 20 7946 0958.", "my number is [PHONE]."),
        ("(555) 123-4567", "[PHONE]"),
        ("ring 5551234567 now", "ring [PHONE] now"),
        ("text five five five one two three four five six seven", "text [PHONE]"),
        ("Mail Jane.Doe+home@mail.example.co.uk please", "Mail [EMAIL] please"),
        # not phone numbers: times, dates, quantities, versions, long floats
        ("set a timer for 10 minutes", None),
        ("wake me at 07:30 on 2024-05-01", None),
        ("add 12 eggs and 500 grams", None),
        ("turn the volume to 40", None),
        ("version 1.2.3456789", None),
        ("confidence 0.912345678", None),
        ("set the thermostat to 21.5 degrees", None),
        ("one two three", None),
    ],
)
def test_redaction(text, expected):
    assert redact(text) == (expected if expected is not None else text)
    assert needs_redaction(text) is (expected is not None)


def test_redact_obj_keeps_identifiers():
    obj = {
        "turn_id": "5551234567",
        "text": "call 555-123-4567",
        "items": [{"value": "a@b.io", "path": "/x/5551234567.wav"}],
        "n": 5551234567,
    }
    assert redact_obj(obj) == {
        "turn_id": "5551234567",
        "text": "call [PHONE]",
        "items": [{"value": "[EMAIL]", "path": "/x/5551234567.wav"}],
        "n": 5551234567,
    }


def test_pseudonyms_are_stable_salted_and_not_the_raw_id(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    p1 = pseudonym(a, "alice")
    assert p1 == pseudonym(a, "alice") and p1.startswith("u_") and len(p1) == 34 and "alice" not in p1
    assert pseudonym(a, "bob") != p1
    assert pseudonym(b, "alice") != p1  # another install, another salt
    salt_file = a / "privacy_salt"
    assert stat.S_IMODE(os.stat(salt_file).st_mode) == 0o600 and len(load_salt(a)) == 32


def _turn(store: TraceStore, tid: str, started: float, user: str, audio: Path | None = None) -> None:
    rec = {
        "turn_id": tid,
        "transcript": "what time is it",
        "intent": "datetime_query",
        "intent_confidence": 0.9,
        "action": {"name": "time.tell", "status": "done"},
        "response_text": "It's eight.",
        "response_audio": str(audio) if audio else None,
        "error": None,
    }
    store.write_turn(
        TurnTrace(
            tid,
            f"s-{tid}",
            "kitchen_speaker",
            user,
            started,
            started + 0.2,
            {"kind": "text"},
            {},
            {"user_id": user},
            rec,
            spans=[Span("nlu", "x", "1", 0, 1, {"text": "x"}, {}, 0.9)],
            events=[{"type": "barge-in", "t_ms": 5, "data": {}}],
        )
    )


def test_opt_out_records_nothing_and_exports_nothing(tmp_path, monkeypatch, capsys):
    from assistant.cli.main import main

    data = tmp_path / "data"
    store = TraceStore(data / "traces.db")
    _turn(store, "a1", 1000, "alice")
    _turn(store, "b1", 1001, "bob")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data))
    # export leaves out an opted-out user's turns even if some were recorded (--keep)
    assert main(["privacy", "opt-out", "alice", "--keep", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "user_pseudonym": pseudonym(data, "alice"),
        "opted_out": True,
        "turns_deleted": 0,
        "voice_deleted": False,
    }
    assert is_opted_out(data, "alice") and not is_opted_out(data, "bob")
    assert "alice" not in (data / "privacy.json").read_text()  # only the pseudonym is stored
    export(store, tmp_path / "out", "jsonl", data_dir=data)
    rows = [json.loads(x) for x in (tmp_path / "out" / "turns.jsonl").read_text().splitlines()]
    assert [r["turn_id"] for r in rows] == ["b1"]
    # opting out without --keep deletes what was recorded
    assert main(["privacy", "opt-out", "alice"]) == 0
    assert "deleted 1 turns" in capsys.readouterr().out
    assert store.get_turn("a1") is None and store.get_turn("b1") is not None
    assert main(["privacy", "opt-in", "alice"]) == 0
    assert not is_opted_out(data, "alice")
    assert opt_in(data, "alice") is False
    opt_out(data, "carol")
    assert is_opted_out(data, "carol")


def test_prune_deletes_old_turns_and_their_audio_and_keeps_newer(tmp_path, monkeypatch, capsys):
    from assistant.cli.main import main
    from assistant.learning.signals import label_store

    data = tmp_path / "data"
    store = TraceStore(data / "traces.db")
    now = time.time()
    old_audio, new_audio = tmp_path / "old.wav", tmp_path / "new.wav"
    old_audio.write_bytes(b"old")
    new_audio.write_bytes(b"new")
    _turn(store, "old1", now - 40 * 86400, "alice", old_audio)
    _turn(store, "old2", now - 31 * 86400, "alice")
    _turn(store, "new1", now - 5 * 86400, "alice", new_audio)
    label_store(store)
    assert store.label_counts()
    result = prune(store, 30)
    assert result["turns"] == 2 and result["audio_files"] == 1
    assert not old_audio.exists() and new_audio.exists()
    assert store.get_turn("old1") is None and store.get_turn("new1") is not None
    db = store._db
    for table in ("spans", "events", "labels"):
        assert {r[0] for r in db.execute(f"SELECT turn_id FROM {table}")} == {"new1"}, table
    assert {r[0] for r in db.execute("SELECT session_id FROM sessions")} == {"s-new1"}
    # the CLI
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data))
    assert main(["traces", "prune", "--older-than", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["turns"] == 1
    assert not new_audio.exists() and store.count_turns() == 0
