"""`assistant say "TEXT"`: typed instead of spoken; the pipeline from NLU on."""

from __future__ import annotations

import argparse
from pathlib import Path

from assistant.cli.common import UsageError, add_pipeline_options, make_runner, print_turn


def register(sub) -> None:
    p = sub.add_parser("say", help="run typed text through the pipeline from NLU on")
    p.add_argument("text", nargs="+", help="what you would have said")
    p.add_argument("--out", type=Path, default=Path("out"), help="where response audio is written (default: ./out)")
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = " ".join(args.text).strip()
    if not any(ch.isalnum() for ch in text):
        raise UsageError(
            f"there is nothing to say in {' '.join(args.text)!r}: give the words, "
            'e.g. assistant say "turn on the kitchen light"'
        )
    pipeline = make_runner(args, out_dir=args.out, load_audio_stages=False)
    try:
        rec = pipeline.run_text(text)
        print_turn(rec, args.json)
    finally:
        pipeline.close()
    return 0
