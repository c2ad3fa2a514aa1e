"""The weekly self-learning loop (assistant/simulate/retrain_loop.py) on the real NLU / resolver / skills / embedder.

As in test_rewrite_ab.py, speech and ASR are a fake for speed and control: the recogniser mishears one phrasing the
same way every time ("turn off the kitchen light" -> "turn of the kitchen lie"); the simulated person rephrases it
and succeeds. Week 0 is shared; in week 1 the arm that learns nothing fails as often as in week 0, the arm that mines
rewrites from its own week 0 fixes the mishearing, and the retraining arm runs week 1 on the NLU version it promoted
(the training itself is a fake here: it copies the shipped model; tests/integration/test_retrain_nlu.py trains)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from test_rewrite_ab import GOAL, GarblingAsr  # the ear that mishears one phrasing, and its goal

from assistant.simulate import speech_cache
from assistant.simulate.goals import Goal
from assistant.simulate.retrain_loop import LoopConfig, RetrainLoop, merge_traces, report, to_markdown
from assistant.simulate.run import Simulator, _Item

OTHER = Goal(
    "iot_hue_lighton:test", "iot_hue_lighton", {"house_place": "kitchen"}, ["turn on the kitchen light"], ["test"]
)


def _agenda(self, hh, day, rng):
    """Every day: the light off (misheard the first time), on again, off again, on again."""
    m = hh.members[0]
    m.p_rephrase, m.p_repeat, m.p_cancel, m.p_barge_in, m.max_tries = 1.0, 0.0, 0.0, 0.0, 3
    m.phrasing[GOAL.goal_id] = 0
    t = self.cfg.start + timedelta(days=day, hours=7)
    return [
        _Item(t + timedelta(minutes=30 * i), m, goal, m.usual_rooms[0], routine=True)
        for i, goal in enumerate([GOAL, OTHER, GOAL, OTHER])
    ]


def _copying_trainer(out: Path, **kw) -> dict:
    """Stands in for the warm-started training: the candidate is the model it starts from."""
    shutil.copytree(kw["init"], out, dirs_exist_ok=True)
    assert kw["extra_rows"], "the retraining must train on labels generated from the arm's own traces"
    return {"version": "copy", "data": {"extra_rows": len(kw["extra_rows"])}}


def _passing_scorers() -> dict:
    """The gates' scores: the candidate gets one more held-out turn right and holds the rest (the real scorers are
    tested in tests/unit/test_turn_labels.py and test_retrain_nlu.py)."""

    def candidate(d: Path) -> bool:
        return d.parent.name == "candidates"

    return {
        "heldout_sim": lambda d: {"right": 10 + candidate(d), "turns": 20},
        "slurp_test": lambda d: {"intent_accuracy": 0.87},
        "actions": lambda d: {"action_accuracy": 1.0},
        "spoken": lambda d: {"intent_accuracy": 0.78},
    }


@pytest.fixture
def loop(make_pipeline, settings, tmp_path, monkeypatch):
    from assistant.core import registry

    registry.register("asr", "garbling", lambda build: GarblingAsr())
    settings = settings.model_copy(update={"asr": settings.asr.model_copy(update={"backend": "garbling"})})
    monkeypatch.setattr(
        speech_cache,
        "synthesize",
        lambda text, voice, noise, seed=0: np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int16),
    )
    monkeypatch.setattr(Simulator, "_agenda", _agenda)
    cfg = LoopConfig(
        households=1,
        weeks=2,
        days_per_week=3,
        arms=("none", "rewrites", "rewrites+retrain"),
        heldout_households=1,
        heldout_days=1,
        shared_goals=0,
        false_wake_rate=0.0,
        feedback_rate=0.0,
        cut_off_rate=0.0,
        min_support=2,
        min_confidence=0.0,
        min_rows=1,
    )
    yield RetrainLoop(
        settings, tmp_path / "loop", cfg, tmp_path / "cache", trainer=_copying_trainer, scorers=_passing_scorers()
    )
    registry.unregister("asr", "garbling")


def _turns(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(*) FROM turns").fetchone()[0]


def test_each_arm_learns_from_its_own_weeks(loop: RetrainLoop) -> None:
    res = loop.run()
    w = res["weeks"]
    week0 = w["none"][0]
    assert week0["defects"] >= 3, week0  # the mishearing, every morning
    # nothing learned: week 1 fails as week 0 did (the same agendas)
    assert w["none"][1]["defect_rate"] == pytest.approx(week0["defect_rate"])
    assert w["none"][1]["rewritten_turns"] == 0 and w["none"][1]["nlu_model"] == "nlu"
    # rewrites mined from week 0 fix the mishearing in week 1
    rw = w["rewrites"][1]
    assert rw["rewrites"]["rewrites"] >= 1 and rw["rewritten_turns"] >= 3
    assert rw["defect_rate"] < week0["defect_rate"]
    # the retraining arm promoted a version through the gates and ran week 1 on it
    both = w["rewrites+retrain"][1]
    assert both["retrain"]["promoted"] and both["retrain"]["version"] == 1 and both["nlu_model"] == "v1"
    assert both["retrain"]["gates"]["heldout_sim"]["passed"]
    # each arm's store holds its weeks 0 and 1, nothing of the other arms'
    for arm in ("none", "rewrites", "rewrites_retrain"):
        week1 = loop.out / arm / "week1" / "traces.db"
        assert _turns(loop.out / arm / "traces.db") == week0["turns"] + _turns(week1)
    assert (loop.out / "loop_result.json").is_file()
    assert "| 1 |" in to_markdown(res)
    pooled = {a["arm"]: a for a in res["pooled"]["arms"]}
    assert pooled["rewrites"]["relative_reduction_vs_none"] > 0  # `none` is the first arm: the baseline
    assert "ci95" in pooled["rewrites"] and report(loop.out)["pooled"] == res["pooled"]


def test_merging_a_store_twice_is_refused(loop: RetrainLoop, tmp_path: Path) -> None:
    loop.cfg.weeks, loop.cfg.arms = 2, ("none",)
    loop.run()
    arm = loop.out / "none"
    n = _turns(arm / "traces.db")
    with pytest.raises(ValueError, match="already in"):
        merge_traces(arm / "traces.db", arm / "week1" / "traces.db")
    assert _turns(arm / "traces.db") == n  # nothing half-added


def test_bad_arms_and_too_few_weeks_are_refused(settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown arms"):
        RetrainLoop(settings, tmp_path, LoopConfig(arms=("retrian",)))
    with pytest.raises(ValueError, match="at least 2"):
        RetrainLoop(settings, tmp_path, LoopConfig(weeks=1))
