"""`assistant bench-live`: live-mode figures on a virtual microphone/speaker (private PulseAudio, no sound card).

Figures: idle CPU while listening to silence (% of one core), wake-to-listening latency (end of the spoken wake
word -> listening state), barge-in reaction (end of the spoken wake word -> playback stopped), and false barge-ins
over N spoken responses with the speaker looped back into the microphone (the room's echo, no platform AEC).
Not a timed test: run it on the target machine (a Pi) and keep the JSON. Needs pulseaudio, pulseaudio-utils and
libasound2-plugins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.cli.common import add_pipeline_options


def register(sub) -> None:
    p = sub.add_parser("bench-live", help="measure live-mode CPU, wake latency, barge-in on a virtual sound card")
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--wakes", type=int, default=5, help="spoken wake word + command runs")
    p.add_argument("--barge-ins", type=int, default=5)
    p.add_argument("--responses", type=int, default=100, help="spoken responses for the false barge-in count")
    p.add_argument("--echo-gain", type=float, default=0.5, help="speaker -> microphone amplitude (room echo)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.bench.live import measure_live
    from assistant.config import load_settings

    figures = measure_live(
        load_settings(args.config, args.profile),
        args.home,
        args.data_dir,
        args.idle_seconds,
        args.wakes,
        args.barge_ins,
        args.responses,
        args.echo_gain,
        progress=lambda msg: print(msg, flush=True),
    )
    print(json.dumps(figures, indent=1))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
    return 0
