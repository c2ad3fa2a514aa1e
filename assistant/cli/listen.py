"""`assistant listen`: live on the microphone and speaker (wake word, barge-in, follow-ups), until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from assistant.cli.common import add_pipeline_options, make_runner, print_turn


def register(sub) -> None:
    p = sub.add_parser("listen", help="listen on the microphone and answer through the speaker (Ctrl-C stops)")
    p.add_argument("--out", type=Path, help="also write each response as a WAV here")
    p.add_argument("--max-turns", type=int, help="stop after this many turns")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--no-earcons", action="store_true", help="no wake/error tones (overrides audio.earcons)")
    p.add_argument("--no-status", action="store_true", help="no status line (answers are still printed)")
    p.add_argument(
        "--no-self-check",
        action="store_true",
        help="start without running each model on its fixed input first (see `assistant models`)",
    )
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.apps.live import LiveAssistant, StatusLine

    pipeline = make_runner(args, out_dir=args.out)
    if not args.no_self_check:
        try:
            startup_self_check(pipeline)
        except BaseException:
            pipeline.close()
            raise
    if hasattr(pipeline.resolver, "warm"):
        pipeline.resolver.warm()  # load the places catalog now, not during the first weather question
    stop = threading.Event()
    # systemd stops a service with SIGTERM: end cleanly like Ctrl-C (the current turn's trace is still written).
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    status = StatusLine(enabled=not args.no_status)
    opts = pipeline.settings.audio.model_copy(update={"earcons": False} if args.no_earcons else {})

    def on_turn(rec):
        if args.json:
            print_turn(rec, True)
        elif args.no_status:
            print(_summary(rec), flush=True)  # no status line, but every answer is still printed (stdout)
        else:
            status.print(_summary(rec))

    live = LiveAssistant(
        pipeline,
        opts,
        stop_event=stop,
        status=status,
        on_turn=on_turn,
        max_turns=args.max_turns,
        duration=args.duration,
    )
    try:
        live.run()
    except KeyboardInterrupt:
        stop.set()
    finally:
        pipeline.close()
    return 0


def startup_self_check(pipeline) -> None:
    """Each model on its fixed input before serving; a wrong output stops start-up with the reason."""
    from assistant.models_check import require_ok, runner_backends, self_check

    require_ok(self_check(runner_backends(pipeline)))


def _summary(rec) -> str:
    parts = [f'heard "{rec.get("transcript") or ""}"']
    if rec.get("intent"):
        parts.append(f"{rec['intent']} ({rec.get('intent_confidence') or 0:.2f})")
    act = rec.get("action")
    if act:
        parts.append(f"{act['name']}" + (f" -> {act['target']}" if act.get("target") else "") + f" [{act['status']}]")
    if rec.get("response_text"):
        parts.append(f'says "{rec["response_text"]}"')
    if rec.get("error"):
        parts.append(f"error [{rec['error']['code']}]")
    for ev in rec.get("events") or []:
        if ev.get("type") == "barge-in":
            parts.append(f"interrupted at {ev['offset_ms'] / 1000:.1f} s")
        elif ev.get("type") == "trace-not-saved":
            parts.append("(not saved)")
    lat = rec.get("latency_ms", {})
    if "end_to_end" in lat:
        parts.append(f"{lat['end_to_end']:.0f} ms to first audio")
    return "  ".join(parts)
