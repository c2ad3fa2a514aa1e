"""`assistant traces list|show|label|export|prune`: what happened in a turn, stage by stage; defect labels; export
for training; retention."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings
from assistant.errors import AssistantError
from assistant.trace.store import TraceStore


def register(sub) -> None:
    p = sub.add_parser("traces", help="inspect recorded turns")
    tsub = p.add_subparsers(dest="traces_cmd", metavar="ACTION")
    for name, helptext in (
        ("list", "recent turns, newest first"),
        ("show", "one turn, stage by stage"),
        ("label", "derive feedback signals and a defect label for every turn"),
        ("export", "write one row per turn (Parquet or JSON Lines) for training"),
        ("prune", "delete turns and their audio older than N days"),
    ):
        q = tsub.add_parser(name, help=helptext)
        q.add_argument("--data-dir", type=Path, help="where traces.db lives")
        q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
        if name in ("list", "show", "label", "prune"):
            q.add_argument("--json", action="store_true")
        if name == "list":
            q.add_argument("-n", "--limit", type=int, default=20)
            q.add_argument("--session", help="only this session")
            q.add_argument(
                "--label",
                choices=("defect", "ok", "unknown"),
                help="only turns with this label (run `assistant traces label` first)",
            )
            q.set_defaults(func=run_list)
        elif name == "show":
            q.add_argument("turn_id", help="a turn id, or a unique prefix of one")
            q.set_defaults(func=run_show)
        elif name == "label":
            q.add_argument(
                "--gap-seconds",
                type=float,
                default=30.0,
                help="a later turn within this many seconds can be a rephrase / repeat (default 30)",
            )
            q.set_defaults(func=run_label)
        elif name == "export":
            q.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
            q.add_argument("--out", type=Path, required=True, help="output directory (created)")
            q.add_argument("--since", help="only turns from this date: 2025-01-31, 2025-01-31T08:00, or 7d")
            q.add_argument("--with-audio", action="store_true", help="copy audio into OUT/audio/, referenced by path")
            q.add_argument("--no-label", action="store_true", help="export the stored labels without recomputing them")
            q.add_argument("--gap-seconds", type=float, default=30.0, help="for the labels (see `traces label`)")
            q.set_defaults(func=run_export)
        else:
            q.add_argument(
                "--older-than",
                type=float,
                required=True,
                metavar="DAYS",
                help="delete turns (spans, events, labels, audio files) that started more than DAYS ago",
            )
            q.set_defaults(func=run_prune)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _open(args: argparse.Namespace) -> TraceStore:
    settings = load_settings(args.config)
    data_dir = args.data_dir or default_data_dir()
    db = Path(settings.traces.db)
    path = db if db.is_absolute() else data_dir / db
    if not path.exists():
        raise AssistantError(
            "no-traces", f"No trace store at {path} yet: run `assistant replay` or `assistant say` first."
        )
    return TraceStore(path)


def run_list(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.label:
        rows = store.list_turns_labelled(args.label, args.limit, args.session)
    else:
        rows = store.list_turns(args.limit, args.session)
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    table = Table(title=f"{len(rows)} most recent turns ({store.count_turns()} stored)", box=box.SIMPLE, pad_edge=False)
    cols = ["turn", "time", "transcript", "intent", "response", "error"]
    if args.label:
        cols.append("signals")
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = [
            r["turn_id"][:8],
            datetime.fromtimestamp(r["started_at"]).strftime("%H:%M:%S"),
            r["transcript"] or "",
            f"{r['intent'] or ''} ({r['intent_confidence'] or 0:.2f})" if r["intent"] else "",
            r["response_text"] or "",
            r["error_code"] or "",
        ]
        if args.label:
            cells.append(", ".join(s["type"] for s in r["signals"]))
        table.add_row(*cells)
    Console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = _open(args)
    turn_id = store.find_turn_id(args.turn_id)
    turn = store.get_turn(turn_id) if turn_id else None
    if turn is None:
        raise AssistantError("turn-not-found", f"No single turn matches {args.turn_id!r}; see `assistant traces list`.")
    turn["label"] = store.get_label(turn["turn_id"])
    if args.json:
        print(json.dumps(turn, ensure_ascii=False, indent=2, default=str))
        return 0
    rec = turn["record"]
    console = Console()
    console.print(
        f"[bold]turn {turn['turn_id']}[/] session {turn['session_id']} #{turn['seq']}  "
        f"{datetime.fromtimestamp(turn['started_at']).isoformat(timespec='seconds')}"
    )
    console.print(
        f"source {json.dumps(turn['source'])}   device {turn['context'].get('device_id')}  "
        f"user {turn['context'].get('user_id')}"
    )
    wake = rec.get("wake") or {}
    if wake.get("detected"):
        at = f" at {wake['offset_seconds']} s" if wake.get("offset_seconds") is not None else ""  # live: no offset
        console.print(f"wake   {wake.get('model')} score {wake.get('score')}{at}", highlight=False)
    # One block per stage (not a table): inputs and outputs stay readable in an 80-column terminal.
    for s in turn["spans"]:
        conf = f"  conf {s['confidence']:.2f}" if s["confidence"] is not None else ""
        err = f"  [red]error {s['error_code']}[/]" if s["error_code"] else ""
        console.print(
            f"[bold cyan]{s['stage']:8s}[/] {s['backend']} {s['version'] or ''}  "
            f"{s['end_ms'] - s['start_ms']:.1f} ms{conf}{err}",
            highlight=False,
        )
        console.print(f"  in   {_short(s['input'])}", highlight=False, markup=False)
        console.print(f"  out  {_short(s['output'])}", highlight=False, markup=False)
    if rec.get("error"):
        console.print(f"[red]error [{rec['error']['code']}][/] {rec['error']['message']}")
    for ev in turn["events"]:
        console.print(f"event  {ev['type']} {json.dumps(ev['data'])}")
    lat = rec.get("latency_ms", {})
    console.print(
        f"end of speech -> first response audio: {lat.get('end_to_end')} ms "
        f"(endpoint wait {lat.get('endpoint_wait')} ms)"
    )
    label = turn["label"]
    if label is None:
        console.print("label  (none yet: run `assistant traces label`)")
    else:
        colour = {"defect": "red", "ok": "green"}.get(label["label"], "yellow")
        console.print(
            f"label  [{colour}]{label['label']}[/] confidence {label['confidence']:.2f} ({label['labeler_version']})"
        )
        for sig in label["signals"]:
            by = f" by turn {sig['by_turn'][:12]}" if sig.get("by_turn") else ""
            console.print(
                f"  signal {sig['type']} ({sig['polarity']}, {sig['source']}, weight {sig['weight']}){by} "
                f"{json.dumps(sig.get('detail') or {}, ensure_ascii=False)}"
            )
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def run_label(args: argparse.Namespace) -> int:
    from assistant.learning.signals import label_store

    store = _open(args)
    counts = label_store(store, gap_seconds=args.gap_seconds)
    if args.json:
        print(json.dumps(counts))
        return 0
    labels = counts["labels"]
    print(
        f"labelled {counts['turns']} turns: {labels.get('defect', 0)} defect, {labels.get('ok', 0)} ok, "
        f"{labels.get('unknown', 0)} unknown ({counts['labeler_version']})"
    )
    if counts["signals"]:
        print("signals: " + ", ".join(f"{k} {v}" for k, v in counts["signals"].items()))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from assistant.learning.signals import label_store
    from assistant.trace.export import export, parse_since

    store = _open(args)
    since = parse_since(args.since) if args.since else None
    if not args.no_label:
        label_store(store, gap_seconds=args.gap_seconds)
    manifest = export(store, args.out, args.format, data_dir=_data_dir(args), since=since, with_audio=args.with_audio)
    print(
        f"exported {manifest['rows']} turns to {args.out / manifest['file']} in {manifest['seconds']} s "
        f"(schema v{manifest['export_schema_version']}"
        + (f", {manifest['audio_files']} audio files" if args.with_audio else "")
        + ")"
    )
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from assistant.trace.privacy import prune

    if args.older_than < 0:
        raise AssistantError("bad-days", "--older-than must be 0 or more days.")
    store = _open(args)
    result = prune(store, args.older_than)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"deleted {result['turns']} turns and {result['audio_files']} audio files older than "
            f"{args.older_than:g} days"
        )
    return 0


def _short(value, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"
