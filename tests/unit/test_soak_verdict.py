"""The soak's verdict (assistant/bench/soak.py): a flat run passes; memory, fd, thread or latency growth fails."""

from __future__ import annotations

import os

from assistant.bench.soak import curve_table, heap_status, judge, maps_status, proc_status


def series(n=40, rss=lambda i: 800.0, fds=lambda i: 17, threads=lambda i: 16, lat=lambda i: 900.0):
    """Samples a minute apart; the first one is model loading (lower RSS, fewer threads), as in a real soak."""
    out = []
    for i in range(n):
        out.append(
            {
                "t_s": 60.0 * i + 5,
                "turns": 40 * i,
                "audio_h": round(0.08 * i, 2),
                "rss_mb": 480.0 if i == 0 else rss(i),
                "peak_rss_mb": 900.0,
                "fds": fds(i),
                "threads": 8 if i == 0 else threads(i),
                "lat_median_ms": lat(i),
                "lat_p90_ms": lat(i) * 1.5,
                "load_1m": 3.0,
            }
        )
    return out


def test_flat_run_passes_and_warm_up_is_not_counted():
    # +/- 1% noise after warm-up; the warm-up sample's 480 MB and 8 threads do not count as growth
    v = judge(series(rss=lambda i: 800.0 + (8 if i % 2 else -8)))
    assert v["passed"], v["reasons"]
    assert v["verdict"] == {
        "rss_flat_within_pct": True,
        "no_fd_growth": True,
        "no_thread_growth": True,
        "latency_stable": True,
    }
    assert v["threads"] == [16, 16] and v["rss_mb_after_warmup"] in (792.0, 808.0)


def test_steady_memory_creep_fails():
    # 1.5 MB a minute (the first 50-minute soak crept at about 1 MB a minute): +6.5% after warm-up
    v = judge(series(rss=lambda i: 800.0 + 1.5 * i))
    assert not v["passed"] and not v["verdict"]["rss_flat_within_pct"]
    assert v["verdict"]["no_fd_growth"] and v["verdict"]["no_thread_growth"]
    assert "RSS moved +" in v["reasons"][0]
    assert v["rss_mb_per_hour"] > 50


def test_a_step_that_stays_fails_even_when_the_end_is_near_the_start():
    # a step up and most of the way back down: the spread is over 5%, the end only +2%
    v = judge(series(rss=lambda i: 900.0 if 15 <= i < 30 else (816.0 if i >= 30 else 800.0)))
    assert not v["verdict"]["rss_flat_within_pct"]
    assert v["rss_span_pct"] > 5 > v["rss_growth_pct"]


def test_fd_leak_thread_leak_and_slowing_down_each_fail():
    assert not judge(series(fds=lambda i: 17 + i // 10))["verdict"]["no_fd_growth"]
    assert not judge(series(threads=lambda i: 16 + i // 5))["verdict"]["no_thread_growth"]
    slow = judge(series(lat=lambda i: 900.0 + 40 * i))
    assert not slow["verdict"]["latency_stable"] and not slow["passed"]
    assert "latency" in slow["reasons"][0]


def test_too_few_samples_is_not_a_pass():
    assert not judge(series(n=2))["passed"]


def test_curve_table_and_process_sampling():
    table = curve_table(series(n=30), rows=10)
    lines = table.splitlines()
    assert lines[0].startswith("| minute |") and 10 <= len(lines) - 2 <= 12
    assert lines[-1].startswith("| 29.1 |")  # the last sample is always shown
    me = proc_status()
    assert me["rss_mb"] > 10 and me["threads"] >= 1 and me["fds"] >= 3
    assert proc_status(os.getpid())["threads"] == me["threads"]
    heap = heap_status()
    assert heap["py_blocks"] > 1000
    maps = maps_status(os.getpid())  # another process's heap, by its mappings: brk heap and anonymous mappings
    assert maps["anon_maps"] >= 1 and maps["brk_heap_mb"] + maps["anon_maps_mb"] <= me["anon_mb"] + 5.0


def test_turns_in_flight_are_not_growth_but_a_leak_under_them_is():
    # `listen` sampled at random phases: idle 575 MB, answering 660 MB (+15%), two open audio streams, one thread
    busy = lambda i: i % 3 == 1  # noqa: E731
    swinging = series(
        rss=lambda i: 660.0 if busy(i) else 575.0,
        fds=lambda i: 29 if busy(i) else 22,
        threads=lambda i: 20 if busy(i) else 18,
    )
    v = judge(swinging)
    assert v["passed"], v["reasons"]
    assert v["rss_mb_raw_range_after_warmup"] == [575.0, 660.0]
    leaking = judge(series(rss=lambda i: (660.0 if busy(i) else 575.0) + 2 * i))
    assert not leaking["verdict"]["rss_flat_within_pct"]
