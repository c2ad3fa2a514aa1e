"""`assistant replay FILE...`: recorded audio through the same pipeline as the microphone."""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import datetime, timedelta
from pathlib import Path

from assistant.apps.replay import replay_file
from assistant.audio import check_decodable, probe
from assistant.cli.common import add_pipeline_options, eprint, make_runner, print_turn
from assistant.errors import AssistantError, AudioInputError


def register(sub) -> None:
    p = sub.add_parser("replay", help="run recorded audio files (WAV/FLAC/MP3, any rate) through the pipeline")
    p.add_argument("files", nargs="+", type=Path, help="audio files; each is treated as a microphone stream")
    p.add_argument("--no-wake", action="store_true", help="every speech segment is a request (no wake word needed)")
    p.add_argument("--out", type=Path, default=Path("out"), help="where response audio is written (default: ./out)")
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A file that cannot be decoded is reported (stderr; with --json also one JSON line with `error` and no
    `turn_id`) and skipped: nobody spoke, so it is not a turn and is not stored in the traces (the library's
    `replay_file` still traces it, with its error code, for callers that want every input on record)."""
    failed_files = 0
    playable = []
    for path in args.files:
        try:
            check_decodable(path)
            playable.append(path)
        except AudioInputError as err:
            failed_files += 1
            eprint(f"error [{err.code}]: {err.message}")
            if args.json:
                print(
                    json.dumps(
                        {
                            "turn_id": None,
                            "source": {"kind": "file", "file": str(path)},
                            "error": err.to_dict() | {"stage": "audio"},
                        }
                    ),
                    flush=True,
                )
    if not playable:
        return 1
    pipeline = make_runner(args, out_dir=args.out)
    clock = datetime.now()  # files play one after another: each starts where the previous one ended
    try:
        for path in playable:
            turns, unreadable = 0, False
            start = clock
            with contextlib.suppress(AssistantError):
                clock += timedelta(seconds=probe(path).seconds or 0.0)
            for rec in replay_file(pipeline, path, no_wake=args.no_wake, start=start):
                if (rec.get("error") or {}).get("code", "").startswith("audio-") and rec.get("transcript") is None:
                    failed_files += 1  # became unreadable since the check: the library traced it; report it
                    unreadable = True
                    eprint(f"error [{rec['error']['code']}]: {rec['error']['message']}")
                    continue
                turns += 1
                print_turn(rec, args.json)
            if turns == 0 and not unreadable:
                what = "speech" if args.no_wake else "wake word (try --no-wake if the recording has none)"
                eprint(f"{path}: no {what} found.")
    finally:
        pipeline.close()
    return 1 if failed_files == len(args.files) else 0
