"""The long soak's command (scripts/soak.py) for a few turns on the real models: it samples, stores every turn,
resumes where it stopped, and its report fails a run whose memory grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOAK = REPO / "scripts" / "soak.py"


def soak(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, str(SOAK), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "soak.jsonl").read_text().splitlines()]


def test_replay_soak_samples_stores_every_turn_and_resumes(tmp_path, speech_dir):
    from assistant.trace.store import TraceStore

    out = tmp_path / "soak"
    first = soak("--audio-hours", "0.006", "--interval", "1", "--out", str(out))
    assert first.returncode in (0, 1), first.stderr[-2000:]  # 1 = judged a failure (a run this short may be)
    ss = samples(out)
    assert len(ss) >= 2 and {s["segment"] for s in ss} == {0}
    for key in ("rss_mb", "anon_mb", "fds", "threads", "c_in_use_mb", "py_blocks", "lat_median_ms", "load_1m"):
        assert key in ss[-1], key
    turns, audio_s = ss[-1]["turns"], ss[-1]["audio_s"]
    assert turns >= 2 and audio_s >= 0.006 * 3600
    summary = json.loads((out / "summary.json").read_text())
    assert summary["turns"] == turns and set(summary["segments"][0]["verdict"]) == {
        "rss_flat_within_pct",
        "no_fd_growth",
        "no_thread_growth",
        "latency_stable",
    }
    assert "| minute | audio h | turns | RSS MB |" in first.stdout

    second = soak("--resume", str(out), "--audio-hours", "0.012", "--interval", "1")
    assert second.returncode in (0, 1), second.stderr[-2000:]
    ss = samples(out)
    resumed = [s for s in ss if s["segment"] == 1]
    assert resumed and resumed[-1]["audio_h"] >= 0.012 and resumed[-1]["turns"] > turns
    assert resumed[0]["audio_s"] > audio_s  # continued the clip sequence, not started it again
    store = TraceStore(out / "data" / "traces.db")
    try:
        assert store.count_turns() == resumed[-1]["turns"]  # every turn of both processes, none lost
    finally:
        store.close()


def test_report_fails_a_soak_whose_memory_creeps(tmp_path):
    out = tmp_path / "creep"
    out.mkdir()
    rows = [
        {"segment": 0, "t_s": 60.0 * i, "turns": 30 * i, "audio_h": 0.1 * i, "rss_mb": 750.0 + 2.0 * i, "fds": 17}
        | {"threads": 16, "lat_median_ms": 800.0}
        for i in range(1, 40)
    ]
    (out / "soak.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = soak("--report", str(out), timeout=60)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "soak FAILED" in done.stdout and "RSS moved +" in done.stdout
    assert json.loads((out / "summary.json").read_text())["passed"] is False
