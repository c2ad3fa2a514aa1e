"""The models' self-check logic (assistant/models_check.py) on fake backends: a runtime that gives every sentence
one intent at 5% (the emulated-aarch64 failure of issue 21) is caught; `listen` refuses to start on a failed check."""

from __future__ import annotations

import pytest

from assistant import models_check as mc
from assistant.cli import main as cli_main
from assistant.core.stages.nlu import NluResult


class BrokenRuntimeNlu:
    """What the mismatched CPU build gave: one intent, 5% confidence, for everything."""

    name, version = "onnx-joint-nlu", "test"

    def parse(self, text, context=None):
        return NluResult(
            text=text, intent="general_quirky", confidence=0.05, slots=(), nbest=(("general_quirky", 0.05),)
        )


class RightNlu:
    name, version = "onnx-joint-nlu", "test"

    def __init__(self, expected, shift: float = 0.0):
        self.sentences = expected["nlu"]["sentences"]
        self.shift = shift

    def parse(self, text, context=None):
        e = self.sentences[text]
        return NluResult(
            text=text,
            intent=e["intent"],
            confidence=e["confidence"] - self.shift,
            slots=(),
            nbest=((e["intent"], e["confidence"]),),
        )


def test_the_expected_outputs_are_shipped_and_cover_every_stage():
    exp = mc.load_expected()
    assert set(mc.STAGES) <= exp.keys() and set(exp["nlu"]["sentences"]) == set(mc.NLU_SENTENCES)
    assert mc.CLIP.exists() and mc.CLIP.stat().st_size > 10_000


def test_a_broken_runtime_is_reported_not_served():
    res = mc.check_stage("nlu", BrokenRuntimeNlu())
    assert not res.ok
    assert any("every sentence gets the same intent" in p for p in res.problems)
    with pytest.raises(mc.SelfCheckFailed) as err:
        mc.require_ok([res])
    assert err.value.code == "model-self-check-failed" and "general_quirky" in err.value.message


def test_the_right_outputs_pass_and_a_drifted_confidence_fails():
    exp = mc.load_expected()
    assert mc.check_stage("nlu", RightNlu(exp)).ok
    drifted = mc.check_stage("nlu", RightNlu(exp, shift=0.2))
    assert not drifted.ok and all("expected" in p for p in drifted.problems)


def test_a_crashing_model_fails_its_check():
    class Crashing(BrokenRuntimeNlu):
        def parse(self, text, context=None):
            raise RuntimeError("illegal instruction")

    res = mc.check_stage("nlu", Crashing())
    assert not res.ok and "illegal instruction" in res.problems[0]


def test_compare_asr_wake_vad_tts():
    exp, tol = mc.load_expected(), mc.load_expected()["tolerance"]
    for stage in ("asr", "wake", "vad", "tts"):
        assert mc.compare(stage, exp[stage], exp[stage], tol) == [], stage
    assert mc.compare(
        "asr", {"transcript": "alexa what's the time", "confidence": exp["asr"]["confidence"]}, exp["asr"], tol
    )
    assert mc.compare("wake", {"alexa_max": 0.05, "silence_max": 0.0}, exp["wake"], tol)
    assert mc.compare("vad", {"speech_max": 0.1, "speech_frames": 0, "silence_max": 0.0}, exp["vad"], tol)
    assert mc.compare("tts", {"seconds": exp["tts"]["seconds"], "rms": 3.0, "heard": ""}, exp["tts"], tol)


def test_plug_in_backends_are_not_judged_by_the_shipped_outputs():
    class PluginNlu(BrokenRuntimeNlu):
        name = "my-plugin-nlu"

    assert mc.self_check({"nlu": PluginNlu()}) == []
    assert [r.stage for r in mc.self_check({"nlu": BrokenRuntimeNlu()})] == ["nlu"]


def test_listen_refuses_to_start_when_a_model_fails_its_check(monkeypatch, capsys):
    from assistant.apps import live
    from assistant.cli import listen

    closed = []

    class FakeRunner:
        def backend(self, stage):
            return BrokenRuntimeNlu() if stage == "nlu" else None

        def close(self):
            closed.append(True)

    def never(*a, **k):
        raise AssertionError("the live loop must not start")

    monkeypatch.setattr(listen, "make_runner", lambda args, out_dir=None: FakeRunner())
    monkeypatch.setattr(live, "LiveAssistant", never)
    assert cli_main.main(["listen"]) == 1
    err = capsys.readouterr().err
    assert "error [model-self-check-failed]" in err and "every sentence gets the same intent" in err
    assert closed == [True]
