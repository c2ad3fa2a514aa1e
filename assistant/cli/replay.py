"""`assistant replay FILE...`: recorded audio through the same pipeline as the microphone."""

from __future__ import annotations

import argparse
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

from assistant.apps.replay import replay_file
from assistant.audio import probe
from assistant.errors import AssistantError

from assistant.cli.common import add_pipeline_options, eprint, make_runner, print_turn


def register(sub) -> None:
    p = sub.add_parser("replay", help="run recorded audio files (WAV/FLAC/MP3, any rate) through the pipeline")
    p.add_argument("files", nargs="+", type=Path, help="audio files; each is treated as a microphone stream")
    p.add_argument("--no-wake", action="store_true", help="every speech segment is a request (no wake word needed)")
    p.add_argument("--out", type=Path, default=Path("out"), help="where response audio is written (default: ./out)")
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pipeline = make_runner(args, out_dir=args.out)
    failed_files = 0
    clock = datetime.now()  # files play one after another: each starts where the previous one ended
    try:
        for path in args.files:
            turns = 0
            start = clock
            with contextlib.suppress(AssistantError):
                clock += timedelta(seconds=probe(path).seconds or 0.0)
            for rec in replay_file(pipeline, path, no_wake=args.no_wake, start=start):
                turns += 1
                print_turn(rec, args.json)
                if rec.get("error") and rec["error"]["code"].startswith("audio-"):
                    failed_files += 1
            if turns == 0:
                what = "speech" if args.no_wake else "wake word (try --no-wake if the recording has none)"
                eprint(f"{path}: no {what} found.")
    finally:
        pipeline.close()
    return 1 if failed_files == len(args.files) else 0
