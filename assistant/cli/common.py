"""Options and output shared by the commands that run the pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.config import DEFAULT_HOME, DEFAULT_PIPELINE, default_data_dir, load_settings
from assistant.errors import AssistantError

GLOBAL_OPTIONS: dict[str, int] = {"--config": 1, "--profile": 1, "--home": 1, "--data-dir": 1, "--out": 1, "--json": 0}
"""Options a user may give before the command (`assistant --config X say ...`), with how many values each takes."""


class UsageError(AssistantError):
    """The command line itself is wrong (an empty text, ...): exit 2 with a usage message, like argparse."""

    def __init__(self, message: str) -> None:
        super().__init__("usage", message)


def hoist_global_options(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Move the GLOBAL_OPTIONS given before the command to just after it (`traces list` is a two-word command).

    argparse only gives an option to the (sub)parser that defines it, so `assistant --config X say hi` would fail
    with "invalid choice"; after this it is `assistant say --config X hi`. A command that does not take the option
    still rejects it with argparse's "unrecognized arguments".
    """
    moved: list[str] = []
    before: list[str] = []
    i = 0
    while i < len(argv):
        name, eq, _ = argv[i].partition("=")
        if name in GLOBAL_OPTIONS:
            take = 1 if (eq or GLOBAL_OPTIONS[name] == 0) else 1 + GLOBAL_OPTIONS[name]
            moved += argv[i : i + take]
            i += take
        elif argv[i].startswith("-"):
            before.append(argv[i])  # -v, -h: the top-level parser's own
            i += 1
        else:
            break
    if not moved:
        return argv
    end, current = i, parser
    while end < len(argv):
        choices = _subcommands(current)
        if argv[end] not in choices:
            break
        current = choices[argv[end]]
        end += 1
    return before + argv[i:end] + moved + argv[end:]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_PIPELINE, help="pipeline.yaml (default: the repo's)")
    p.add_argument("--profile", type=Path, help="hardware/NAME.yaml whose values override pipeline.yaml")
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="home YAML: rooms, devices, satellites")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="traces and skill state (default: $ASSISTANT_DATA_DIR or ~/.local/share/voice-assistant)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per turn (JSON Lines)")


def make_runner(args: argparse.Namespace, out_dir: Path | None = None, load_audio_stages: bool = True):
    from assistant.core.runner import Runner

    settings = load_settings(args.config, args.profile)
    return Runner(
        settings,
        args.home,
        data_dir=args.data_dir or default_data_dir(),
        out_dir=out_dir,
        load_audio_stages=load_audio_stages,
    )


def print_turn(rec: dict[str, Any], as_json: bool) -> None:
    if as_json:
        data = rec.to_dict() if hasattr(rec, "to_dict") else dict(rec)
        print(json.dumps(data, ensure_ascii=False, default=str), flush=True)
        return
    src = rec.get("source", {})
    where = (
        f"{src.get('file')} @ {src.get('offset_seconds', 0):.1f}s" if src.get("kind") == "file" else src.get("kind", "")
    )
    wake = rec.get("wake") or {}
    head = f"[{where}]" + (f" wake {wake['model']} ({wake['score']:.2f})" if wake.get("detected") else "")
    lines = [head, f"  turn      {rec['turn_id'][:12]}  session {rec['session_id'][:12]}"]
    if rec.get("transcript") is not None:
        conf = f"  (asr {rec['asr_confidence']:.2f})" if rec.get("asr_confidence") is not None else ""
        lines.append(f'  heard     "{rec["transcript"]}"{conf}')
    if rec.get("intent"):
        slots = ", ".join(f"{k}={v}" for k, v in rec.get("slots", {}).items())
        lines.append(
            f"  intent    {rec['intent']} ({rec['intent_confidence']:.2f})" + (f"  slots: {slots}" if slots else "")
        )
    for e in rec.get("entities", []):
        lines.append(f"  entity    {e['slot']}={e['value']!r} -> {e.get('entity_id') or '?'} ({e.get('score', 0):.2f})")
    act = rec.get("action")
    if act:
        target = f" -> {act['target']}" if act.get("target") else ""
        lines.append(f"  action    {act['name']}{target} [{act['status']}]")
    if rec.get("response_text"):
        audio = f"  -> {rec['response_audio']}" if rec.get("response_audio") else ""
        lines.append(f'  says      "{rec["response_text"]}"{audio}')
    if rec.get("error"):
        lines.append(f"  error     [{rec['error']['code']}] {rec['error']['message']}")
    used = [a for a in (rec.get("taught") or {}).get("applied") or [] if a.get("how") != "defined"]
    if used:
        lines.append("  taught    " + ", ".join(f"{a['phrase']} ({a['kind']}, {a['how']})" for a in used))
    for ev in rec.get("events") or []:
        if ev.get("type") == "trace-not-saved":
            lines.append(f"  trace     not saved [{ev.get('code')}]")
    lat = rec.get("latency_ms", {})
    shown = ("asr", "nlu", "resolve", "respond", "routine", "tts")  # routine: a taught routine's steps (issue 15)
    stages = ", ".join(f"{k} {v:.0f}" for k, v in lat.items() if k in shown)
    if stages:  # a turn that failed before any stage ran has no latency worth a line
        lines.append(f"  latency   {stages} ms; end of speech -> first audio {lat.get('end_to_end', 0):.0f} ms")
    print("\n".join(lines), flush=True)


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def engine_args(q: Any) -> None:
    """--engine / --spark-master: where a learning job runs (assistant/learning/engines/)."""
    q.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="where the job runs: embedded DuckDB (default) or Apache Spark (the spark extra, Java 17)",
    )
    q.add_argument(
        "--spark-master", help="Spark master URL, e.g. spark://host:7077 (default: spark-submit's, else local[*])"
    )
