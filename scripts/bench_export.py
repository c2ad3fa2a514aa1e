"""Export throughput and peak memory on synthetic traces (not a test: 1M turns take minutes).

    .venv/bin/python scripts/bench_export.py --turns 1000000 --dir /tmp/bench

Builds DIR/traces.db with N synthetic turns (tests/synth_traces.py, generated inside SQLite) unless it exists, then
runs `traces label` and each export format in a fresh child process and reports turns/s and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(args: argparse.Namespace) -> None:
    from assistant.learning.signals import label_store
    from assistant.trace.export import export
    from assistant.trace.store import TraceStore

    store = TraceStore(args.dir / "traces.db")
    t0 = time.perf_counter()
    if args.phase == "label":
        out = label_store(store, now=time.time())
        n = out["turns"]
    else:
        out = export(store, args.dir / f"out-{args.phase}", args.phase, data_dir=args.dir)
        n = out["rows"]
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "phase": args.phase,
                "turns": n,
                "seconds": round(seconds, 1),
                "turns_per_s": round(n / seconds),
                "peak_rss_mb": round(rss, 1),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assistant-export-bench"))
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--phases", default="label,parquet,jsonl")
    args = ap.parse_args()
    if args.phase:
        return _child(args)
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / "traces.db"
    if not db.exists():
        sys.path.insert(0, str(REPO / "tests"))
        from synth_traces import bulk_insert_sql

        from assistant.trace.store import TraceStore

        t0 = time.perf_counter()
        store = TraceStore(db)
        bulk_insert_sql(store, args.turns)
        store.close()
        print(
            json.dumps(
                {
                    "phase": "generate",
                    "turns": args.turns,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "db_mb": round(db.stat().st_size / 1e6),
                }
            ),
            flush=True,
        )
    for phase in args.phases.split(","):
        subprocess.run([sys.executable, __file__, "--dir", str(args.dir), "--phase", phase], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
