"""NLU model tests: need the exported model in models/nlu/ (onnxruntime + tokenizers only, no torch)."""

from __future__ import annotations

import random

import pytest

from assistant.backends.nlu.onnx_joint import DEFAULT_MODEL_DIR, OnnxJointNlu
from assistant.config import shared_data_dir
from assistant.errors import ModelError
from assistant.text import normalize_dataset as normalise
from assistant.training.nlu_eval import evaluate, format_report, load_slurp, parse_annotation

SLURP_TEST = shared_data_dir() / "slurp" / "test.jsonl"

needs_model = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.onnx").exists(),
    reason="models/nlu/model.onnx missing: run `python -m assistant train nlu`",
)


@pytest.fixture(scope="module")
def nlu() -> OnnxJointNlu:
    return OnnxJointNlu()


def _check_offsets(res) -> None:
    for s in res.slots:
        assert 0 <= s.start < s.end <= len(res.text)
        assert res.text[s.start : s.end] == s.value
        assert 0.0 <= s.confidence <= 1.0


CASES = [
    ("turn off the kitchen lights", "iot_hue_lightoff", {"house_place": "kitchen"}),
    ("set a timer for ten minutes", "timer_set", {"duration": "ten minutes"}),
    ("set a 5 minute pasta timer", "timer_set", {"timer_name": "pasta"}),
    ("what time is it", "datetime_query", {}),
    ("add milk to my shopping list", "lists_createoradd", {}),
    ("open the garage door", "iot_cover_open", {}),
    ("close the blinds in the bedroom", "iot_cover_close", {"house_place": "bedroom"}),
    ("preheat the oven to two hundred degrees", "iot_appliance_on", {"device_type": "oven"}),
    ("set the thermostat to twenty one degrees", "iot_climate_set", {}),
    ("how much time is left on my timer", "timer_query", {}),
    ("cancel the timer", "timer_remove", {}),
    ("pause the music", "media_pause", {}),
    ("next song", "media_next", {}),  # "skip (this|to the next) song" is music_settings in HWU64/SLURP
    ("yes", "general_affirm", {}),
    ("no", "general_negate", {}),
    ("what's the weather like tomorrow", "weather_query", {"date": "tomorrow"}),
    ("wake me up at seven am", "alarm_set", {}),
]


@needs_model
@pytest.mark.parametrize("text,intent,slots", CASES)
def test_intents_and_slots(nlu, text, intent, slots) -> None:
    res = nlu.parse(text)
    assert res.intent == intent, (text, res.nbest, res.slots)
    got = res.slot_dict()
    for k, v in slots.items():
        assert got.get(k) == v, (text, res.slots)
    _check_offsets(res)


@needs_model
def test_preheat_has_temperature(nlu) -> None:
    res = nlu.parse("preheat the oven to two hundred degrees")
    assert "two hundred degrees" in res.slot_values("temperature")


@needs_model
def test_offsets_with_punctuation_and_case(nlu) -> None:
    text = "Turn off the Kitchen lights, please!"
    res = nlu.parse(text)
    assert res.intent == "iot_hue_lightoff"
    _check_offsets(res)
    assert res.slot_dict().get("house_place") == "Kitchen"


@needs_model
def test_nbest_sorted_and_probabilities(nlu) -> None:
    res = nlu.parse("play some jazz in the living room")
    assert len(res.nbest) == 5
    probs = [p for _, p in res.nbest]
    assert probs == sorted(probs, reverse=True)
    assert res.nbest[0] == (res.intent, res.confidence)
    assert 0.0 < sum(probs) <= 1.0 + 1e-6
    assert nlu.name == "onnx-joint-nlu" and nlu.version


@needs_model
def test_empty_and_long_text(nlu) -> None:
    assert nlu.parse("").intent == ""
    res = nlu.parse("turn on the lights " * 40)
    _check_offsets(res)


def test_missing_model_dir_gives_model_error(tmp_path) -> None:
    with pytest.raises(ModelError) as exc:
        OnnxJointNlu(tmp_path / "nope")
    msg = exc.value.message
    assert "model.onnx" in msg and "assistant train nlu" in msg


def test_annotation_parser_and_normalise() -> None:
    text, spans = parse_annotation("set an alarm for [time : nine am]  [date : tomorrow]")
    assert text == "set an alarm for nine am tomorrow"
    assert [(text[s:e], t) for s, e, t in spans] == [("nine am", "time"), ("tomorrow", "date")]
    assert normalise("What's  the TIME, now?") == "what's the time now"


@needs_model
@pytest.mark.skipif(not SLURP_TEST.exists(), reason="SLURP test data not available")
def test_accuracy_on_fixed_slurp_test_sample(nlu) -> None:
    rows = load_slurp(SLURP_TEST)
    sample = random.Random(1234).sample(rows, 300)
    m = evaluate(sample, nlu)
    assert m["n"] == 300
    assert m["intent_accuracy"] >= 0.80, format_report(m)
    assert m["slot"]["f1"] >= 0.5, format_report(m)
    assert "intent accuracy" in format_report(m)
