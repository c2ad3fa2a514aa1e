"""Goal labels (assistant/learning/labels): fast tests, no ML runtime (the shipped labeller is a few JSON files; the
counterfactual NLU re-runs and the rephrase detector are off here and on in tests/integration/test_labels_models.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from synth_traces import known_miss

from assistant.learning.labels.cases import CASES, write_case
from assistant.learning.labels.counterfactual import repair
from assistant.learning.labels.evaluate import segmentation_scores
from assistant.learning.labels.labeller import DEFAULT_MODEL_DIR, label_store
from assistant.learning.labels.lm import BigramLM, tokens
from assistant.learning.labels.model import Logistic
from assistant.learning.labels.report import defect_report
from assistant.learning.labels.truth import gold_goals, turn_class
from assistant.trace.schema import MIGRATIONS, SCHEMA_VERSION
from assistant.trace.store import TraceStore

needs_model = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "stage.json").is_file(), reason="models/labels not trained (assistant train labels)"
)


def test_logistic_learns_calibrated_probabilities_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    logits = np.stack([np.zeros(600), 2 * X[:, 0] - X[:, 1], -X[:, 0] + 1.5 * X[:, 2]], axis=1)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    m = Logistic.fit(X, y, ["a", "b", "c"], ["x", "y", "z"], l2=0.1)
    q = m.predict_proba(X)
    assert (q.argmax(axis=1) == y).mean() > 0.6
    assert abs(q[:, 1].mean() - (y == 1).mean()) < 0.03  # calibrated in the large
    assert np.abs(q - p).mean() < 0.08  # close to the true probabilities
    m.save(tmp_path / "m.json")
    assert np.allclose(Logistic.load(tmp_path / "m.json").predict_proba(X), q, atol=1e-4)
    yb = (X[:, 0] > 0).astype(int)
    mb = Logistic.fit(X, yb, ["a", "b", "c"], ["no", "yes"], l2=0.1)
    assert (mb.predict_proba(X).argmax(axis=1) == yb).mean() > 0.95


def test_migration_keeps_an_existing_store(tmp_path: Path) -> None:
    """A store at schema 2 (before goal labels) opens, keeps its turns and labels, and gains goal_labels."""
    path = tmp_path / "traces.db"
    db = sqlite3.connect(path)
    for sql in MIGRATIONS[:2]:
        db.executescript(sql)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO sessions VALUES ('s1', 'dev', 'u', 1.0, 2.0)")
    db.execute(
        "INSERT INTO turns(turn_id, session_id, seq, started_at, ended_at, source, pipeline, context, record) "
        "VALUES ('t1', 's1', 1, 1.0, 2.0, '{}', '{}', '{}', '{}')"
    )
    db.execute("INSERT INTO labels VALUES ('t1', 'ok', 0.6, '[]', 'signals-1', 3.0)")
    db.commit()
    db.close()
    store = TraceStore(path)
    assert store.schema_version == SCHEMA_VERSION >= 3
    assert store.count_turns() == 1 and store.get_label("t1")["label"] == "ok"
    assert store.get_goal_label("t1") is None


def test_truth_goals_and_classes() -> None:
    truth = {
        "a": {
            "episode": "e1",
            "t": "1",
            "attempt": 0,
            "role": "request",
            "outcome": "wrong",
            "defect": True,
            "failure_point": "asr",
        },
        "b": {
            "episode": "e1",
            "t": "2",
            "attempt": 1,
            "role": "rephrase",
            "outcome": "achieved",
            "defect": False,
            "failure_point": "correct",
        },
        "c": {
            "episode": "e2",
            "t": "3",
            "attempt": 0,
            "role": "request",
            "outcome": "clarify",
            "defect": False,
            "failure_point": "correct",
        },
        "d": {
            "episode": "fw",
            "t": "4",
            "attempt": 0,
            "role": "false_wake",
            "outcome": "false-wake",
            "defect": True,
            "failure_point": "false_wake",
        },
    }
    g = gold_goals(truth)
    assert g["e1"] == {"turns": ["a", "b"], "success": True, "false_wake": False}
    assert not g["e2"]["success"] and not g["fw"]["success"]  # a clarifying question left unanswered; a false wake
    assert [turn_class(truth[k]) for k in "abcd"] == ["asr", "correct", "correct", "false_wake"]


def test_segmentation_scores_exact_goals() -> None:
    s = segmentation_scores([["a", "b"], ["c"], ["d"]], [["a", "b"], ["c", "d"]])
    assert s["precision"] == pytest.approx(1 / 3, abs=1e-3) and s["recall"] == pytest.approx(1 / 2)
    assert s["link_precision"] == 1.0 and s["link_recall"] == 0.5


def test_repair_puts_misheard_words_right() -> None:
    fixed, changed = repair("Raise the lamp slide.", "raise the lamp's light")
    assert changed >= 1 and "light" in fixed.split()
    assert repair("turn on the light", "turn on the light") == ("turn on the light", 0)


def test_bigram_lm_prefers_requests_to_garble() -> None:
    lm = BigramLM.build(
        [
            "turn on the kitchen light",
            "turn off the light",
            "play some music",
            "set a timer for ten minutes",
            "what is the weather like",
        ]
        * 3
    )
    assert tokens("Set a timer for 10 minutes") == ["set", "a", "timer", "for", "<num>", "minutes"]
    good, bad = lm.score("turn on the light"), lm.score("tern of the lied slide")
    assert good["lm_logp"] > bad["lm_logp"] and bad["lm_oov"] > good["lm_oov"] == 0.0


def _labelled_cases(tmp_path: Path) -> tuple[TraceStore, dict[str, list[str]], dict]:
    store = TraceStore(tmp_path / "traces.db")
    ids = {c.name: write_case(store, c, t0=1_740_985_000.0 + 3600 * k) for k, c in enumerate(CASES)}
    res = label_store(store, detector=None, counterfactuals=False)
    return store, ids, res


@needs_model
@pytest.mark.parametrize("name", [pytest.param(c.name, marks=known_miss(c.name)) for c in CASES])
def test_hand_built_sessions(tmp_path: Path, name: str) -> None:
    """Each hand-built session: its goals, their success, and the failing stage of its defective turns."""
    case = next(c for c in CASES if c.name == name)
    store, ids, _res = _labelled_cases(tmp_path)
    labs = [store.get_goal_label(t) for t in ids[name]]
    goals: dict[str, list[int]] = {}
    for i, lab in enumerate(labs):
        goals.setdefault(lab["goal_id"], []).append(i)
    assert sorted(goals.values()) == case.goals
    firsts = [labs[g[0]]["goal_success"] >= 0.5 for g in case.goals]
    assert firsts == case.success
    for i, lab in enumerate(labs):
        assert set(lab["stage_probs"]) >= {"asr", "nlu", "result"}
        assert sum(lab["stage_probs"].values()) == pytest.approx(1.0, abs=1e-3)
        if i in case.defects:
            assert lab["defect"] >= 0.5 and lab["failure_point"] == case.stage
        elif case.stage != "false_wake":
            assert lab["defect"] < 0.5 and lab["failure_point"] is None


@needs_model
def test_label_store_is_idempotent_and_exported(tmp_path: Path) -> None:
    from assistant.trace.export import export

    store, ids, res = _labelled_cases(tmp_path)
    n = sum(len(v) for v in ids.values())
    assert res["turns"] == n and res["labeler_version"].startswith("labels-")
    first = {t: store.get_goal_label(t) for v in ids.values() for t in v}
    label_store(store, detector=None, counterfactuals=False)
    again = {t: store.get_goal_label(t) for v in ids.values() for t in v}
    assert {t: {k: v for k, v in d.items() if k != "created_at"} for t, d in first.items()} == {
        t: {k: v for k, v in d.items() if k != "created_at"} for t, d in again.items()
    }
    export(store, tmp_path / "out", "jsonl", data_dir=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "out" / "turns.jsonl").read_text().splitlines()]
    assert len(rows) == n
    asr_turn = next(r for r in rows if r["turn_id"] == ids["asr"][0])
    assert asr_turn["failure_point"] == "asr" and asr_turn["goal_id"] == first[ids["asr"][0]]["goal_id"]
    assert isinstance(asr_turn["failure_point_probs"], dict) and asr_turn["goal_labeler_version"]


@needs_model
def test_defect_report(tmp_path: Path) -> None:
    store, ids, _res = _labelled_cases(tmp_path)
    r = defect_report(store)
    assert r["turns"] == sum(len(v) for v in ids.values())
    stages = {s["stage"]: s["defects"] for s in r["by_stage"]}
    assert stages.get("asr", 0) >= 1 and stages.get("nlu", 0) >= 1 and stages.get("result", 0) >= 1
    assert "raise the lamp slide" in [x["text"] for x in r["top_failing_requests"]["asr"]]
    assert r["by_device"][0]["key"] == "kitchen.speaker" and r["failed_goals"] >= 1
    later = defect_report(store, since=1_740_985_000.0 + 3600 * 10)
    assert later["turns"] == 0


def test_marginal_wake_is_evidence_of_a_false_wake() -> None:
    """A wake score just over the threshold (the wake span's input) counts for false_wake, against a correct turn
    too: P(defect) rises with it. No wake stage (the simulator's turns), or a clear wake: no evidence."""
    from assistant.learning.labels.evidence import WAKE_MARGINAL_LR, combine_joint, wake_ratio
    from assistant.learning.labels.features import view

    def turn(score: float | None) -> dict:
        rec = {"transcript": "she said she would call him", "wake": None}
        spans = []
        if score is not None:
            rec["wake"] = {"detected": True, "score": score, "model": "hey_jarvis"}
            spans = [{"stage": "wake", "input": {"threshold": 0.5}, "output": rec["wake"]}]
        return {"turn_id": "t", "started_at": 0.0, "record": rec, "spans": spans, "events": []}

    assert view(turn(0.56)).wake_threshold == 0.5 and view(turn(0.56)).wake_score == 0.56
    assert wake_ratio(view(turn(0.56))) == {"false_wake": WAKE_MARGINAL_LR}
    assert wake_ratio(view(turn(0.93))) == {} and wake_ratio(view(turn(None))) == {}
    no_threshold = turn(0.56)
    no_threshold["spans"] = []
    assert wake_ratio(view(no_threshold)) == {}  # a score without the threshold it crossed says nothing

    probs = {"false_wake": 0.6, "asr": 0.3, "nlu": 0.1}
    d, p = combine_joint(0.3, probs, {"false_wake": 5.0})
    # joint: correct 0.7, false_wake 0.3 * 0.6 * 5 = 0.9, asr 0.09, nlu 0.03
    assert d == pytest.approx(1.02 / 1.72, abs=1e-6)
    assert p["false_wake"] == pytest.approx(0.9 / 1.02, abs=1e-4) and sum(p.values()) == pytest.approx(1.0, abs=1e-3)
    assert combine_joint(0.3, probs, {}) == (0.3, probs)


@needs_model
@known_miss("fw-marginal")
def test_false_wake_nobody_answered_is_found_from_a_marginal_wake(tmp_path: Path) -> None:
    """The hand-built false wake without its "Stop.": a TV line the device took for a request that nobody followed
    up. Heard after a wake score that only just crossed the threshold it is a false wake; after a clear wake the same
    turn is less likely a defect."""
    from dataclasses import replace

    fw = next(c for c in CASES if c.name == "false-wake")
    store = TraceStore(tmp_path / "traces.db")
    marginal = write_case(store, replace(fw, name="fw-marginal", turns=[replace(fw.turns[0], wake_score=0.56)]))
    clear = write_case(
        store, replace(fw, name="fw-clear", turns=[replace(fw.turns[0], wake_score=0.95)]), t0=1_740_995_000.0
    )
    label_store(store, detector=None, counterfactuals=False)
    m, c = store.get_goal_label(marginal[0]), store.get_goal_label(clear[0])
    assert m["defect"] >= 0.5 and m["failure_point"] == "false_wake"
    assert m["defect"] > c["defect"] and m["stage_probs"]["false_wake"] > c["stage_probs"]["false_wake"]
    assert m["goal_success"] < c["goal_success"]


def _view(text: str, response: str, status: str = "done", intent: str = "iot_cleaning", at: float = 0.0):
    from assistant.learning.labels.features import view

    rec = {"transcript": text, "intent": intent, "action": {"name": "vacuum.start", "status": status}}
    rec["response_text"] = response
    return view({"turn_id": f"{text}@{at}", "session_id": "s", "started_at": at, "ended_at": at + 1, "record": rec})


def test_an_answer_the_person_already_retried_after_is_flagged() -> None:
    """The third "robot vacuum living room" gets "Starting the vacuum cleaner." again: the person tried again after
    that answer twice, so it does not do now either. A retry with a new answer, or the feedback question on the same
    answer, is told apart."""
    from assistant.learning.labels.features import FEEDBACK_QUESTION, answer_share, repeats_a_retried_answer

    same = [_view("robot vacuum living room now", "Starting the vacuum cleaner.", at=k * 8.0) for k in range(3)]
    assert not repeats_a_retried_answer(same, 0)
    assert repeats_a_retried_answer(same, 1) and repeats_a_retried_answer(same, 2)
    asked = same[:1] + [_view("robot vacuum living room", f"Starting the vacuum cleaner. {FEEDBACK_QUESTION}", at=9.0)]
    assert repeats_a_retried_answer(asked, 1)
    fixed = same[:1] + [_view("vacuum the living room", "Vacuuming the living room.", at=9.0)]
    assert not repeats_a_retried_answer(fixed, 1)
    # and whether a reply answers a question: the words of one of the offered choices
    assert answer_share("Which light: the standing lamp or the main light?", "The main light.") == 1.0
    assert answer_share("Are you sure you want to open the garage door?", "What time is it?") == 0.0
