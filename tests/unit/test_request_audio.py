"""Kept request audio (`traces.keep_request_audio`) and the labeller's re-decode counterfactual that reads it.

Fake ASR/NLU backends (no models in this tier); the audio is a real FLAC written and read back through libsndfile."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
from synth_traces import turn_view

from assistant.config import DEFAULT_HOME, load_settings
from assistant.core import registry
from assistant.core.runner import Runner
from assistant.core.stages.asr import AsrResult
from assistant.core.stages.nlu import NluResult, Slot
from assistant.core.stages.respond import Action, Response
from assistant.learning.labels.redecode import RD_FEATURES, Redecoder, worth_redecoding
from assistant.trace.privacy import opt_out, prune


class FakeAsr:
    name, version = "fake-asr", "1"

    def transcribe(self, samples, language):
        return AsrResult("turn on the kitchen light", 0.9, 0.01, "en", len(samples) / 16000)


class FakeNlu:
    name, version = "fake-nlu", "1"

    def parse(self, text, context=None):
        return NluResult(text, "iot_hue_lighton", 0.97, (Slot("house_place", "kitchen"),), (("iot_hue_lighton", 0.97),))


class Done:
    name, version = "done", "1"

    def respond(self, nlu, resolved, ctx):
        return Response(text="Done.", action=Action("none", "done"))


@pytest.fixture
def runner_for(tmp_path):
    registry.register("asr", "fake", lambda build: FakeAsr())
    registry.register("nlu", "fake", lambda build: FakeNlu())
    registry.register("respond", "done", lambda build: Done())

    def make(keep: bool, user: str = "alex") -> Runner:
        s = load_settings()
        s = s.model_copy(
            update={
                "stages": ["asr", "nlu", "respond"],
                "asr": s.asr.model_copy(update={"backend": "fake"}),
                "nlu": s.nlu.model_copy(update={"backend": "fake"}),
                "respond": s.respond.model_copy(update={"backend": "done"}),
                "traces": s.traces.model_copy(update={"keep_request_audio": keep}),
                "session": s.session.model_copy(update={"user_id": user}),
            }
        )
        return Runner(s, DEFAULT_HOME, data_dir=tmp_path, load_audio_stages=False)

    yield make
    for stage, name in (("asr", "fake"), ("nlu", "fake"), ("respond", "done")):
        registry.unregister(stage, name)


def _speech(seconds: float = 1.2) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)


def test_kept_request_audio_is_the_samples_the_asr_heard_and_is_in_the_stored_record(runner_for, tmp_path):
    r = runner_for(keep=True)
    samples = _speech()
    rec = r.run_audio(samples)
    path = rec.request_audio
    assert path and path.endswith(f"{rec.turn_id}.flac") and (tmp_path / "requests").is_dir()
    stored, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and np.array_equal(stored, samples)  # lossless
    assert r.store.get_turn(rec.turn_id)["record"]["request_audio"] == path


def test_off_by_default_and_never_for_typed_requests_or_opted_out_users(runner_for, tmp_path):
    assert load_settings().traces.keep_request_audio is False
    assert "request_audio" not in runner_for(keep=False).run_audio(_speech())
    r = runner_for(keep=True)
    assert "request_audio" not in r.run_text("turn on the kitchen light")
    opt_out(tmp_path, "alex")
    rec = r.run_audio(_speech())
    assert "request_audio" not in rec and not list((tmp_path / "requests").glob("*.flac"))


def test_retention_deletes_the_kept_audio_with_its_turn(runner_for):
    r = runner_for(keep=True)
    rec = r.run_audio(_speech())
    got = prune(r.store, older_than_days=0, now=time.time() + 10)
    assert got["turns"] == 1 and got["audio_files"] >= 1
    from pathlib import Path

    assert not Path(rec.request_audio).exists()


class Heard:
    def __init__(self, text: str, conf: float = 0.8):
        self.text, self.conf, self.calls = text, conf, 0

    def transcribe(self, samples, language):
        self.calls += 1
        return AsrResult(self.text, self.conf, 0.0, "en", len(samples) / 16000)


def test_a_wider_decode_that_is_understood_points_at_the_words(tmp_path):
    t = turn_view(tmp_path, "put on the kitten light", "general_quirky", 0.3, "unsupported")
    target = turn_view(tmp_path, "turn on the kitchen light", "iot_hue_lighton", 0.95, "done")
    parse = {"turn on the kitchen light": ("iot_hue_lighton", 0.93)}.get
    rd = Redecoder(asr=Heard("turn on the kitchen light"), cache_file=tmp_path / "cache.json")
    f = rd.features(t, target, True, parse)
    assert set(f) == set(RD_FEATURES) and f["rd_has"] == 1 and f["rd_changed"] == 1
    assert f["rd_nlu_same"] == 0 and f["rd_nlu_conf"] == 0.93 and f["rd_conf_gain"] == pytest.approx(0.63)
    assert f["rd_target_fixes"] == 1 and f["rd_target_gain"] > 0.1
    rd.save()  # cached per audio file: a second labeller decodes nothing
    again = Redecoder(asr=Heard("something else"), cache_file=tmp_path / "cache.json")
    assert again.features(t, target, True, parse) == f and again.decodes == 0


def test_the_same_words_again_point_away_from_the_asr(tmp_path):
    t = turn_view(tmp_path, "Play something romantic.", "play_music", 0.9, "failed")
    f = Redecoder(asr=Heard("play something romantic")).features(t, None, False, lambda text: (None, 0.0))
    assert f["rd_has"] == 1 and f["rd_changed"] == 0 and f["rd_nlu_same"] == 1 and f["rd_sim"] == pytest.approx(1.0)


def test_only_turns_that_may_have_failed_and_have_audio_are_decoded(tmp_path):
    ok = turn_view(tmp_path, "turn on the kitchen light", "iot_hue_lighton", 0.97, "done")
    ok.asr_conf = 0.95
    assert not worth_redecoding(ok, retried=False) and worth_redecoding(ok, retried=True)
    assert not worth_redecoding(turn_view(tmp_path, "x", "play_music", 0.2, "failed", audio=False), retried=True)
    heard = Heard("x")
    gone = turn_view(tmp_path, "x y", "play_music", 0.2, "failed")
    gone.request_audio = str(tmp_path / "pruned.flac")
    rd = Redecoder(asr=heard)
    assert rd.features(gone, None, True, lambda text: (None, 0.0))["rd_has"] == 0 and rd.missing == 1
    assert heard.calls == 0


def test_the_base_model_redecodes_keep_their_own_cache_and_half_the_training_sessions_go_without(tmp_path):
    t = turn_view(tmp_path, "put on the kitten light", "general_quirky", 0.3, "unsupported")
    parse = {"turn on the kitchen light": ("iot_hue_lighton", 0.93)}.get
    base = Redecoder(asr=Heard("turn on the kitchen light"), cache_file=tmp_path / "c.json", model="base")
    assert (base.beam_size, base.window_seconds) == (1, 10.0)
    assert base.features(t, None, True, parse)["rd_changed"] == 1
    base.save()
    # the same audio decoded by tiny.en at beam 5 is another entry: one cache file can hold both
    tiny = Redecoder(asr=Heard("put on the kitten light"), cache_file=tmp_path / "c.json")
    assert tiny.features(t, None, True, parse)["rd_changed"] == 0 and tiny.decodes == 1
    with pytest.raises(ValueError, match="redecode model"):
        Redecoder(model="large-v3")
    # training: a session hashed into the "no audio kept" share gets no re-decode features at all
    base.without_audio_share = 1.0
    assert base.features(t, None, True, parse)["rd_has"] == 0
    base.without_audio_share = 0.0
    assert base.features(t, None, True, parse)["rd_has"] == 1
