"""Whisper base (asr.model: base, the asr-base extra) on real recordings: joined from its two installed packages,
checked, loaded offline, and selected by the laptop-base profile for the whole pipeline."""

from __future__ import annotations

import re

import jiwer
import pytest

from assistant.apps.replay import replay_file
from assistant.audio import read_file
from assistant.backends.asr import whisper_base
from assistant.backends.asr.faster_whisper import FasterWhisperAsr
from assistant.config import REPO_ROOT, load_settings


def _wer(ref: str, hyp: str) -> float:
    clean = lambda t: " ".join(re.sub(r"[^a-z0-9' ]+", " ", t.lower()).split())  # noqa: E731
    return jiwer.wer(clean(ref), clean(hyp))


@pytest.fixture(scope="module")
def base_asr(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        path = whisper_base.model_dir()
        assert path == cache / "voice-assistant" / "faster-whisper-base"
        assert (path / "model.bin").stat().st_size == whisper_base.FILES["model.bin"][0]
        yield FasterWhisperAsr("base")


@pytest.mark.parametrize(
    "clip, ref",
    [
        ("voice2json/would_you_please_turn_on_living_room_lamp.wav", "would you please turn on the living room lamp"),
        (
            "arm_ml_eval_kit/resources/asr/samples/another_engineer.wav",
            "another engineer rushed toward the door to see what was happening outside",
        ),
    ],
)
def test_base_transcribes_real_recordings(base_asr, speech_dir, clip, ref):
    res = base_asr.transcribe(read_file(speech_dir / clip), "en")
    assert _wer(ref, res.text) <= 0.1, res.text
    assert base_asr.version.startswith("base ")


def test_laptop_base_profile_runs_the_pipeline_on_base(make_pipeline, base_asr, speech_dir):
    assert load_settings(profile=REPO_ROOT / "hardware" / "laptop.yaml").asr.model == "tiny.en"
    cfg = load_settings(profile=REPO_ROOT / "hardware" / "laptop-base.yaml")
    assert cfg.asr.model == "base"
    p = make_pipeline(config=cfg, backends={"asr": base_asr})
    recs = list(replay_file(p, speech_dir / "voice2json" / "turn_on_living_room_lamp.wav", no_wake=True))
    assert len(recs) == 1 and recs[0]["intent"] == "iot_hue_lighton", recs[0]["transcript"]
    spans = {s["stage"]: s for s in p.store.get_turn(recs[0]["turn_id"])["spans"]}
    assert spans["asr"]["version"].startswith("base ")
