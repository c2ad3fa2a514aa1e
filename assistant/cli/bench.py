"""`assistant bench`: latency per stage and end to end, real-time factors, throughput and memory on this machine.

A benchmark, not a test: it reports what it measured and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from assistant.apps.replay import replay_file
from assistant.cli.common import add_pipeline_options, make_runner
from assistant.config import REPO_ROOT

DEMO_DIR = REPO_ROOT / "assistant" / "data" / "demo"
_STAGES = ("asr", "nlu", "resolve", "respond", "tts", "tts_first_audio", "processing_to_first_audio", "end_to_end")


def register(sub) -> None:
    p = sub.add_parser("bench", help="replay fixed clips and report latency, real-time factors and memory")
    p.add_argument("files", nargs="*", type=Path, help="recordings with wake words (default: the bundled demo)")
    p.add_argument("--rounds", type=int, default=2, help="replay the set this many times (default 2)")
    p.add_argument("--catalog-entries", type=int, default=100_000,
                   help="size of the catalog for the entity lookup benchmark (0 skips it; default 100000)")
    add_pipeline_options(p)
    p.set_defaults(func=run)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    files = args.files or sorted(DEMO_DIR.glob("*.flac"))
    with tempfile.TemporaryDirectory() as tmp:
        args.data_dir = Path(tmp)
        t0 = time.perf_counter()
        pipeline = make_runner(args, out_dir=Path(tmp) / "out")
        load_s = time.perf_counter() - t0
        records: list[dict[str, Any]] = []
        audio_s = 0.0
        wall_s = 0.0
        from assistant.audio import probe

        for _ in range(args.rounds):
            for f in files:
                info = probe(f)
                audio_s += info.seconds or 0.0
                w0 = time.perf_counter()
                records.extend(replay_file(pipeline, f))
                wall_s += time.perf_counter() - w0
        tts_rtf = []
        asr_rtf = []
        for rec in records:
            turn = pipeline.store.get_turn(rec["turn_id"]) or {}
            for span in turn.get("spans", []):
                dur = (span["end_ms"] - span["start_ms"]) / 1000
                if span["stage"] == "tts" and span["output"] and span["output"].get("audio_seconds"):
                    tts_rtf.append(dur / span["output"]["audio_seconds"])
                if span["stage"] == "asr" and span["input"] and span["input"].get("audio_seconds"):
                    asr_rtf.append(dur / span["input"]["audio_seconds"])
        from assistant.understanding.rerank.context import bench_turn_latency

        understanding = bench_turn_latency(pipeline.nlu, pipeline.resolver, pipeline.reranker)
        pipeline.close()
    lookup = None
    if args.catalog_entries:
        from assistant.training.catalogs import bench_lookup

        lookup = bench_lookup(args.catalog_entries)
    stages = {}
    for stage in _STAGES:
        vals = [r["latency_ms"][stage] for r in records if stage in r.get("latency_ms", {})]
        if vals:
            stages[stage] = {"median_ms": round(statistics.median(vals), 1), "p90_ms": round(_pct(vals, 0.9), 1), "n": len(vals)}
    return {
        "files": [str(f) for f in files],
        "rounds": args.rounds,
        "turns": len(records),
        "turns_with_error": sum(1 for r in records if r.get("error")),
        "stages": stages,
        "asr_rtf_median": round(statistics.median(asr_rtf), 3) if asr_rtf else None,
        "tts_rtf_median": round(statistics.median(tts_rtf), 3) if tts_rtf else None,
        "replay_audio_seconds": round(audio_s, 1),
        "replay_wall_seconds": round(wall_s, 2),
        "replay_x_realtime": round(audio_s / wall_s, 2) if wall_s else None,
        "load_seconds": round(load_s, 2),
        "load_seconds_by_stage": pipeline.load_seconds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": __import__("os").cpu_count(),
        "nlu_resolve_rerank_ms": understanding,
        "catalog_lookup": lookup,
    }


def run(args: argparse.Namespace) -> int:
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console()
    table = Table(title=f"latency over {result['turns']} turns ({result['rounds']} rounds of {len(result['files'])} files)")
    for col in ("stage", "median ms", "p90 ms", "n"):
        table.add_column(col)
    for stage, v in result["stages"].items():
        table.add_row(stage, f"{v['median_ms']:.0f}", f"{v['p90_ms']:.0f}", str(v["n"]))
    console.print(table)
    console.print(f"end of speech -> first response audio: median {result['stages'].get('end_to_end', {}).get('median_ms')} ms "
                  "(includes the endpointing silence the user waits for)")
    console.print(f"ASR real-time factor {result['asr_rtf_median']}, TTS real-time factor {result['tts_rtf_median']}")
    console.print(f"replay: {result['replay_audio_seconds']} s of audio in {result['replay_wall_seconds']} s = "
                  f"{result['replay_x_realtime']}x real time")
    u = result["nlu_resolve_rerank_ms"]
    console.print(f"NLU + entity resolution + rerank per turn: median {u['total']['median_ms']} ms, "
                  f"p95 {u['total']['p95_ms']} ms (NLU {u['nlu']['median_ms']}, resolve {u['resolve']['median_ms']}, "
                  f"rerank {u['rerank']['median_ms']})")
    if result["catalog_lookup"]:
        c = result["catalog_lookup"]
        console.print(f"catalog lookup at {c['rows']} entries: median {c['median_ms']} ms, "
                      f"p95 {c['p95_ms']} ms, max {c['max_ms']} ms")
    console.print(f"model load {result['load_seconds']} s {result['load_seconds_by_stage']}; peak memory {result['peak_rss_mb']} MB; "
                  f"{result['cpu_count']} CPUs; errors in {result['turns_with_error']} turns")
    return 0
