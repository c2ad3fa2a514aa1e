"""`assistant traces list|show`: what happened in a turn, stage by stage."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from assistant.config import default_data_dir, load_settings, DEFAULT_PIPELINE
from assistant.errors import AssistantError
from assistant.trace.store import TraceStore


def register(sub) -> None:
    p = sub.add_parser("traces", help="inspect recorded turns")
    tsub = p.add_subparsers(dest="traces_cmd", metavar="ACTION")
    for name, helptext in (("list", "recent turns, newest first"), ("show", "one turn, stage by stage")):
        q = tsub.add_parser(name, help=helptext)
        q.add_argument("--data-dir", type=Path, help="where traces.db lives")
        q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
        q.add_argument("--json", action="store_true")
        if name == "list":
            q.add_argument("-n", "--limit", type=int, default=20)
            q.add_argument("--session", help="only this session")
            q.set_defaults(func=run_list)
        else:
            q.add_argument("turn_id", help="a turn id, or a unique prefix of one")
            q.set_defaults(func=run_show)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _open(args: argparse.Namespace) -> TraceStore:
    settings = load_settings(args.config)
    data_dir = args.data_dir or default_data_dir()
    db = Path(settings.traces.db)
    path = db if db.is_absolute() else data_dir / db
    if not path.exists():
        raise AssistantError("no-traces", f"No trace store at {path} yet: run `assistant replay` or `assistant say` first.")
    return TraceStore(path)


def run_list(args: argparse.Namespace) -> int:
    store = _open(args)
    rows = store.list_turns(args.limit, args.session)
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    table = Table(title=f"{len(rows)} most recent turns ({store.count_turns()} stored)")
    for col in ("turn", "session", "#", "time", "transcript", "intent", "response", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["turn_id"][:12], r["session_id"][:8], str(r["seq"]),
                      datetime.fromtimestamp(r["started_at"]).strftime("%m-%d %H:%M:%S"), r["transcript"] or "",
                      f"{r['intent'] or ''} {r['intent_confidence'] or 0:.2f}" if r["intent"] else "",
                      r["response_text"] or "", r["error_code"] or "")
    Console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = _open(args)
    turn_id = store.find_turn_id(args.turn_id)
    turn = store.get_turn(turn_id) if turn_id else None
    if turn is None:
        raise AssistantError("turn-not-found", f"No single turn matches {args.turn_id!r}; see `assistant traces list`.")
    if args.json:
        print(json.dumps(turn, ensure_ascii=False, indent=2, default=str))
        return 0
    rec = turn["record"]
    console = Console()
    console.print(f"[bold]turn {turn['turn_id']}[/] session {turn['session_id']} #{turn['seq']}  "
                  f"{datetime.fromtimestamp(turn['started_at']).isoformat(timespec='seconds')}")
    console.print(f"source {json.dumps(turn['source'])}   device {turn['context'].get('device_id')}  user {turn['context'].get('user_id')}")
    if rec.get("wake", {}).get("detected"):
        console.print(f"wake   {rec['wake']['model']} score {rec['wake']['score']} at {rec['wake'].get('offset_seconds')} s")
    table = Table()
    for col in ("stage", "backend", "ms", "input", "output", "conf", "error"):
        table.add_column(col, overflow="fold")
    for s in turn["spans"]:
        table.add_row(s["stage"], f"{s['backend']}\n{s['version'] or ''}", f"{s['end_ms'] - s['start_ms']:.1f}",
                      _short(s["input"]), _short(s["output"]),
                      f"{s['confidence']:.2f}" if s["confidence"] is not None else "", s["error_code"] or "")
    console.print(table)
    if rec.get("error"):
        console.print(f"[red]error [{rec['error']['code']}][/] {rec['error']['message']}")
    for ev in turn["events"]:
        console.print(f"event  {ev['type']} {json.dumps(ev['data'])}")
    lat = rec.get("latency_ms", {})
    console.print(f"end of speech -> first response audio: {lat.get('end_to_end')} ms (endpoint wait {lat.get('endpoint_wait')} ms)")
    return 0


def _short(value, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"
