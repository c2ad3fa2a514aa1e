"""`assistant report defects [--since 7d] [--json]`: defect rate by stage, intent, device and day, and the top failing
requests per stage, from the goal labels (`assistant learn labels`). The report: assistant/learning/labels/report.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.cli.common import engine_args
from assistant.config import DEFAULT_PIPELINE
from assistant.errors import AssistantError


def register(sub) -> None:
    p = sub.add_parser("report", help="reports from the labelled traces")
    rsub = p.add_subparsers(dest="report_cmd", metavar="REPORT")
    q = rsub.add_parser("defects", help="defect rate by stage, intent, device and day; top failing requests per stage")
    q.add_argument("--since", help="only turns from this date: 2025-01-31, 2025-01-31T08:00, or 7d (default: all)")
    q.add_argument("--top", type=int, default=5, help="failing requests listed per stage (default 5)")
    q.add_argument("--db", type=Path, help="the trace store (default: the configured one in --data-dir)")
    q.add_argument("--data-dir", type=Path, help="where traces.db lives")
    q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
    q.add_argument("--json", action="store_true")
    q.add_argument(
        "--export", help="aggregate this labelled export (file, folder or URI) on --engine instead of reading the store"
    )
    engine_args(q)
    q.set_defaults(func=run_defects)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def run_defects(args: argparse.Namespace) -> int:
    from assistant.learning.labels.commands import store_path
    from assistant.learning.labels.report import defect_report, to_text
    from assistant.trace.export import parse_since
    from assistant.trace.store import TraceStore

    if args.export:  # the same report as an engine job over an export (DuckDB or Spark; docs/scale.md)
        if args.since:
            raise AssistantError("bad-option", "--since applies to the store; export with --since instead.")
        from assistant.learning.engines import create
        from assistant.learning.labels.report_job import defect_report_job

        eng = create(args.engine, master=args.spark_master)
        try:
            res = {"since": None, **defect_report_job(args.export, eng, args.top)}
        finally:
            eng.close()
        print(json.dumps(res, indent=1) if args.json else to_text(res))
        return 0
    path = store_path(args)
    if not path.exists():
        raise AssistantError("no-traces", f"No trace store at {path}: run `assistant replay`, `say` or `listen` first.")
    store = TraceStore(path)
    try:
        res = defect_report(store, parse_since(args.since) if args.since else None, args.top)
    finally:
        store.close()
    print(json.dumps(res, indent=1) if args.json else to_text(res))
    return 0
