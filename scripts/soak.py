#!/usr/bin/env python3
"""The long soak: hours of audio through one assistant, its memory, fds, threads and latency sampled, and a verdict.

    nice -n 10 .venv/bin/python scripts/soak.py --audio-hours 8 --out soak/     # replay: 8 h of audio, one runner
    nice -n 10 .venv/bin/python scripts/soak.py --minutes 60 --out soak/        # replay, a wall-clock bound instead
    nice -n 10 .venv/bin/python scripts/soak.py --resume soak/ --audio-hours 8  # continue a stopped replay soak
    nice -n 10 .venv/bin/python scripts/soak.py --listen 30 --out soak-live/    # `assistant listen`, virtual mic
    .venv/bin/python scripts/soak.py --report soak/                             # curve and verdict of a soak dir

Replay: every recording under ../shared/data/speech (no wake word: each speech segment is a request) and the bundled
demo recordings (wake word on), shuffled and looped, each followed by 1-6 s of silence, through the real wake word,
VAD, endpointer and runner (ASR -> NLU -> ... -> TTS), traces to a data dir in OUT. Faster than real time.
Listen: a private PulseAudio daemon's virtual microphone (assistant/apps/virtual_audio.py); `assistant listen`
runs as its own process (start-up self-check included) while this one plays "Alexa," + a recording into the mic
every few seconds and samples the listener's /proc. Real time.

Every --interval seconds a sample (RSS, anon/file RSS, fds, threads, C and Python heap in replay, turns, latency,
load average) goes to OUT/soak.jsonl; turns that grow RSS by --step-mb or more go to OUT/steps.jsonl (which clip, what
was heard and said). At the end: OUT/summary.json, the curve as a table, and a verdict against issue 21's criteria
(assistant/bench/soak.py): RSS flat within 5% after warm-up, no fd or thread growth, latency stable. Exit 0 = passed.
A resumed replay soak is a new process: each process (segment) is judged on its own, audio and turns add up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assistant.bench.soak import curve_table, heap_status, judge, maps_status, proc_status  # noqa: E402


def recordings() -> list[tuple[Path, bool]]:
    from assistant.config import shared_data_dir

    speech = shared_data_dir() / "speech"
    shared = sorted(p for p in speech.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg"))
    demo = sorted((REPO / "assistant" / "data" / "demo").glob("*.flac"))
    return [(p, True) for p in shared] + [(p, False) for p in demo]  # (path, no_wake)


def decode(items) -> list[tuple[Path, bool, np.ndarray]]:
    """Every clip decoded once and kept in memory (a few MB); a clip the decoder refuses is skipped, and said."""
    from assistant import audio as audio_io

    decoded = []
    for path, no_wake in items:
        try:
            decoded.append((path, no_wake, np.concatenate(list(audio_io.stream_file(path)))))
        except Exception as err:  # noqa: BLE001
            print(f"skipping {path}: {err}", file=sys.stderr)
    return decoded


def stream(decoded, rng: random.Random, stats: dict, skip_seconds: float = 0.0):
    """Endless (path, no_wake, frames), shuffled per pass, 1-6 s of silence after each clip. `skip_seconds` of the
    sequence are skipped without running (a resumed soak continues where the stopped one ended: same seed, same
    sequence)."""
    from assistant import audio as audio_io

    while True:
        rng.shuffle(decoded)
        for path, no_wake, samples in decoded:
            silence = np.zeros(int(rng.uniform(1.0, 6.0) * audio_io.PIPELINE_RATE), dtype=np.int16)
            whole = np.concatenate([samples, silence])
            stats["audio_seconds"] += len(whole) / audio_io.PIPELINE_RATE
            if stats["audio_seconds"] <= skip_seconds + 0.05:  # (audio_s is rounded; every clip is > 1 s)
                continue
            n = audio_io.FRAME_SAMPLES
            whole = np.concatenate([whole, np.zeros((-len(whole)) % n, dtype=np.int16)])
            yield path, no_wake, (whole[i : i + n] for i in range(0, len(whole), n))


def _latency(rec) -> float:
    lat = rec["latency_ms"] if "latency_ms" in rec else {}
    return lat.get("processing_to_first_audio", lat.get("total", 0.0))


def _lat_fields(lat: list[float]) -> dict:
    return {
        "lat_median_ms": round(float(np.median(lat)), 1) if lat else None,
        "lat_p90_ms": round(float(np.percentile(lat, 90)), 1) if lat else None,
        "lat_n": len(lat),
    }


def load_samples(out: Path) -> list[dict]:
    path = out / "soak.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def report(out: Path, warmup: float) -> dict:
    """Judge every segment (process) of OUT/soak.jsonl; write OUT/summary.json; print the curves and verdicts."""
    samples = load_samples(out)
    if not samples:
        raise SystemExit(f"no samples in {out / 'soak.jsonl'}: run a soak with --out {out} first")
    segments: dict[int, list[dict]] = {}
    for s in samples:
        segments.setdefault(s.get("segment", 0), []).append(s)
    judged = []
    for seg, ss in sorted(segments.items()):
        idle = [s for s in ss if s.get("idle")]
        if len(idle) >= 3:  # listen: judge the listener between turns (every sample is in soak.jsonl)
            ss = idle
        verdict = judge(ss, warmup)
        judged.append({"segment": seg, "mode": ss[0].get("mode", "replay")} | verdict)
        print(f"\nsegment {seg} ({ss[0].get('mode', 'replay')}): {len(ss)} samples")
        print(curve_table(ss))
    last = samples[-1]
    summary = {
        "audio_hours": last.get("audio_h"),
        "turns": last.get("turns"),
        "turns_with_error": last.get("errors"),
        "segments": judged,
        "passed": all(j["passed"] for j in judged),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for j in judged:
        print(f"\nsegment {j['segment']}: {'PASS' if j['passed'] else 'FAIL'}", json.dumps(j, indent=1))
    print(
        f"\nsoak {'PASSED' if summary['passed'] else 'FAILED'}: "
        f"{summary['audio_hours']} h of audio, {summary['turns']} turns"
    )
    return summary


def replay_soak(args) -> None:
    from assistant.apps.replay import segment
    from assistant.config import DEFAULT_HOME, load_settings
    from assistant.core.runner import Runner

    previous = load_samples(args.out) if args.resume else []
    seg = previous[-1].get("segment", 0) + 1 if previous else 0
    start_audio_s = previous[-1].get("audio_s", previous[-1]["audio_h"] * 3600) if previous else 0.0
    turns = previous[-1]["turns"] if previous else 0
    errors = previous[-1].get("errors", 0) if previous else 0
    data_dir = args.out / "data"  # kept across a resume, like a real long run's store
    settings = load_settings()
    settings = settings.model_copy(update={"feedback": settings.feedback.model_copy(update={"ask_rate": 0.0})})
    t_start = time.monotonic()
    runner = Runner(settings, DEFAULT_HOME, data_dir=data_dir)
    print(f"models loaded in {time.monotonic() - t_start:.1f} s; data dir {data_dir}", flush=True)
    stats = {"audio_seconds": 0.0}
    deadline = t_start + args.minutes * 60 if args.minutes else None
    lat: list[float] = []
    next_sample = time.monotonic()
    clips = stream(decode(recordings()), random.Random(args.seed), stats, skip_seconds=start_audio_s)
    mode = "a" if args.resume else "w"
    with (args.out / "soak.jsonl").open(mode) as out, (args.out / "steps.jsonl").open(mode) as steps:
        for path, no_wake, frames in clips:
            for req in segment(runner, frames, str(path), no_wake=no_wake):
                before = proc_status()["rss_mb"]
                rec = runner.run(req)
                turns += 1
                errors += bool(rec.get("error"))
                lat.append(_latency(rec))
                grew = proc_status()["rss_mb"] - before
                if grew >= args.step_mb:  # where memory grows, turn by turn: the clip, what was heard and said
                    step = {
                        "segment": seg,
                        "turn": turns,
                        "t_s": round(time.monotonic() - t_start, 1),
                        "grew_mb": round(grew, 1),
                        "clip": path.name,
                        "audio_s": round(len(req.samples) / 16000, 1) if req.samples is not None else None,
                        "transcript_chars": len(rec.get("transcript") or ""),
                        "response_chars": len(rec.get("response_text") or ""),
                        "latency_ms": rec.get("latency_ms"),
                    }
                    steps.write(json.dumps(step, default=str) + "\n")
                    steps.flush()
            now = time.monotonic()
            done = stats["audio_seconds"] >= args.audio_hours * 3600 or (deadline is not None and now >= deadline)
            if now >= next_sample or done:
                s = {
                    "mode": "replay",
                    "segment": seg,
                    "t_s": round(now - t_start, 1),
                    "audio_h": round(stats["audio_seconds"] / 3600, 3),
                    "audio_s": round(stats["audio_seconds"], 1),
                    "turns": turns,
                    "errors": errors,
                    **proc_status(),
                    **heap_status(),
                    "db_mb": round(sum(p.stat().st_size for p in data_dir.glob("traces.db*")) / 1e6, 2),
                    **_lat_fields(lat),
                }
                out.write(json.dumps(s) + "\n")
                out.flush()
                print(json.dumps(s), flush=True)
                lat = []
                next_sample = now + args.interval
            if done:
                break
    runner.close()


def listen_soak(args) -> None:
    """`assistant listen` on the virtual microphone for --listen minutes. Like someone using it all day: a request
    ("Alexa," + a recording), the answer, a pause of 4-10 s, the next. The listener is sampled when idle, 1.5 s after
    each answer (a sample during a turn holds that turn's buffers, streams and threads: not growth), and at least
    every --interval seconds."""
    from assistant.apps.virtual_audio import VirtualAudio
    from assistant.simulate.voices import compose, piper_speech

    va = VirtualAudio(Path(tempfile.mkdtemp(prefix="soak-pulse-"))).start()
    profile = args.out / "virtual-devices.yaml"
    profile.write_text(f"audio:\n  input_device: '{va.MIC}'\n  output_device: '{va.SPEAKER}'\n")
    cmd = [sys.executable, "-m", "assistant", "listen", "--profile", str(profile), "--data-dir", str(args.out / "data")]
    cmd += ["--duration", str(args.listen * 60), "--no-status", "--json"]
    turns_path = args.out / "turns.jsonl"
    with turns_path.open("w") as turns_out, (args.out / "listen.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=va.env, stdout=turns_out, stderr=log)
    print(f"listen pid {proc.pid}: {' '.join(cmd)}", flush=True)
    wake = piper_speech("Alexa,")
    clips = [compose([0.3, wake, 0.4, x, 1.0]) if no_wake else x for _p, no_wake, x in decode(recordings())]
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    seen = 0
    played = 0

    def turns() -> list[dict]:
        return [json.loads(line) for line in turns_path.read_text().splitlines() if line.startswith("{")]

    def sample(out, idle: bool) -> None:
        nonlocal seen
        done = turns()
        lat = [_latency(t) for t in done[seen:]]
        seen = len(done)
        s = {"mode": "listen", "segment": 0, "t_s": round(time.monotonic() - t_start, 1), "idle": idle}
        s |= {"turns": len(done), "requests_played": played, "errors": sum(bool(t.get("error")) for t in done)}
        s |= proc_status(proc.pid) | maps_status(proc.pid) | _lat_fields(lat)
        out.write(json.dumps(s) + "\n")
        out.flush()
        print(json.dumps(s), flush=True)

    def wait(seconds: float, out, last: list[float]) -> None:  # sleeping, and sampling every --interval
        end = time.monotonic() + seconds
        while proc.poll() is None and time.monotonic() < end:
            if time.monotonic() - last[0] >= args.interval:
                sample(out, idle=False)
                last[0] = time.monotonic()
            time.sleep(0.25)

    try:
        with (args.out / "soak.jsonl").open("w") as out:
            last = [time.monotonic()]
            wait(args.startup, out, last)  # start-up: models, self-check (the first request must not be lost)
            while proc.poll() is None:
                rng.shuffle(clips)
                for samples in clips:
                    if proc.poll() is not None:
                        break
                    before = len(turns())
                    player, _ = va.play(samples)
                    played += 1
                    player.wait()
                    deadline = time.monotonic() + 90
                    while proc.poll() is None and len(turns()) <= before and time.monotonic() < deadline:
                        wait(0.5, out, last)
                    wait(1.5, out, last)  # the answer played out
                    if proc.poll() is None and len(turns()) > before:
                        sample(out, idle=True)
                        last[0] = time.monotonic()
                    wait(rng.uniform(4.0, 10.0), out, last)
    except (FileNotFoundError, ProcessLookupError):
        pass  # the listener ended between two looks at its /proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # listen ends a turn cleanly on SIGTERM
        proc.wait(timeout=60)
        va.stop()
    print(f"listen exited {proc.returncode}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio-hours", type=float, default=8.0, help="replay: stop after this much audio (default 8)")
    ap.add_argument("--minutes", type=float, default=None, help="replay: stop after this much wall-clock time")
    ap.add_argument("--listen", type=float, default=None, help="MINUTES of `assistant listen` on a virtual mic")
    ap.add_argument("--startup", type=float, default=90.0, help="listen: seconds to wait before the first request")
    ap.add_argument("--resume", type=Path, default=None, help="replay: continue the soak in this dir (same seed)")
    ap.add_argument("--report", type=Path, default=None, help="only print the curve and verdict of this soak dir")
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the run that is warm-up (default 0.1)")
    ap.add_argument("--step-mb", type=float, default=3.0, help="log turns that grow RSS by this much (steps.jsonl)")
    ap.add_argument("--out", type=Path, default=Path("soak"))
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()
    if args.report:
        return 0 if report(args.report, args.warmup)["passed"] else 1
    if args.resume:
        args.out = args.resume
    args.out.mkdir(parents=True, exist_ok=True)
    if args.listen:
        listen_soak(args)
    else:
        replay_soak(args)
    return 0 if report(args.out, args.warmup)["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
