"""Typed text through the real runner (rewrite, the real NLU, resolver, reranker, skills; no TTS) with Hypothesis:
any text gives a record with an intent and an answer, or a coded error in the record, never an exception; the trace
store holds every turn. Also the export reader over exported turns. FUZZ_EXAMPLES multiplies the bounded counts."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
WORDS = [
    "turn",
    "on",
    "off",
    "the",
    "kitchen",
    "light",
    "lights",
    "what",
    "time",
    "is",
    "it",
    "in",
    "tokyo",
    "set",
    "a",
    "timer",
    "for",
    "ten",
    "minutes",
    "play",
    "jazz",
    "weather",
    "tomorrow",
    "add",
    "milk",
    "to",
    "my",
    "shopping",
    "list",
    "alarm",
    "seven",
    "am",
    "cancel",
    "stop",
    "yes",
    "no",
    "springfield",
    "bedroom",
    "all",
    "and",
    "then",
    "it",
    "them",
    "here",
    "%",
    "¿",
    "🙂",
    "ß",
    "İ",
    "\u200b",
    "'",
    "-",
    "42",
    "3.5",
    "½",
]
TEXTS = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=25).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60),
    st.builds(lambda a, b: a + b, st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join), st.text(max_size=30)),
)
COUNT = {"turns": 0, "errors": 0}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from assistant.config import DEFAULT_HOME, load_settings
    from assistant.core import registry
    from assistant.core.runner import Runner

    s = load_settings()
    s = s.model_copy(update={"stages": [x for x in s.stages if x not in ("wake", "vad", "asr", "tts")]})
    nlu = registry.create("nlu", s.nlu.backend, registry.Build(settings=s))
    r = Runner(
        s, DEFAULT_HOME, data_dir=tmp_path_factory.mktemp("fuzzdata"), load_audio_stages=False, backends={"nlu": nlu}
    )
    yield r
    r.close()
    print(f"\ntyped-text fuzz: {COUNT['turns']} turns, {COUNT['errors']} with a coded error in the record")


@settings(
    max_examples=int(300 * SCALE),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(TEXTS)
def test_any_typed_text_gives_an_answer_or_a_coded_error(pipeline, text):
    before = pipeline.store.count_turns()
    rec = pipeline.run_text(text)  # must not raise
    COUNT["turns"] += 1
    if rec["error"]:
        COUNT["errors"] += 1
        assert rec["error"]["code"] and rec["error"]["message"] and rec["error"]["stage"]
        assert not rec["error"]["code"].endswith("-failed"), rec["error"]  # a crash inside a stage is a bug
    else:
        assert rec["intent"] and 0.0 <= rec["intent_confidence"] <= 1.0 and rec["response_text"]
    assert pipeline.store.count_turns() == before + 1


@pytest.mark.parametrize(
    "fmt",
    [
        "parquet",
        "jsonl",
    ],
)
def test_the_export_of_fuzzed_turns_is_read_by_the_miner(pipeline, tmp_path, fmt):
    """Whatever text went in, the export is readable by the learning jobs' reader (DuckDB)."""
    from assistant.learning.mining import mine
    from assistant.trace.export import export

    for text in ["turn on the kitchen light", "'; DROP TABLE turns; --", "\x00\x01", "🙂 " * 50, "İ\u200b"]:
        pipeline.run_text(text)
    manifest = export(pipeline.store, tmp_path, fmt, data_dir=pipeline.data_dir)
    assert manifest["rows"] == pipeline.store.count_turns()
    mined = mine(tmp_path / manifest["file"])
    assert 1 <= mined.stats["turns"] <= manifest["rows"]  # the miner read the rows (it keeps those with words)
