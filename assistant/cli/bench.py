"""`assistant bench`: latency per stage and end to end, real-time factors, throughput and memory on this machine.

A benchmark, not a test: it reports what it measured and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from assistant.bench.replay import measure
from assistant.cli.common import add_pipeline_options
from assistant.config import load_settings


def register(sub) -> None:
    p = sub.add_parser("bench", help="replay fixed clips and report latency, real-time factors and memory")
    p.add_argument("files", nargs="*", type=Path, help="recordings with wake words (default: the bundled demo)")
    p.add_argument("--rounds", type=int, default=2, help="replay the set this many times (default 2)")
    p.add_argument(
        "--catalog-entries",
        type=int,
        default=100_000,
        help="size of the catalog for the entity lookup benchmark (0 skips it; default 100000)",
    )
    p.add_argument(
        "--endpointing",
        action="store_true",
        help="instead: silence-only vs semantic endpointing side by side (waits, false cut-offs)",
    )
    p.add_argument("--pause", type=float, default=0.24, help="speculative pause for --endpointing (seconds)")
    p.add_argument(
        "--speakers",
        action="store_true",
        help="instead: speaker identification on real and synthetic voices (accuracy, false accepts, EER, cost)",
    )
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run_endpointing(args: argparse.Namespace) -> int:
    import tempfile

    from assistant.bench.endpointing import compare
    from assistant.config import shared_data_dir
    from assistant.core.runner import Runner

    settings = load_settings(args.config, args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(settings, args.home, data_dir=Path(tmp))
        res = compare(
            runner,
            shared_data_dir() / "speech",
            pause_seconds=args.pause,
            progress=None if args.json else lambda m: print(m, flush=True),
        )
        runner.close()
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    b, s = res["silence_only"], res["semantic"]
    print(f"\n{res['sources']} sources; speculative pause {res['pause_seconds']} s")
    print(
        f"silence only: {b['requests']} requests, endpoint wait median {b['endpoint_wait_ms_median']} ms "
        f"(p90 {b['endpoint_wait_ms_p90']})"
    )
    print(
        f"semantic:     {s['requests']} requests, {s['ended_at_pause']} ended at a pause, endpoint wait median "
        f"{s['endpoint_wait_ms_median']} ms (p90 {s['endpoint_wait_ms_p90']}); transcript ready median "
        f"{s['transcript_ready_ms_median']} ms (p90 {s['transcript_ready_ms_p90']}); false cut-offs "
        f"{s['false_cutoffs']} ({s['false_cutoff_rate']:.1%})"
    )
    for c in res["cutoffs"]:
        print(
            f"  cut off: {c['source']}: heard {c['heard']!r}, ended {c['ended_s']} s, speech went on to "
            f"{c['speech_went_on_to_s']} s"
        )
    return 0


def run_speakers(args: argparse.Namespace) -> int:
    from assistant.bench.speakers import pipeline_latency, run_all
    from assistant.config import shared_data_dir

    settings = load_settings(args.config, args.profile)
    result = run_all(shared_data_dir() / "speech", threshold=settings.speaker.threshold)
    result["pipeline_latency"] = pipeline_latency(settings, args.home)
    print(json.dumps(result, indent=1))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.endpointing:
        return run_endpointing(args)
    if args.speakers:
        return run_speakers(args)
    settings = load_settings(args.config, args.profile)
    result = measure(settings, args.home, args.files, args.rounds, args.catalog_entries)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console()
    table = Table(
        title=f"latency over {result['turns']} turns ({result['rounds']} rounds of {len(result['files'])} files)"
    )
    for col in ("stage", "median ms", "p90 ms", "n"):
        table.add_column(col)
    for stage, v in result["stages"].items():
        table.add_row(stage, f"{v['median_ms']:.0f}", f"{v['p90_ms']:.0f}", str(v["n"]))
    console.print(table)
    console.print(
        f"end of speech -> first response audio: median {result['stages'].get('end_to_end', {}).get('median_ms')} ms "
        "(includes the endpointing silence the user waits for)"
    )
    console.print(f"ASR real-time factor {result['asr_rtf_median']}, TTS real-time factor {result['tts_rtf_median']}")
    console.print(
        f"replay: {result['replay_audio_seconds']} s of audio in {result['replay_wall_seconds']} s = "
        f"{result['replay_x_realtime']}x real time"
    )
    u = result["nlu_resolve_rerank_ms"]
    console.print(
        f"NLU + entity resolution + rerank per turn: median {u['total']['median_ms']} ms, "
        f"p95 {u['total']['p95_ms']} ms (NLU {u['nlu']['median_ms']}, resolve {u['resolve']['median_ms']}, "
        f"rerank {u['rerank']['median_ms']})"
    )
    if result["catalog_lookup"]:
        c = result["catalog_lookup"]
        console.print(
            f"catalog lookup at {c['rows']} entries: median {c['median_ms']} ms, "
            f"p95 {c['p95_ms']} ms, max {c['max_ms']} ms"
        )
    console.print(
        f"model load {result['load_seconds']} s {result['load_seconds_by_stage']}; "
        f"peak memory {result['peak_rss_mb']} MB; {result['cpu_count']} CPUs; "
        f"errors in {result['turns_with_error']} turns"
    )
    return 0
