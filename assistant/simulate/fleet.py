"""A synthetic fleet: trace exports at scale (millions of sessions) built from simulator runs' exports, so the
learning jobs can be measured without hours of simulation.

Each fleet session is a real session of a simulator run (its turns, transcripts with their ASR errors, actions,
labels, signals, spans: everything the pipeline traced), drawn at random, given new ids, a fleet user and device and a
start time on one of the fleet's days. So the fleet has the simulator's statistics of rephrases, barge-ins, failures
and session lengths by construction (`stats` reports them for the pool and the fleet), while utterances recur across
many users as popular requests and common ASR errors do in a real fleet. The rephrase signal's pointer (`by_turn`)
is re-mapped to the new turn ids. Written as Parquet partitioned by day (`OUT/turns/day=YYYY-MM-DD/part-N.parquet`),
with the export's schema, `export_schema.json` and `manifest.json`, so every reader of an export reads it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError

_BY_TURN = re.compile(r'("by_turn":\s*")([^"]+)(")')


def load_pool(exports: list[Path]) -> Any:
    """The turns of simulator runs' exports (turns.parquet or folders holding it), sorted by session and turn."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assistant.learning.sources import export_file

    tables = []
    for p in exports:
        f = export_file(Path(p))
        if not f.is_file() or f.suffix != ".parquet":
            raise AssistantError(
                "bad-export", f"{p}: no turns.parquet (run `assistant traces export --format parquet`)."
            )
        tables.append(pq.read_table(f))
    pool = pa.concat_tables(tables, promote_options="default")
    order = np.lexsort((pool.column("turn_index").to_numpy(), np.asarray(pool.column("session_id").to_pylist())))
    return pool.take(order)


def _remap_signals(signals: Any, suffix: Any) -> Any:
    """The rephrase signal's `by_turn` + the row's new-id suffix: typed signals (export v2) column-wise, JSON text
    (v1) by a regex."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(signals.type):
        return pa.array(
            [
                _BY_TURN.sub(lambda m, s=s: m.group(1) + m.group(2) + s + m.group(3), x) if x and "by_turn" in x else x
                for x, s in zip(signals.to_pylist(), suffix.to_pylist())
            ],
            pa.string(),
        )
    lengths = pc.fill_null(pc.list_value_length(signals), 0).to_numpy()
    flat = signals.flatten()
    per_item = pa.array(np.repeat(np.asarray(suffix.to_pylist(), dtype=object), lengths), pa.string())
    fields = [flat.field(i) for i in range(flat.type.num_fields)]
    names = [f.name for f in flat.type]
    k = names.index("by_turn")
    fields[k] = pc.binary_join_element_wise(fields[k], per_item, "")
    items = pa.StructArray.from_arrays(fields, names=names)
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, items, mask=signals.is_null())


def _stats(sessions: np.ndarray, table: Any) -> dict[str, Any]:
    signals = [json.dumps(s) if not isinstance(s, str) else s for s in table.column("signals").to_pylist()]
    events = [json.dumps(e) if not isinstance(e, str) else e for e in table.column("events").to_pylist()]
    labels = table.column("label").to_pylist()
    n = max(1, len(signals))
    return {
        "turns": len(signals),
        "sessions": int(len(sessions)),
        "turns_per_session": round(len(signals) / max(1, len(sessions)), 3),
        "rephrase_signal_rate": round(sum('"rephrase"' in s for s in signals) / n, 4),
        "barge_in_rate": round(sum("barge-in" in e for e in events) / n, 4),
        "defect_rate": round(sum(x == "defect" for x in labels) / n, 4),
    }


def generate(
    exports: list[Path],
    out: Path,
    sessions: int,
    days: int = 7,
    users: int | None = None,
    seed: int = 0,
    start: str = "2026-01-05",
    chunk_sessions: int = 100_000,
) -> dict[str, Any]:
    """Write a fleet of `sessions` sessions over `days` days under OUT/turns/day=.../; returns the manifest."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from assistant.trace.export import SCHEMA_PATH

    t_start = time.perf_counter()
    pool = load_pool(exports)
    sid = np.asarray(pool.column("session_id").to_pylist())
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    first, count = bounds[:-1], np.diff(bounds)
    started = pool.column("started_at").cast(pa.int64()).to_numpy()
    ended = pool.column("ended_at").fill_null(pool.column("started_at")).cast(pa.int64()).to_numpy()
    rel0 = started - np.repeat(started[first], count)  # micros since the session's first turn
    rel1 = ended - np.repeat(started[first], count)
    users = users or max(1, sessions // 20)  # ~20 sessions per user over the period
    rng = np.random.default_rng(seed)
    day0 = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    turns_dir = out / "turns"
    if turns_dir.exists():
        shutil.rmtree(turns_dir)
    schema = pool.schema
    written, files = 0, 0
    per_day = np.bincount(rng.integers(0, days, sessions), minlength=days)
    k0 = 0
    for day in range(days):
        day_dir = turns_dir / f"day={(day0 + timedelta(days=day)).date().isoformat()}"
        day_dir.mkdir(parents=True)
        for c0 in range(0, int(per_day[day]), chunk_sessions):
            n = min(chunk_sessions, int(per_day[day]) - c0)
            ks = np.arange(k0, k0 + n)
            k0 += n
            pick = rng.integers(0, len(first), n)
            reps = count[pick]
            idx = np.concatenate([np.arange(first[p], first[p] + c) for p, c in zip(pick, reps)])
            sess_no = np.repeat(ks, reps)
            t0 = (day0 + timedelta(days=day)).timestamp() * 1e6 + rng.uniform(0, 86_400e6 - 3_600e6, n)
            base = np.repeat(t0.astype(np.int64), reps)
            suffix = pa.array([f"-{k:x}" for k in sess_no.tolist()])
            table = pool.take(pa.array(idx))
            new_tid = pc.binary_join_element_wise(table.column("turn_id").combine_chunks(), suffix, "")
            new_sig = _remap_signals(table.column("signals").combine_chunks(), suffix)
            user_of = rng.integers(0, users, n)
            cols = {
                "turn_id": new_tid,
                "session_id": pa.array([f"f{k:010x}" for k in sess_no.tolist()]),
                "started_at": pa.array(base + rel0[idx]).cast(pa.timestamp("us", tz="UTC")),
                "ended_at": pa.array(base + rel1[idx]).cast(pa.timestamp("us", tz="UTC")),
                "user_pseudonym": pa.array([f"u_fleet{u:08x}" for u in np.repeat(user_of, reps).tolist()]),
                "device_id": pa.array([f"dev{u:08x}" for u in np.repeat(user_of, reps).tolist()]),
                "signals": new_sig,
            }
            for name, arr in cols.items():
                if name in table.column_names:
                    i = table.schema.get_field_index(name)
                    table = table.set_column(i, schema.field(name), arr.cast(schema.field(name).type))
            pq.write_table(table, day_dir / f"part-{c0 // chunk_sessions:05d}.parquet", compression="zstd")
            written += len(table)
            files += 1
    shutil.copyfile(SCHEMA_PATH, out / "export_schema.json")
    fleet_sample = pq.read_table(next(turns_dir.rglob("*.parquet")))
    manifest = {
        "export_schema_version": int((schema.metadata or {}).get(b"export_schema_version", b"1")),
        "format": "parquet",
        "file": "turns",
        "partitioning": "day",
        "rows": written,
        "sessions": sessions,
        "days": days,
        "users": users,
        "seed": seed,
        "files": files,
        "from": [str(p) for p in exports],
        "pool": _stats(first, pool),
        "fleet_first_file": _stats(np.unique(np.asarray(fleet_sample.column("session_id").to_pylist())), fleet_sample),
        "seconds": round(time.perf_counter() - t_start, 2),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
