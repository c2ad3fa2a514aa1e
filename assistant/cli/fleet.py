"""`assistant fleet`: a synthetic fleet's trace export (millions of sessions) from simulator runs' exports, to measure
the learning jobs at scale (assistant/simulate/fleet.py, docs/scale.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "fleet", help="write a synthetic fleet's export (day-partitioned Parquet) from simulator exports"
    )
    p.add_argument("--from", dest="exports", type=Path, nargs="+", required=True, help="simulator runs' exports")
    p.add_argument("--sessions", type=int, required=True, help="number of sessions, e.g. 1000000")
    p.add_argument("--days", type=int, default=7, help="days the sessions are spread over (default 7)")
    p.add_argument("--users", type=int, help="fleet users (default sessions / 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder (turns/day=.../*.parquet, manifest.json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.simulate.fleet import generate

    m = generate(args.exports, args.out, args.sessions, args.days, args.users, args.seed)
    if args.json:
        print(json.dumps(m))
    else:
        print(
            f"fleet: {m['sessions']} sessions, {m['rows']} turns, {m['users']} users over {m['days']} days -> "
            f"{args.out}/turns ({m['files']} files) in {m['seconds']} s\n"
            f"pool {m['pool']}\nfleet (first file) {m['fleet_first_file']}"
        )
    return 0
