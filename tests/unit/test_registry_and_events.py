"""Backends from the registry, the runner's event stream and its typed record: fakes through the public doors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from assistant.config import DEFAULT_HOME, load_settings
from assistant.core import registry
from assistant.core.events import StageEnded, StageStarted, TurnEnded, TurnError, TurnStarted
from assistant.core.record import TurnRecord
from assistant.core.runner import Runner
from assistant.core.stages.nlu import NluResult, Slot
from assistant.core.stages.respond import Action, Response
from assistant.errors import ConfigError


class FakeNlu:
    name, version = "fake-nlu", "1"

    def parse(self, text, context=None):
        if "crash" in text:
            raise RuntimeError("model file truncated")
        return NluResult(
            text=text,
            intent="iot_hue_lighton",
            confidence=0.97,
            slots=(Slot("house_place", "kitchen"),),
            nbest=(("iot_hue_lighton", 0.97),),
        )


class EchoResponder:
    name, version = "echo", "1"

    def respond(self, nlu, resolved, ctx):
        return Response(text=f"You said {nlu.text}.", action=Action("none", "done"))


@dataclass
class Counting:
    inner: object
    calls: int = 0

    @property
    def name(self):
        return self.inner.name

    @property
    def version(self):
        return self.inner.version

    def parse(self, text, context=None):
        self.calls += 1
        return self.inner.parse(text, context)


@pytest.fixture
def settings():
    s = load_settings()
    return s.model_copy(update={"stages": ["nlu", "respond"]})


@pytest.fixture
def fakes():
    registry.register("nlu", "fake", lambda build: FakeNlu())
    registry.register("respond", "echo", lambda build: EchoResponder())
    yield
    registry.unregister("nlu", "fake")
    registry.unregister("respond", "echo")


def _runner(settings, tmp_path, **kw) -> Runner:
    s = settings.model_copy(
        update={
            "nlu": settings.nlu.model_copy(update={"backend": "fake"}),
            "respond": settings.respond.model_copy(update={"backend": "echo"}),
        }
    )
    return Runner(s, DEFAULT_HOME, data_dir=tmp_path, **kw)


def test_backends_come_from_the_registry_by_name(settings, fakes, tmp_path):
    r = _runner(settings, tmp_path)
    assert r.nlu.name == "fake-nlu" and r.responder.name == "echo" and r.asr is None and r.tts is None
    assert "fake" in registry.available("nlu") and "onnx-joint" in registry.available("nlu")
    assert r.versions() == {"nlu": "fake-nlu 1", "respond": "echo 1"}


def test_an_unknown_backend_name_is_a_config_error_that_lists_the_choices(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\nasr:\n  backend: whisper-cpp\n")
    with pytest.raises(ConfigError) as err:
        load_settings(bad)
    assert "asr.backend 'whisper-cpp'" in err.value.message and "faster-whisper" in err.value.message


def test_wrappers_compose_at_build_time(settings, fakes, tmp_path):
    r = _runner(settings, tmp_path, wrap={"nlu": Counting})
    r.run_text("turn on the kitchen light")
    assert isinstance(r.nlu, Counting) and r.nlu.calls == 1


def test_events_in_order_and_the_typed_record(settings, fakes, tmp_path):
    r = _runner(settings, tmp_path)
    seen = []
    r.subscribe(seen.append)
    rec = r.run_text("turn on the kitchen light")
    assert (
        isinstance(rec, TurnRecord) and rec.intent == "iot_hue_lighton" and rec["slots"] == {"house_place": "kitchen"}
    )
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "TurnStarted" and kinds[-1] == "TurnEnded"
    stages = [(type(e).__name__, e.stage) for e in seen if isinstance(e, (StageStarted, StageEnded))]
    assert stages == [
        ("StageStarted", "nlu"),
        ("StageEnded", "nlu"),
        ("StageStarted", "respond"),
        ("StageEnded", "respond"),
    ]
    assert isinstance(seen[0], TurnStarted) and seen[0].turn_id == rec.turn_id
    assert isinstance(seen[-1], TurnEnded) and seen[-1].record is rec
    # the trace recorder is a subscriber too: the stored turn has the same record and a span per stage
    turn = r.store.get_turn(rec.turn_id)
    assert turn["record"]["response_text"] == "You said turn on the kitchen light."
    assert [s["stage"] for s in turn["spans"]] == ["nlu", "respond"]
    assert "rewrite" not in rec and rec.to_dict().keys() == set(rec)


def test_a_crashing_backend_becomes_a_coded_error_event_and_a_trace(settings, fakes, tmp_path):
    r = _runner(settings, tmp_path)
    seen = []
    r.subscribe(seen.append)
    rec = r.run_text("crash please")
    assert rec.error["code"] == "nlu-failed" and "truncated" in rec.error["message"]
    errors = [e for e in seen if isinstance(e, TurnError)]
    assert len(errors) == 1 and errors[0].stage == "nlu"
    ended = [e for e in seen if isinstance(e, StageEnded) and e.stage == "nlu"]
    assert ended[0].error_code == "nlu-failed"
    assert r.store.get_turn(rec.turn_id)["record"]["error"]["code"] == "nlu-failed"


def test_a_broken_subscriber_does_not_break_the_turn(settings, fakes, tmp_path):
    r = _runner(settings, tmp_path)

    def broken(event):
        raise ValueError("subscriber bug")

    r.subscribe(broken)
    rec = r.run_text("turn on the kitchen light")
    assert rec.error is None and r.store.get_turn(rec.turn_id) is not None


def test_records_are_read_only_mappings():
    rec = TurnRecord(turn_id="t", session_id="s", source={}, wake={})
    with pytest.raises(TypeError):
        rec["intent"] = "x"  # type: ignore[index]
    with pytest.raises(KeyError):
        rec["rewrite"]
    assert rec.get("nlu_intent") is None and rec["transcript"] is None
