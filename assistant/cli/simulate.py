"""`assistant simulate`: simulated households speak to the real pipeline; ground truth per turn; a summary report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.cli.common import eprint


def register(sub) -> None:
    p = sub.add_parser("simulate", help="simulated households talk to the real pipeline (ground truth + report)")
    p.add_argument("--households", type=int, default=2, help="number of households (default 2)")
    p.add_argument("--days", type=int, default=1, help="simulated days per household (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=Path("sim_out"), help="output folder: traces.db, sim_truth.jsonl, report"
    )
    p.add_argument("--max-turns", type=int, help="stop after this many turns")
    p.add_argument("--voices", default="piper,espeak", help="comma list of piper, espeak (default both)")
    p.add_argument(
        "--cache", type=Path, help="speech + ASR cache folder (default: DATA_DIR/sim_cache, kept between runs)"
    )
    p.add_argument("--feedback-rate", type=float, default=0.15, help="share of answers followed by 'Did I answer?'")
    p.add_argument("--false-wakes", type=float, default=0.3, help="expected false wakes per household and day")
    p.add_argument("--tts", action="store_true", help="also synthesize every answer (slow)")
    p.add_argument(
        "--identify-speakers",
        action="store_true",
        help="members enroll their voices and the speaker stage names who spoke (instead of assuming it)",
    )
    p.add_argument(
        "--own-voices", action="store_true", help="members who would share a synthetic voice get their own (warped)"
    )
    p.add_argument(
        "--cut-offs",
        type=float,
        default=0.05,
        help="share of requests said with a pause the endpointer ends them at (default 0.05; 0 = none)",
    )
    p.add_argument(
        "--no-audio", action="store_true", help="do not keep the requests' audio beside the traces (requests/*.flac)"
    )
    p.add_argument("--config", type=Path, help="pipeline.yaml (default: the repo's)")
    p.add_argument("--profile", type=Path, help="hardware/NAME.yaml whose values override pipeline.yaml")
    p.add_argument("--data-dir", type=Path, help="where the default cache lives (default: the assistant's data dir)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings
    from assistant.simulate.report import to_markdown
    from assistant.simulate.run import SimConfig, simulate

    voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    bad = [v for v in voices if v not in ("piper", "espeak")]
    if bad or not voices:
        eprint(f"--voices: unknown {bad or voices}; use piper, espeak or piper,espeak")
        return 2
    settings = load_settings(args.config or DEFAULT_PIPELINE, args.profile)
    cache = args.cache or (args.data_dir or default_data_dir()) / "sim_cache"
    cfg = SimConfig(
        households=args.households,
        days=args.days,
        seed=args.seed,
        max_turns=args.max_turns,
        voices=voices,
        feedback_rate=args.feedback_rate,
        false_wake_rate=args.false_wakes,
        tts=args.tts,
        identify_speakers=args.identify_speakers,
        own_voices=args.own_voices,
        keep_audio=not args.no_audio,
        cut_off_rate=args.cut_offs,
    )
    res = simulate(settings, args.out, cfg, cache_dir=cache, progress=None if args.json else eprint)
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    else:
        print(to_markdown(res["report"]))
        eprint(
            f"traces: {args.out / 'traces.db'}  truth: {args.out / 'sim_truth.jsonl'}  report: {args.out / 'report.md'}"
        )
    return 0
