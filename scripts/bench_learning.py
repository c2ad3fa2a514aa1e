"""Learning jobs at scale: wall time, peak memory and detector throughput of one job on one engine over a fleet export
(`assistant fleet`). One measurement per process (so peak memory is this job's); run alone on a quiet machine:

    .venv/bin/python scripts/bench_learning.py --export fleet/1m --engine duckdb --job rewrites
    .venv/bin/python scripts/bench_learning.py --export fleet/100k --engine spark \
        --spark-master 'local[2]' --job detect --sample-sessions 2000

Jobs: `rewrites` (lexical mining + Markov solve), `detect` (the learned rephrase detector over the first
--sample-sessions sessions, in the engine: sessions/s), `learned` (detector + mining + solve on the whole export).
Memory: peak RSS of this process and its children (Spark's JVM and Python workers), sampled every 0.2 s.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _tree_rss(pid: int) -> int:
    """RSS in bytes of pid and its descendants (/proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--engine", default="duckdb", choices=["duckdb", "spark"])
    ap.add_argument("--spark-master", default="local[2]")
    ap.add_argument("--job", default="rewrites", choices=["rewrites", "detect", "learned"])
    ap.add_argument("--sample-sessions", type=int, default=2000)
    ap.add_argument("--min-support", type=int, default=3)
    args = ap.parse_args()

    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(os.getpid()))
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    from assistant.learning import engines
    from assistant.learning.markov import MarkovConfig, solve
    from assistant.learning.mining import DETECT_SQL, LP_SCHEMA, detect_partition, mine

    t_start = time.perf_counter()
    eng = engines.create(args.engine, master=args.spark_master)
    t_engine = time.perf_counter() - t_start
    out: dict = {"engine": args.engine, "job": args.job, "export": args.export, "engine_start_s": round(t_engine, 2)}
    if args.engine == "spark":
        out["spark_master"] = args.spark_master
        out["partitions"] = eng.partitions
    t0 = time.perf_counter()
    if args.job == "rewrites":
        m = mine(args.export, engine=eng)
        t_mine = time.perf_counter() - t0
        table, st = solve(m, MarkovConfig(min_support=args.min_support))
        out.update(
            turns=m.stats["turns"],
            linked=m.stats["linked_turns"],
            edges=m.stats["edges"],
            pairs=m.stats["pairs"],
            rewrites=len(table),
            mine_s=round(t_mine, 2),
            solve_s=st["seconds"],
            largest_cluster=st["largest_cluster"],
        )
    else:
        import functools

        from assistant.learning.jobs import rephrase_detector

        det = rephrase_detector("learned")
        eng.load_export(args.export)
        if args.job == "detect":
            eng.create(
                "sample",
                f"SELECT session_id FROM (SELECT DISTINCT session_id FROM src) ORDER BY session_id "
                f"LIMIT {args.sample_sessions}",
                cache=True,
            )
            sql = DETECT_SQL + " WHERE session_id IN (SELECT session_id FROM sample)"
            (turns,) = eng.rows(f"SELECT count(*) FROM ({sql})")[0]
            t0 = time.perf_counter()
            eng.map_partitions(
                "lp",
                sql,
                functools.partial(detect_partition, det),
                LP_SCHEMA,
                "session_id",
                ["session_id", "turn_index"],
            )
            (pairs,) = eng.rows("SELECT count(*) FROM lp")[0]
            dt = time.perf_counter() - t0
            out.update(
                sessions=args.sample_sessions,
                turns=int(turns),
                pairs=int(pairs),
                detect_s=round(dt, 2),
                sessions_per_s=round(args.sample_sessions / dt, 1),
            )
        else:
            m = mine(args.export, engine=eng, detector=det)
            table, st = solve(m, MarkovConfig(min_support=args.min_support))
            out.update(
                turns=m.stats["turns"],
                pairs=m.stats["detected_pairs"],
                detect_s=m.stats["detect_seconds"],
                rewrites=len(table),
            )
    out["job_s"] = round(time.perf_counter() - t0, 2)
    eng.close()
    stop.set()
    out["peak_rss_mb"] = round(max(peak[0], _tree_rss(os.getpid())) / 2**20)
    out["cpus"] = os.cpu_count()
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
