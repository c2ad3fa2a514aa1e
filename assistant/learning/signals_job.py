"""Signals and defect labels as an engine job: `signals.session_signals` and `signals.label_turn` (the very functions
`signals.label_store` runs over the trace store) run inside the chosen engine (DuckDB or Spark) over an export, one
partition at a time, a session never split across partitions (the engine's `map_partitions`, hashed by session and
sorted by turn index, the way the rephrase detector runs). The result is a versioned Parquet table, one row per turn:
turn_id, session_id, turn_index, label, confidence, signals (JSON text, the list `label_store` writes), labeler_version.

The export carries what the signals read (outcome, action result, events, the replayed recording's offsets, the tts
span's audio length, latencies); schema v1 (nested fields as JSON text) and v2 (typed) both work: each nested value is
handed to Python as JSON text (`to_json` of the typed value, the same spelling in both engines) and turned back into
the store's record shape by `turn_from_export`. Differences from labelling the store: the export's transcripts are
redacted (a phone number reads [PHONE]), its times are whole microseconds, and opted-out users are not in it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from assistant.learning.signals import LABELER_VERSION, SignalConfig, label_turn, session_signals

NESTED = ("source", "action", "latency_ms", "spans", "events")
SCHEMA = (
    "turn_id string, session_id string, turn_index int, label string, confidence double, signals string, "
    "labeler_version string"
)


def input_sql(dialect: Any, version: int) -> str:
    """What the signals read, one row per turn, nested fields as JSON text (v2: `to_json` of the typed value)."""
    nested = ", ".join(f"{'to_json(' + c + ')' if version >= 2 else c} AS {c}" for c in NESTED)
    return (
        f"SELECT turn_id, session_id, turn_index, {dialect.epoch('started_at')} AS t0, "
        f"{dialect.epoch('coalesce(ended_at, started_at)')} AS t1, transcript, intent, response_text, "
        f"coalesce(expects_reply, false) AS expects_reply, error_code, error_stage, {nested} FROM turns"
    )


def _parsed(value: Any) -> Any:
    """A nested value given as JSON text, parsed; a payload that is plain text stays text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _with_other(obj: Any) -> Any:
    """A typed struct (v2) back to the recorded object: the keys it did not name come back out of `other`."""
    if not isinstance(obj, dict) or "other" not in obj:
        return obj
    other = _parsed(obj.get("other"))
    named = {k: v for k, v in obj.items() if k != "other" and v is not None}
    return {**other, **named} if isinstance(other, dict) else named


def turn_from_export(row: dict[str, Any]) -> dict[str, Any]:
    """One exported turn (the columns of `input_sql`) as `TraceStore.iter_turn_batches` gives it to the signals."""
    source = _with_other(_parsed(row["source"])) or {}
    action = _with_other(_parsed(row["action"]))
    if isinstance(action, dict):
        action = {**action, "params": _parsed(action.get("params")), "result": _parsed(action.get("result"))}
    latency = _parsed(row["latency_ms"])
    if isinstance(latency, list):  # v2: a list of {name, ms}
        latency = {x["name"]: x["ms"] for x in latency}
    spans = [{**s, "output": _parsed(s.get("output"))} for s in _parsed(row["spans"]) or ()]
    events = [{**e, "data": _parsed(e.get("data")) or {}} for e in _parsed(row["events"]) or ()]
    err = {"code": row["error_code"], "stage": row["error_stage"]} if row["error_code"] else None
    record = {
        "transcript": row["transcript"],
        "intent": row["intent"],
        "action": action,
        "response_text": row["response_text"],
        "expects_reply": bool(row["expects_reply"]),
        "error": err,
        "latency_ms": latency or {},
    }
    return {
        "turn_id": row["turn_id"],
        "session_id": row["session_id"],
        "seq": row["turn_index"],
        "started_at": float(row["t0"]),
        "ended_at": float(row["t1"]),
        "source": source,
        "record": record,
        "spans": spans,
        "events": events,
    }


def _dumps(signals: list[dict[str, Any]]) -> str:
    return json.dumps(signals, ensure_ascii=False, separators=(",", ":"))


def label_partition(config: SignalConfig, now: float, batches: Iterable[Any]) -> Iterator[tuple]:
    """Signals and label of every turn of one partition (Arrow record batches of `input_sql`, sorted by session and
    turn index, a session never split): the same rows on both engines, as `label_store` would write them."""
    session: list[dict[str, Any]] = []

    def labelled() -> Iterator[tuple]:
        signals = session_signals(session, config, now)
        for t in session:
            sig = signals[t["turn_id"]]
            label, conf = label_turn(sig, config)
            yield (t["turn_id"], t["session_id"], int(t["seq"]), label, float(conf), _dumps(sig), LABELER_VERSION)

    for batch in batches:
        for row in batch.to_pylist():
            if session and session[0]["session_id"] != row["session_id"]:
                yield from labelled()
                session = []
            session.append(turn_from_export(row))
    if session:
        yield from labelled()


def next_version(out: str) -> str:
    """OUT/vN: the next free N for a local folder; elsewhere (a cluster's URI, not listed from here) N is the time."""
    if "://" in out:
        return f"{out.rstrip('/')}/v{int(time.time())}"
    taken = [int(p.name[1:]) for p in Path(out).glob("v*") if p.name[1:].isdigit()]
    return str(Path(out) / f"v{max(taken, default=0) + 1}")


def signals_job(
    export: Any, engine: Any, out: str | None = None, config: SignalConfig | None = None, now: float | None = None
) -> dict[str, Any]:
    """Label every turn of the export on `engine`; with `out`, write the table as Parquet under OUT/vN/.
    Returns counts per label and per signal type (as `label_store` does), and where the table went."""
    config = config or SignalConfig()
    now = time.time() if now is None else now
    t0 = time.perf_counter()
    version = engine.load_export(export)
    engine.map_partitions(
        "turn_signals",
        input_sql(engine.dialect, version),
        functools.partial(label_partition, config, now),
        SCHEMA,
        "session_id",
        ["session_id", "turn_index"],
    )
    labels = {k: int(n) for k, n in engine.rows("SELECT label, count(*) FROM turn_signals GROUP BY label")}
    signals: dict[str, int] = {}
    for (text,) in engine.rows("SELECT signals FROM turn_signals WHERE signals <> '[]'"):
        for s in json.loads(text):
            signals[s["type"]] = signals.get(s["type"], 0) + 1
    result: dict[str, Any] = {
        "turns": sum(labels.values()),
        "labels": dict(sorted(labels.items())),
        "signals": dict(sorted(signals.items())),
        "labeler_version": LABELER_VERSION,
        "engine": engine.name,
        "now": now,
    }
    if out:
        result["out"] = next_version(out)
        engine.write_parquet("SELECT * FROM turn_signals", result["out"])
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def rows(engine: Any) -> dict[str, tuple[str, float, list[dict[str, Any]]]]:
    """turn_id -> (label, confidence, signals) of the last `signals_job` on `engine` (tests, comparisons)."""
    return {
        tid: (label, conf, json.loads(sig))
        for tid, label, conf, sig in engine.rows("SELECT turn_id, label, confidence, signals FROM turn_signals")
    }
