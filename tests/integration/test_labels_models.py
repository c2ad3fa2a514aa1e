"""Goal labels with the real models: the counterfactual NLU re-runs (the pipeline's ONNX NLU), the learned rephrase
detector, and traces written by the real Runner from typed text."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assistant.learning.labels.cases import CASES, write_case
from assistant.learning.labels.counterfactual import Counterfactuals
from assistant.learning.labels.features import view
from assistant.learning.labels.labeller import DEFAULT_MODEL_DIR, label_store
from assistant.learning.labels.report import defect_report
from assistant.trace.store import TraceStore

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "stage.json").is_file(), reason="models/labels not trained (assistant train labels)"
)


def _turn(text: str, intent: str, status: str) -> dict:
    return {
        "turn_id": text,
        "session_id": "s",
        "started_at": 0.0,
        "ended_at": 0.5,
        "record": {
            "transcript": text,
            "intent": intent,
            "intent_confidence": 0.6,
            "action": {"name": "x", "status": status},
        },
        "spans": [],
        "events": [],
    }


def test_nlu_on_the_repaired_transcript_blames_the_words() -> None:
    """ "Raise the lamp slide." put right with the words of the rephrase that worked is understood: ASR evidence."""
    cf = Counterfactuals()
    heard = view(_turn("Raise the lamp slide.", "iot_cover_open", "failed"))
    target = view(_turn("Raise the lamp's light.", "iot_hue_lightup", "done"))
    assert cf.parse("Raise the lamp's light.")[0] == "iot_hue_lightup"
    f = cf.features(heard, target)
    assert f["cf_has_target"] == 1.0 and f["cf_words_changed"] >= 1 and f["cf_repair_fixes"] == 1.0
    assert cf.runs >= 1


@pytest.mark.parametrize(
    "name", ["false-wake", "asr", "nlu", "entity", "endpointing", "result", "ok-then-new", "clarify"]
)
def test_hand_built_sessions_with_models(tmp_path: Path, name: str) -> None:
    store = TraceStore(tmp_path / "traces.db")
    ids = {c.name: write_case(store, c, t0=1_740_985_000.0 + 3600 * k) for k, c in enumerate(CASES)}
    res = label_store(store)  # rephrase detector (models/rephrase) and counterfactual NLU on
    assert res["counterfactual_nlu_runs"] >= 1
    case = next(c for c in CASES if c.name == name)
    labs = [store.get_goal_label(t) for t in ids[name]]
    assert len({lab["goal_id"] for lab in labs}) == len(case.goals)
    for i, lab in enumerate(labs):
        if i in case.defects:
            assert lab["failure_point"] == case.stage
        elif case.stage != "false_wake":
            assert lab["failure_point"] is None


def test_runner_traces_are_labelled(make_pipeline) -> None:
    """Typed requests through the real Runner: two requests that work, then a request for a room the home does
    not have (the lights of the "garage") given up on: labelled as separate goals, the working ones successful."""
    runner = make_pipeline(load_audio_stages=False)
    t = datetime(2025, 3, 3, 7, 0, 0)
    ok1 = runner.run_text("turn on the kitchen light", now=t)
    ok2 = runner.run_text("set a timer for ten minutes", now=t + timedelta(seconds=45))
    bad = runner.run_text("turn on the garage light", now=t + timedelta(seconds=95))
    store = runner.store
    res = label_store(store)
    assert res["turns"] == 3 and res["goals"] == 3
    g1, g2, g3 = (store.get_goal_label(getattr(r, "turn_id", None) or r["turn_id"]) for r in (ok1, ok2, bad))
    assert g1["goal_success"] >= 0.5 and g2["goal_success"] >= 0.5 and g1["failure_point"] is None
    assert g3["goal_success"] < g1["goal_success"]
    report = defect_report(store)
    assert report["turns"] == 3 and report["goals"] == 3


def test_asr_failure_from_synthesized_audio(make_pipeline, settings) -> None:
    """Synthesized speech through the real Runner (Whisper tiny): "raise the lamp's light" heard as "...lamp slide"
    twice (espeak-ng, then Piper), then a new request 40 s later. The truth, by the simulator's definition: the NLU
    understands the spoken text (checked here with the same pipeline), so the failure point is asr."""
    from assistant.simulate.voices import espeak_speech, piper_speech

    cfg = settings.model_copy(
        update={"stages": [s for s in settings.stages if s in ("asr", "nlu", "resolve", "respond")]}
    )
    runner = make_pipeline(config=cfg)
    t = datetime(2025, 3, 3, 7, 0, 0)
    turns = [
        runner.run_audio(espeak_speech("raise the lamp's light", "en-us+f3", 150, 35), now=t),
        runner.run_audio(piper_speech("raise the lamp's light"), now=t + timedelta(seconds=6)),
        runner.run_audio(piper_speech("turn on the kitchen light"), now=t + timedelta(seconds=50)),
    ]
    rec = [r if isinstance(r, dict) else r.__dict__ for r in turns]
    if "slide" not in (rec[0].get("transcript") or "").lower():
        pytest.skip(f"the ASR heard {rec[0].get('transcript')!r} this time: not the failure this test is about")
    store = runner.store
    label_store(store)
    labs = [store.get_goal_label(r["turn_id"]) for r in rec]
    oracle = runner.run_text("raise the lamp's light", now=t + timedelta(hours=2))  # after labelling: not seen
    oracle = oracle if isinstance(oracle, dict) else oracle.__dict__
    assert oracle["intent"] != rec[0]["intent"]  # the words, not the understanding, were wrong
    assert labs[0]["goal_id"] == labs[1]["goal_id"] != labs[2]["goal_id"]
    assert labs[0]["goal_success"] < 0.5 <= labs[2]["goal_success"]
    assert labs[0]["failure_point"] == "asr" and labs[2]["failure_point"] is None
