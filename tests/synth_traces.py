"""Synthetic traces written straight into a store (bulk SQL, not through the pipeline): for export memory and
throughput checks (tests/test_export.py, scripts/bench_export.py) and for hand-built signal cases."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import numpy as np

from assistant.trace.store import Span, TraceStore, TurnTrace

_REQUESTS = [
    ("turn on the kitchen light", "iot_hue_lighton", "light.turn_on", "done", "Turned on the kitchen light."),
    ("what time is it", "datetime_query", "time.tell", "done", "It's 8:15."),
    ("play some jazz", "play_music", "music.play", "done", "Playing jazz."),
    ("set a timer", "alarm_set", "clarify", "clarify", "For how long?"),
    ("stop", "general_commandstop", "stop", "done", "Okay."),
    ("make me a sandwich", "general_quirky", "none", "unsupported", "Sorry, I can't do that."),
    ("call me on 555-123-4567", "email_addcontact", "none", "unsupported", "Sorry, I can't do that."),
]


def bulk_insert(
    store: TraceStore,
    n_turns: int,
    start: float = 1_700_000_000.0,
    users: tuple[str, ...] = ("alice", "bob"),
    turns_per_session: int = 5,
    step_seconds: float = 7.0,
    seed: int = 0,
    chunk: int = 20_000,
    audio_dir: Path | None = None,
) -> None:
    """Insert `n_turns` plausible turns (records, 4 spans each, a wake event on some) in chunks of executemany."""
    rng = random.Random(seed)
    db = store._db  # noqa: SLF001 - test data only
    for c0 in range(0, n_turns, chunk):
        sessions, turns, spans, events = [], [], [], []
        for i in range(c0, min(n_turns, c0 + chunk)):
            sid = f"s{i // turns_per_session:09d}"
            seq = i % turns_per_session + 1
            user = users[(i // turns_per_session) % len(users)]
            t = start + i * step_seconds
            if seq == 1:
                sessions.append((sid, "kitchen_speaker", user, t, t + turns_per_session * step_seconds))
            text, intent, action, status, resp = _REQUESTS[rng.randrange(len(_REQUESTS))]
            tid = f"{i:032x}"
            conf = round(rng.uniform(0.4, 0.99), 4)
            audio = str(audio_dir / f"{tid}.wav") if audio_dir else None
            rec = {
                "turn_id": tid,
                "session_id": sid,
                "source": {"kind": "text"},
                "wake": {"detected": False},
                "transcript": text,
                "asr_confidence": None,
                "intent": intent,
                "intent_confidence": conf,
                "slots": {"house_place": "kitchen"} if "kitchen" in text else {},
                "entities": [],
                "action": {"name": action, "status": status, "target": None, "params": {}, "result": {}},
                "response_text": resp,
                "response_audio": audio,
                "expects_reply": status == "clarify",
                "latency_ms": {"nlu": 4.1, "resolve": 0.3, "respond": 0.2, "tts": 80.0, "total": 90.0},
                "error": None,
            }
            ctx = {
                "device_id": "kitchen_speaker",
                "user_id": user,
                "now": "2025-01-01T08:00:00",
                "home": {"name": "Example home", "states": {"kitchen.light": {"on": True, "brightness": 80}}},
            }
            turns.append(
                (
                    tid,
                    sid,
                    seq,
                    t,
                    t + 0.09,
                    json.dumps(rec["source"]),
                    text,
                    intent,
                    conf,
                    json.dumps(rec["action"]),
                    resp,
                    audio,
                    None,
                    None,
                    json.dumps({"nlu": "onnx-joint 1"}),
                    json.dumps(ctx),
                    json.dumps(rec),
                )
            )
            nbest = [[intent, conf], ["general_quirky", round(1 - conf, 4)]]
            for k, (stage, inp, out) in enumerate(
                (
                    (
                        "nlu",
                        {"text": text},
                        {"text": text, "intent": intent, "confidence": conf, "slots": [], "nbest": nbest},
                    ),
                    ("resolve", {"slots": rec["slots"]}, {"entities": []}),
                    ("respond", {"intent": intent, "entities": 0}, {"text": resp, "action": rec["action"]}),
                    ("tts", {"text": resp}, {"audio_seconds": 1.2, "sample_rate": 22050, "path": audio}),
                )
            ):
                spans.append(
                    (
                        tid,
                        k,
                        stage,
                        "backend",
                        "1",
                        k * 2.0,
                        k * 2.0 + 1.5,
                        json.dumps(inp),
                        json.dumps(out),
                        conf if stage == "nlu" else None,
                        None,
                    )
                )
            if i % 10 == 0:
                events.append((tid, "barge-in", 350.0, json.dumps({"offset_ms": 350}), t))
        db.execute("BEGIN")
        db.executemany("INSERT INTO sessions VALUES (?,?,?,?,?)", sessions)
        db.executemany("INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", turns)
        db.executemany("INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?)", spans)
        db.executemany("INSERT INTO events(turn_id, type, t_ms, data, created_at) VALUES (?,?,?,?,?)", events)
        db.execute("COMMIT")


def bulk_insert_sql(
    store: TraceStore,
    n_turns: int,
    start: float = 1_700_000_000.0,
    turns_per_session: int = 5,
    step_seconds: float = 7.0,
    users: tuple[str, str] = ("alice", "bob"),
    phone_every: int = 1000,
) -> None:
    """The same shape of data as `bulk_insert`, generated inside SQLite (recursive CTE + JSON1): ~10x faster, for
    the 200k-turn memory test and the 1M-turn benchmark. One turn in `phone_every` says a phone number."""
    db = store._db  # noqa: SLF001 - test data only
    k = len(_REQUESTS)
    gen = f"""WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {n_turns - 1}),
      req(r, text, intent, action, status, resp) AS (
        SELECT column1 - 1, column2, column3, column4, column5, column6 FROM (VALUES {
        ",".join(
            f"({j + 1}, {', '.join(chr(39) + v.replace(chr(39), chr(39) * 2) + chr(39) for v in _REQUESTS[j])})"
            for j in range(k)
        )
    })),
      base AS (SELECT i, printf('%032x', i) AS tid, printf('s%09d', i / {turns_per_session}) AS sid,
                      i % {turns_per_session} + 1 AS seq, {start} + i * {step_seconds} AS t,
                      CASE WHEN i % {phone_every} = 0 THEN {k - 1} ELSE (i * 7919) % {k - 1} END AS r,
                      round(0.4 + ((i * 104729) % 590) / 1000.0, 4) AS conf
               FROM seq)"""
    db.execute("BEGIN")
    db.execute(f"""INSERT INTO sessions {gen}
        SELECT sid, 'kitchen_speaker', CASE (i / {turns_per_session}) % 2 WHEN 0 THEN '{users[0]}' ELSE '{users[1]}' END,
               t, t + {turns_per_session * step_seconds} FROM base WHERE seq = 1""")
    db.execute(f"""INSERT INTO turns {gen},
      rows AS (SELECT b.*, q.text, q.intent, q.action, q.status, q.resp,
                 json_object('name', q.action, 'status', q.status, 'target', NULL, 'params', json('{{}}'),
                             'result', json('{{}}')) AS act FROM base b JOIN req q ON q.r = b.r)
      SELECT tid, sid, seq, t, t + 0.09, '{{"kind": "text"}}', text, intent, conf, act, resp, NULL, NULL, NULL,
             '{{"nlu": "onnx-joint 1"}}',
             json_object('device_id', 'kitchen_speaker', 'user_id',
                         CASE (i / {turns_per_session}) % 2 WHEN 0 THEN '{users[0]}' ELSE '{users[1]}' END,
                         'now', '2025-01-01T08:00:00', 'home', json('{{"name": "Example home", "states":
                         {{"kitchen.light": {{"on": true, "brightness": 80}}}}}}')),
             json_object('turn_id', tid, 'session_id', sid, 'source', json('{{"kind": "text"}}'),
                         'wake', json('{{"detected": false}}'), 'transcript', text, 'asr_confidence', NULL,
                         'intent', intent, 'intent_confidence', conf,
                         'slots', CASE WHEN text LIKE '%kitchen%' THEN json('{{"house_place": "kitchen"}}')
                                  ELSE json('{{}}') END,
                         'entities', json('[]'), 'action', json(act), 'response_text', resp, 'response_audio', NULL,
                         'expects_reply', json(CASE status WHEN 'clarify' THEN 'true' ELSE 'false' END),
                         'latency_ms', json('{{"nlu": 4.1, "resolve": 0.3, "respond": 0.2, "tts": 80.0, "total": 90.0}}'),
                         'error', NULL)
      FROM rows""")
    db.execute("""INSERT INTO spans
      SELECT t.turn_id, k.idx, k.stage, 'backend', '1', k.idx * 2.0, k.idx * 2.0 + 1.5,
        CASE k.stage WHEN 'nlu' THEN json_object('text', t.transcript)
                     WHEN 'resolve' THEN json_object('slots', json_extract(t.record, '$.slots'))
                     WHEN 'respond' THEN json_object('intent', t.intent, 'entities', 0)
                     ELSE json_object('text', t.response_text) END,
        CASE k.stage WHEN 'nlu' THEN json_object('text', t.transcript, 'intent', t.intent, 'confidence',
                                                 t.intent_confidence, 'slots', json('[]'), 'nbest',
                                                 json_array(json_array(t.intent, t.intent_confidence),
                                                            json_array('general_quirky', round(1 - t.intent_confidence, 4))))
                     WHEN 'resolve' THEN json('{"entities": []}')
                     WHEN 'respond' THEN json_object('text', t.response_text, 'action', json(t.action))
                     ELSE json('{"audio_seconds": 1.2, "sample_rate": 22050, "path": null}') END,
        CASE k.stage WHEN 'nlu' THEN t.intent_confidence END, NULL
      FROM turns t, (SELECT 0 AS idx, 'nlu' AS stage UNION ALL SELECT 1, 'resolve' UNION ALL SELECT 2, 'respond'
                     UNION ALL SELECT 3, 'tts') k""")
    db.execute("""INSERT INTO events(turn_id, type, t_ms, data, created_at)
      SELECT turn_id, 'barge-in', 350.0, '{"offset_ms": 350}', started_at FROM turns WHERE rowid % 10 = 0""")
    db.execute("COMMIT")


def add_session(
    store: TraceStore,
    user: str,
    start: float,
    turns: list[tuple[str, str, str]],
    step: float = 6.0,
    device: str = "kitchen_speaker",
    actions: list[dict | None] | None = None,
) -> None:
    """One session of (text, status, intent[, slots]) turns `step` seconds apart, written as the pipeline would.
    `actions`: per turn, fields of its action (name, target, params) over the placeholder's."""
    sid = uuid.uuid4().hex
    for k, (text, status, intent, *slots) in enumerate(turns):
        tid = uuid.uuid4().hex
        t = start + k * step
        rec = {
            "turn_id": tid,
            "session_id": sid,
            "source": {"kind": "text"},
            "wake": {"detected": False},
            "transcript": text,
            "asr_confidence": None,
            "intent": intent,
            "intent_confidence": 0.9,
            "slots": slots[0] if slots else {},
            "entities": [],
            "action": {
                "name": "x",
                "status": status,
                "target": None,
                "params": {},
                "result": {},
                **((actions[k] or {}) if actions else {}),
            },
            "response_text": "ok" if status == "done" else "Sorry, I can't do that.",
            "response_audio": None,
            "expects_reply": False,
            "latency_ms": {"total": 50.0},
            "error": None,
        }
        store.write_turn(
            TurnTrace(
                tid,
                sid,
                device,
                user,
                t,
                t + 0.05,
                {"kind": "text"},
                {},
                {"user_id": user},
                rec,
                [Span("nlu", "nlu", "1", 0.0, 1.0, {"text": text}, {"intent": intent})],
            )
        )


def turn_view(tmp_path, transcript: str, intent: str, conf: float, status: str, audio: bool = True):
    """A labeller's view of one turn, with a short kept request audio file in `tmp_path` (unless `audio` is False)."""
    from assistant import audio as audio_io
    from assistant.learning.labels.features import TurnView

    wav = tmp_path / "req.flac"
    noise = (np.random.default_rng(3).standard_normal(8000) * 3000).astype(np.int16)
    audio_io.write_flac(wav, noise, 16000)
    return TurnView(
        turn_id="t1", session_id="s", device_id="d", user_id="u", started_at=0.0, ended_at=1.0,
        transcript=transcript, intent=intent, intent_conf=conf, nbest=[(intent, conf)], slots={}, slot_confs=[],
        asr_conf=0.6, no_speech=0.01, audio_seconds=0.5, entities=[], action_name="none", status=status,
        error_code=None, error_stage=None, response="", expects_reply=False, barge_in=False, feedback=None,
        wake_score=None, tts_seconds=None, request_audio=str(wav) if audio else None,
    )  # fmt: skip


def known_miss(case_name: str):
    """pytest marks for a hand-built label case the shipped model is known to get wrong (cases.KNOWN_MISSES): a
    strict xfail, so the test fails again once a model gets the case right and the entry must go."""
    import pytest

    from assistant.learning.labels.cases import KNOWN_MISSES

    reason = KNOWN_MISSES.get(case_name)
    return pytest.mark.xfail(strict=True, reason=reason) if reason else ()
