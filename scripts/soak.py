#!/usr/bin/env python3
"""Soak: replay the shared recordings, looped with silences, through ONE runner for a long time, and watch it.

    .venv/bin/python scripts/soak.py --audio-hours 8            # the issue's 8 hours of audio (about 1-2 h here)
    .venv/bin/python scripts/soak.py --minutes 20 --out soak/    # a wall-clock bound instead

Every recording under ../shared/data/speech (no wake word: every speech segment is a request) and the bundled demo
recordings (wake word on) are fed as one endless microphone stream, each followed by 1-6 s of silence, through the
real wake word, VAD, endpointer and runner (ASR -> NLU -> ... -> TTS), with traces written to a fresh data dir.
Every --interval seconds it records RSS, open file descriptors, threads, the trace store's size and the turns'
latency; at the end it prints the curve and a verdict: RSS flat within 5% after warm-up, no fd or thread growth.
Not part of the test suite. Writes OUT/soak.jsonl (one sample a line) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def proc_status() -> dict[str, float]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                fields[key] = int(value.split()[0])
    return {
        "rss_mb": round(fields["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(fields["VmHWM"] / 1024, 1),
        "anon_mb": round(fields["RssAnon"] / 1024, 1),  # heap and arenas (what can leak)
        "file_mb": round(fields["RssFile"] / 1024, 1),  # mapped libraries and model files
        "threads": fields["Threads"],
        "py_threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
    }


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_stats() -> dict[str, float]:
    """glibc's view of the C heap: in use vs. free-but-kept (fragmentation), and mmapped blocks; {} off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {
        "c_in_use_mb": round(m.uordblks / 2**20, 1),
        "c_free_kept_mb": round(m.fordblks / 2**20, 1),
        "c_mmapped_mb": round(m.hblkhd / 2**20, 1),
    }


def python_heap() -> dict[str, int]:
    return {"py_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects())}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def recordings() -> list[tuple[Path, bool]]:
    from assistant.config import shared_data_dir

    speech = shared_data_dir() / "speech"
    shared = sorted(p for p in speech.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg"))
    demo = sorted((REPO / "assistant" / "data" / "demo").glob("*.flac"))
    return [(p, True) for p in shared] + [(p, False) for p in demo]  # (path, no_wake)


def stream(items, rng: random.Random, stats: dict):
    """Endless (path, no_wake, frames) with silence appended; decoded once, kept in memory (a few MB)."""
    from assistant import audio as audio_io

    decoded = []
    for path, no_wake in items:
        try:
            decoded.append((path, no_wake, np.concatenate(list(audio_io.stream_file(path)))))
        except Exception as err:  # noqa: BLE001 - a clip the decoder refuses is skipped, and said
            print(f"skipping {path}: {err}", file=sys.stderr)
    while True:
        rng.shuffle(decoded)
        for path, no_wake, samples in decoded:
            silence = np.zeros(int(rng.uniform(1.0, 6.0) * audio_io.PIPELINE_RATE), dtype=np.int16)
            whole = np.concatenate([samples, silence])
            stats["audio_seconds"] += len(whole) / audio_io.PIPELINE_RATE
            n = audio_io.FRAME_SAMPLES
            whole = np.concatenate([whole, np.zeros((-len(whole)) % n, dtype=np.int16)])
            yield path, no_wake, (whole[i : i + n] for i in range(0, len(whole), n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio-hours", type=float, default=8.0, help="stop after this much audio (default 8)")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this much wall-clock time")
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the run that is warm-up (default 0.1)")
    ap.add_argument("--out", type=Path, default=Path("soak"))
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--step-mb", type=float, default=3.0, help="log turns that grow RSS by this much (steps.jsonl)")
    ap.add_argument("--diag", action="store_true", help="also count Python objects by type at every sample")
    args = ap.parse_args()

    from assistant.apps.replay import segment
    from assistant.config import DEFAULT_HOME, load_settings
    from assistant.core.runner import Runner

    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="soak-data-"))
    settings = load_settings()
    settings = settings.model_copy(update={"feedback": settings.feedback.model_copy(update={"ask_rate": 0.0})})
    t_start = time.monotonic()
    runner = Runner(settings, DEFAULT_HOME, data_dir=data_dir)
    print(f"models loaded in {time.monotonic() - t_start:.1f} s; data dir {data_dir}", flush=True)
    rng = random.Random(args.seed)
    stats = {"audio_seconds": 0.0}
    deadline = t_start + args.minutes * 60 if args.minutes else None
    samples_path = args.out / "soak.jsonl"
    samples = []
    lat: list[float] = []
    turns = errors = 0
    next_sample = time.monotonic()
    type_counts: collections.Counter = collections.Counter()
    with samples_path.open("w") as out, (args.out / "steps.jsonl").open("w") as steps:
        for path, no_wake, frames in stream(recordings(), rng, stats):
            for req in segment(runner, frames, str(path), no_wake=no_wake):
                before = rss_mb()
                rec = runner.run(req)
                turns += 1
                errors += bool(rec.get("error"))
                lat.append(rec["latency_ms"].get("processing_to_first_audio", rec["latency_ms"].get("total", 0.0)))
                grew = rss_mb() - before
                if grew >= args.step_mb:  # where memory grows, turn by turn: the clip, what was heard and said
                    step = {
                        "turn": turns,
                        "t_s": round(time.monotonic() - t_start, 1),
                        "rss_mb": round(rss_mb(), 1),
                        "grew_mb": round(grew, 1),
                        "clip": path.name,
                        "audio_s": round(len(req.samples) / 16000, 1) if req.samples is not None else None,
                        "transcript_chars": len(rec.get("transcript") or ""),
                        "response_chars": len(rec.get("response_text") or ""),
                        "intent": rec.get("intent"),
                        "latency_ms": rec.get("latency_ms"),
                        **malloc_stats(),
                    }
                    steps.write(json.dumps(step, default=str) + "\n")
                    steps.flush()
            now = time.monotonic()
            done = stats["audio_seconds"] >= args.audio_hours * 3600 or (deadline is not None and now >= deadline)
            if now >= next_sample or done:
                s = {
                    "t_s": round(now - t_start, 1),
                    "audio_h": round(stats["audio_seconds"] / 3600, 3),
                    "turns": turns,
                    "errors": errors,
                    **proc_status(),
                    "db_mb": round(sum(p.stat().st_size for p in data_dir.glob("traces.db*")) / 1e6, 2),
                    "lat_median_ms": round(statistics.median(lat), 1) if lat else None,
                    "lat_p90_ms": round(float(np.percentile(lat, 90)), 1) if lat else None,
                    "lat_n": len(lat),
                    **malloc_stats(),
                    **python_heap(),
                }
                if args.diag:  # which Python object types grew since the last sample
                    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
                    s["py_type_growth"] = dict((counts - type_counts).most_common(8))
                    type_counts = counts
                samples.append(s)
                out.write(json.dumps(s) + "\n")
                out.flush()
                print(json.dumps(s), flush=True)
                lat = []
                next_sample = now + args.interval
            if done:
                break
    runner.close()
    warm = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] * args.warmup] or samples
    base, last = warm[0], samples[-1]
    rss_growth = (last["rss_mb"] - base["rss_mb"]) / base["rss_mb"] * 100
    rss_span = (max(s["rss_mb"] for s in warm) - min(s["rss_mb"] for s in warm)) / base["rss_mb"] * 100
    lats = [s["lat_median_ms"] for s in warm if s["lat_median_ms"] is not None]
    summary = {
        "wall_minutes": round(samples[-1]["t_s"] / 60, 1),
        "audio_hours": last["audio_h"],
        "turns": last["turns"],
        "turns_with_error": last["errors"],
        "x_realtime": round(last["audio_h"] * 3600 / max(1.0, last["t_s"]), 2),
        "rss_mb_after_warmup": base["rss_mb"],
        "rss_mb_end": last["rss_mb"],
        "rss_growth_pct": round(rss_growth, 2),
        "rss_span_after_warmup_pct": round(rss_span, 2),
        "peak_rss_mb": last["peak_rss_mb"],
        "fds": [min(s["fds"] for s in warm), max(s["fds"] for s in warm)],
        "threads": [min(s["threads"] for s in warm), max(s["threads"] for s in warm)],
        "latency_median_ms_first_last": [lats[0], lats[-1]] if lats else None,
        "latency_median_ms_range": [min(lats), max(lats)] if lats else None,
        "db_mb_end": last["db_mb"],
        "samples": len(samples),
    }
    summary["verdict"] = {
        "rss_flat_within_5pct": abs(rss_growth) <= 5 and rss_span <= 5,
        "no_fd_growth": summary["fds"][1] - summary["fds"][0] <= 2,
        "no_thread_growth": summary["threads"][1] - summary["threads"][0] <= 2,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0 if all(summary["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
