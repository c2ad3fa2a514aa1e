"""Latency per stage and end to end, real-time factors, throughput and memory of replay on this machine.

A benchmark, not a test: it reports what it measured and asserts nothing (`assistant bench`).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from assistant.apps.replay import replay_file
from assistant.config import REPO_ROOT

DEMO_DIR = REPO_ROOT / "assistant" / "data" / "demo"
_STAGES = (
    "endpoint_wait",
    "asr",
    "nlu",
    "resolve",
    "respond",
    "tts",
    "tts_first_audio",
    "processing_to_first_audio",
    "end_to_end",
)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def measure(
    settings, home: Path, files: list[Path] | None = None, rounds: int = 2, catalog_entries: int = 100_000
) -> dict[str, Any]:
    """Replay the files `rounds` times through a fresh runner (temporary data dir); figures per stage."""
    from assistant.core.runner import Runner

    files = list(files or sorted(DEMO_DIR.glob("*.flac")))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pipeline = Runner(settings, home, data_dir=Path(tmp), out_dir=Path(tmp) / "out")
        load_s = time.perf_counter() - t0
        records: list[dict[str, Any]] = []
        audio_s = 0.0
        wall_s = 0.0
        from assistant.audio import probe

        for _ in range(rounds):
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
    if catalog_entries:
        from assistant.training.catalogs import bench_lookup

        lookup = bench_lookup(catalog_entries)
    stages = {}
    for stage in _STAGES:
        vals = [r["latency_ms"][stage] for r in records if stage in r.get("latency_ms", {})]
        if vals:
            stages[stage] = {
                "median_ms": round(statistics.median(vals), 1),
                "p90_ms": round(_pct(vals, 0.9), 1),
                "n": len(vals),
            }
    return {
        "files": [str(f) for f in files],
        "rounds": rounds,
        "turns": len(records),
        "turns_with_error": sum(1 for r in records if r.get("error")),
        # how each request ended: "endpoint" (silence), "complete" (the semantic end of turn at a pause), ...
        "endpoints": dict(Counter(r.get("source", {}).get("endpoint", "?") for r in records)),
        "stages": stages,
        "asr_rtf_median": round(statistics.median(asr_rtf), 3) if asr_rtf else None,
        "tts_rtf_median": round(statistics.median(tts_rtf), 3) if tts_rtf else None,
        "replay_audio_seconds": round(audio_s, 1),
        "replay_wall_seconds": round(wall_s, 2),
        "replay_x_realtime": round(audio_s / wall_s, 2) if wall_s else None,
        "load_seconds": round(load_s, 2),
        "load_seconds_by_stage": pipeline.load_seconds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
        "nlu_resolve_rerank_ms": understanding,
        "catalog_lookup": lookup,
    }
