"""The commands a user types, run as a user runs them (a subprocess), on the real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assistant" / "data" / "demo"
TURN_KEYS = {
    "turn_id",
    "session_id",
    "source",
    "wake",
    "transcript",
    "intent",
    "intent_confidence",
    "slots",
    "entities",
    "action",
    "response_text",
    "response_audio",
    "latency_ms",
    "error",
}


def assistant(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_replay_json_lines_then_traces(tmp_path):
    out = tmp_path / "out"
    proc = assistant("replay", str(DEMO / "evening_errands.flac"), "--json", "--out", str(out), data_dir=tmp_path)
    turns = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(turns) == 3
    for t in turns:
        assert TURN_KEYS <= t.keys()
        assert t["wake"]["detected"] and t["source"]["file"].endswith("evening_errands.flac")
        assert Path(t["response_audio"]).exists()
        assert {"asr", "nlu", "tts", "end_to_end"} <= t["latency_ms"].keys()
    assert [t["intent"] for t in turns][:2] == ["lists_createoradd", "iot_cover_open"]
    assert turns[2]["action"]["status"] == "unsupported"  # "make me a sandwich"

    listed = assistant("traces", "list", "--json", data_dir=tmp_path)
    ids = [json.loads(line)["turn_id"] for line in listed.stdout.splitlines()]
    assert set(ids) == {t["turn_id"] for t in turns}
    shown = json.loads(assistant("traces", "show", turns[1]["turn_id"][:10], "--json", data_dir=tmp_path).stdout)
    assert [s["stage"] for s in shown["spans"]] == [
        "wake",
        "vad",
        "asr",
        "rewrite",
        "nlu",
        "resolve",
        "rerank",
        "respond",
        "tts",
    ]
    # opening a garage door asks first (issue 13), about that door and no other
    action = shown["record"]["action"]
    assert action["status"] == "clarify" and action["params"]["device_ids"] == ["garage.door"]
    human = assistant("traces", "show", turns[1]["turn_id"], data_dir=tmp_path).stdout
    assert "faster-whisper" in human and "iot_cover_open" in human


def test_say_prints_the_turn(tmp_path):
    proc = assistant("say", "add eggs to my shopping list", "--out", str(tmp_path / "o"), data_dir=tmp_path)
    assert "lists_createoradd" in proc.stdout and "eggs" in proc.stdout.lower()


def test_bad_inputs_exit_non_zero_with_a_clear_message(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    proc = assistant("replay", str(bad), "--json", data_dir=tmp_path, check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["code"] == "audio-undecodable"

    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("asr:\n  beam: 3\n")
    proc = assistant("say", "hello", "--config", str(cfg), data_dir=tmp_path, check=False)
    assert proc.returncode == 1 and "asr.beam" in proc.stderr and "config-invalid" in proc.stderr

    home = tmp_path / "home.yaml"
    home.write_text("areas: [\n")
    proc = assistant("say", "hello", "--home", str(home), data_dir=tmp_path, check=False)
    assert proc.returncode == 1 and str(home) in proc.stderr


def test_models_all_load_offline(tmp_path):
    proc = assistant("models", "--json", data_dir=tmp_path)
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert {m["stage"] for m in report["models"]} >= {"wake", "vad", "asr", "nlu", "tts"}
    assert all(m["checksum"] in ("ok", "unpinned") for m in report["models"])
    assert all(s["loaded"] for s in report["loads"].values())
    licences = {m["id"]: m["licence"] for m in report["models"]}
    assert "CC BY-NC-SA" in licences["wake-alexa"]


def test_bench_reports_every_stage(tmp_path):
    report = json.loads(assistant("bench", "--rounds", "1", "--json", data_dir=tmp_path).stdout)
    assert report["turns"] == 6 and report["turns_with_error"] == 0
    assert {"asr", "nlu", "resolve", "respond", "tts", "end_to_end"} <= report["stages"].keys()
    for v in report["stages"].values():
        assert 0 < v["median_ms"] <= v["p90_ms"]
    # figures, not speed limits (a loaded machine replays slower than real time; `bench` is where speed is read)
    assert report["replay_x_realtime"] > 0 and report["asr_rtf_median"] > 0 and report["peak_rss_mb"] > 100
    assert report["endpoints"] == {"endpoint": 6}  # the default ends every request on silence


def test_eval_nlu_on_spoken_slurp_sentences(tmp_path, shared_dir):
    """The same SLURP rows, read aloud by Piper and transcribed: the report says how much the ASR costs."""
    data = shared_dir / "slurp" / "test.jsonl"
    text = json.loads(assistant("eval", "nlu", "--data", str(data), "--limit", "8", "--json", data_dir=tmp_path).stdout)
    spoken = json.loads(
        assistant(
            "eval", "nlu", "--data", str(data), "--limit", "8", "--spoken", "piper", "--json", data_dir=tmp_path
        ).stdout
    )
    assert text["n"] == spoken["n"] == 8
    assert spoken["spoken"]["voice"] == "piper" and 0 <= spoken["spoken"]["mean_wer"] < 0.5
    assert spoken["intent_accuracy"] >= 0.5
    # the same sentences in white noise as loud as the speech (0 dB): the recogniser hears less; what it heard is kept
    # per noise condition, so a second model would be scored on the same noisy transcripts
    heard = tmp_path / "heard.jsonl"
    noisy_args = ("--spoken", "piper", "--snr", "0", "--noise", "white", "--transcripts", str(heard), "--json")
    noisy = json.loads(
        assistant("eval", "nlu", "--data", str(data), "--limit", "8", *noisy_args, data_dir=tmp_path).stdout
    )
    assert noisy["spoken"]["noise"] == "white@0dB" and spoken["spoken"]["noise"] == "clean"
    assert noisy["spoken"]["mean_wer"] > spoken["spoken"]["mean_wer"]
    rows = [json.loads(line) for line in heard.read_text().splitlines()]
    assert len(rows) == 8 and {r["noise"] for r in rows} == {"white@0dB"}


def test_bench_versus_a_profile_measures_both_on_the_same_recordings(tmp_path):
    """`bench --versus hardware/quick-turns.yaml`: the base settings end every request on silence, the profile ends
    whole requests at the first pause (audio time: the waits do not depend on the machine)."""
    out = assistant("bench", "--rounds", "1", "--versus", "hardware/quick-turns.yaml", "--json", data_dir=tmp_path)
    base, quick = json.loads(out.stdout).values()
    assert base["turns"] == quick["turns"] == 6 and base["turns_with_error"] == quick["turns_with_error"] == 0
    assert set(base["endpoints"]) == {"endpoint"}
    assert quick["endpoints"].get("complete", 0) >= 3
    assert base["stages"]["endpoint_wait"]["median_ms"] > 500 > quick["stages"]["endpoint_wait"]["median_ms"]
