"""The soak's measurements and its verdict: a process's memory, file descriptors, threads and latency over hours.

`scripts/soak.py` drives it (replayed audio through one runner, or `assistant listen` on the virtual microphone);
this module samples a process and judges the curve against issue 21's criteria:
- RSS flat within 5% after warm-up: the spread of the post-warm-up curve, and its end against its start, both
  within `rss_pct` of the start;
- no file-descriptor or thread growth (the post-warm-up curve's maximum at most `slack` above its minimum).
  The curves are rolling medians of `smooth` samples: a sample taken during a turn holds that turn's working memory,
  audio streams and threads (`assistant listen` swings by ~15% between idle and answering), which is not growth;
  a leak moves the median, a turn in flight does not. The raw range and the peak are reported beside it;
- latency stable: the median of the last third of the post-warm-up samples at most `latency_ratio` times the first
  third's (the load average is sampled too, since on a shared machine latency follows the load).
Pure functions over sample dicts, so the verdict logic has its own unit test.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """RSS (total, anonymous = heap and arenas, file = mapped libraries and models), peak, threads, open fds."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                fields[key] = int(value.split()[0])
    return {
        "rss_mb": round(fields["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(fields["VmHWM"] / 1024, 1),
        "anon_mb": round(fields.get("RssAnon", 0) / 1024, 1),
        "file_mb": round(fields.get("RssFile", 0) / 1024, 1),
        "threads": fields["Threads"],
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "load_1m": round(os.getloadavg()[0], 2),
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


def heap_status() -> dict[str, float]:
    """This process's C heap as glibc sees it (in use, free but kept, mmapped) and its Python heap; tells native
    growth from Python growth. The C part is empty off glibc."""
    out: dict[str, float] = {"py_blocks": sys.getallocatedblocks()}
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return out
    return out | {
        "c_in_use_mb": round(m.uordblks / 2**20, 1),
        "c_free_kept_mb": round(m.fordblks / 2**20, 1),
        "c_mmapped_mb": round(m.hblkhd / 2**20, 1),
    }


def maps_status(pid: int | str = "self") -> dict[str, float]:
    """Where another process's anonymous memory is (mallinfo only sees this process): the main arena (`[heap]`,
    brk), other anonymous mappings (thread arenas, mmapped blocks, native libraries' buffers) and their count."""
    heap = other = 0
    count = 0
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 6)
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:  # a mapping's header line
                name = head[5].strip() if len(head) > 5 else ""
                count += name == ""
            elif head[0] == "Rss:":
                kb = int(head[1])
                if name == "[heap]":
                    heap += kb
                elif name == "":
                    other += kb
    return {"brk_heap_mb": round(heap / 1024, 1), "anon_maps_mb": round(other / 1024, 1), "anon_maps": count}


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def rolling_median(values: Sequence[float], window: int) -> list[float]:
    """Median of each run of `window` consecutive values (the whole list when it is shorter)."""
    w = max(1, min(window, len(values)))
    return [round(statistics.median(values[i : i + w]), 1) for i in range(len(values) - w + 1)]


def judge(
    samples: Sequence[dict[str, Any]],
    warmup: float = 0.1,
    rss_pct: float = 5.0,
    slack: int = 2,
    latency_ratio: float = 1.5,
    smooth: int = 5,
) -> dict[str, Any]:
    """Summary and verdict of one process's samples (dicts with t_s, rss_mb, fds, threads, lat_median_ms, ...).

    Warm-up is the first `warmup` share of the run's time (models load, thread pools and caches fill)."""
    if len(samples) < 3:
        return {"verdict": {"enough_samples": False}, "passed": False, "reasons": ["fewer than 3 samples"]}
    t_end = samples[-1]["t_s"]
    warm = [s for s in samples if s["t_s"] >= t_end * warmup]
    if len(warm) < 3:
        warm = list(samples[-3:])
    base, last = warm[0], warm[-1]
    rss = rolling_median([s["rss_mb"] for s in warm], smooth)
    growth = (rss[-1] - rss[0]) / rss[0] * 100
    span = (max(rss) - min(rss)) / rss[0] * 100
    fds = rolling_median([s["fds"] for s in warm], smooth)
    threads = rolling_median([s["threads"] for s in warm], smooth)
    lats = [s["lat_median_ms"] for s in warm if s.get("lat_median_ms") is not None]
    third = max(1, len(lats) // 3)
    lat_first, lat_last = _median(lats[:third]), _median(lats[-third:])
    hours = max(1e-9, (last["t_s"] - base["t_s"]) / 3600)
    loads = [s["load_1m"] for s in warm if s.get("load_1m") is not None]
    summary: dict[str, Any] = {
        "wall_minutes": round(t_end / 60, 1),
        "warmup_minutes": round(base["t_s"] / 60, 1),
        "turns": last.get("turns"),
        "audio_hours": last.get("audio_h"),
        "rss_mb_after_warmup": rss[0],
        "rss_mb_end": rss[-1],
        "rss_mb_range_after_warmup": [min(rss), max(rss)],
        "rss_mb_raw_range_after_warmup": [min(s["rss_mb"] for s in warm), max(s["rss_mb"] for s in warm)],
        "rss_growth_pct": round(growth, 2),
        "rss_span_pct": round(span, 2),
        "rss_mb_per_hour": round((rss[-1] - rss[0]) / hours, 1),
        "peak_rss_mb": max(s.get("peak_rss_mb", s["rss_mb"]) for s in samples),
        "fds": [min(fds), max(fds)],
        "threads": [min(threads), max(threads)],
        "latency_median_ms_first_last_third": [lat_first, lat_last],
        "load_1m_range": [min(loads), max(loads)] if loads else None,
    }
    verdict = {
        "rss_flat_within_pct": abs(growth) <= rss_pct and span <= rss_pct,
        "no_fd_growth": max(fds) - min(fds) <= slack,
        "no_thread_growth": max(threads) - min(threads) <= slack,
        "latency_stable": lat_first is None or lat_last is None or lat_last <= latency_ratio * lat_first,
    }
    reasons = []
    if not verdict["rss_flat_within_pct"]:
        reasons.append(f"RSS moved {growth:+.1f}% (span {span:.1f}%) after warm-up; the limit is {rss_pct}%")
    if not verdict["no_fd_growth"]:
        reasons.append(f"file descriptors went from {min(fds)} to {max(fds)}")
    if not verdict["no_thread_growth"]:
        reasons.append(f"threads went from {min(threads)} to {max(threads)}")
    if not verdict["latency_stable"]:
        reasons.append(f"median latency went from {lat_first} to {lat_last} ms (limit x{latency_ratio})")
    return summary | {"verdict": verdict, "passed": all(verdict.values()), "reasons": reasons}


def curve_table(samples: Sequence[dict[str, Any]], rows: int = 14) -> str:
    """The curve as a markdown table of about `rows` evenly spaced samples (the first and the last included)."""
    if not samples:
        return ""
    step = max(1, round(len(samples) / rows))
    picked = list(samples[::step])
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    head = "| minute | audio h | turns | RSS MB | anon MB | fds | threads | latency median / p90 ms | load 1 min |"
    lines = [head, "|" + "---|" * 9]
    for s in picked:
        lines.append(
            f"| {s['t_s'] / 60:.1f} | {s.get('audio_h', '-')} | {s.get('turns', '-')} | {s['rss_mb']:.0f} | "
            f"{s.get('anon_mb', 0):.0f} | {s['fds']} | {s['threads']} | "
            f"{s.get('lat_median_ms')} / {s.get('lat_p90_ms')} | {s.get('load_1m', '-')} |"
        )
    return "\n".join(lines)
