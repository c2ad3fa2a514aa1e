"""Turn labels from the dialogue context (issue 23): rephrase alignment, confirmation, what is never labelled, opt-out
and deletion, and the retraining gates. Hand-built sessions written into a real SQLite trace store; the goal
labeller's output is given (its own models are tested in test_labels.py) except in the store-level tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import AssistantError
from assistant.learning import nlu_retrain
from assistant.learning.labels.cases import Case, T, write_case
from assistant.learning.labels.features import view
from assistant.learning.labels.labeller import Labeller, SessionInput, TurnLabel
from assistant.learning.labels.turn_labels import (
    TurnLabelModel,
    align_slots,
    propose_session,
    turn_extra,
)
from assistant.learning.signals import SignalConfig, iter_sessions, session_signals
from assistant.trace.privacy import opt_in, opt_out
from assistant.trace.store import TraceStore


def _sessions(store: TraceStore) -> list[tuple[SessionInput, dict]]:
    out = []
    for turns, n in iter_sessions(store):
        sig = session_signals(turns, SignalConfig())
        views = [view(t, sig[t["turn_id"]]) for t in turns[:n]]
        out.append((SessionInput(views, {}), {t["turn_id"]: turn_extra(t) for t in turns[:n]}))
    return out


def _labels(s: SessionInput, goals: list[list[int]], defects: list[float], success: float) -> list[TurnLabel]:
    out = [None] * len(s.views)
    for gi, g in enumerate(goals):
        for pos, i in enumerate(g):
            out[i] = TurnLabel(s.views[i].turn_id, f"g{gi}", pos, success, defects[i], None, {"nlu": 1.0})
    return out  # type: ignore[return-value]


def _one(tmp_path: Path, turns: list[T]) -> tuple[SessionInput, dict, list[str]]:
    store = TraceStore(tmp_path / "traces.db")
    ids = write_case(store, Case("c", "nlu", turns, [], [], []))
    ((s, ex),) = _sessions(store)
    store.close()
    return s, ex, ids


def test_align_slots_finds_the_rephrase_values_in_the_failed_words() -> None:
    text = "turn on the lamp in the livin room"
    spans, found = align_slots({"device_type": "lamp", "house_place": "living room"}, text)
    assert found == 2
    assert {text[a:b]: t for a, b, t in spans} == {"lamp": "device_type", "livin room": "house_place"}
    # a value the failed request does not contain is left out, not forced onto some other word
    spans, found = align_slots({"artist_name": "bruno mars", "music_genre": "jazz"}, "play something by bruno mars")
    assert found == 1 and [("bruno mars", "artist_name")] == [
        (t[a:b], ty) for a, b, ty in spans for t in ["play something by bruno mars"]
    ]


def test_failed_request_takes_the_successful_rephrase_intent_and_aligned_slots(tmp_path: Path) -> None:
    s, ex, ids = _one(
        tmp_path,
        [
            T(
                "turn on the lamp in the livin room",
                "general_quirky",
                conf=0.41,
                status="unsupported",
                response="Sorry, I can't do that.",
            ),
            T(
                "switch on the lamp in the living room",
                "iot_hue_lighton",
                conf=0.97,
                at=6.0,
                action="light.on",
                slots={"device_type": "lamp", "house_place": "living room"},
                response="Turned on the lamp.",
            ),
        ],
    )
    props = propose_session(s, _labels(s, [[0, 1]], [0.9, 0.05], 0.95), ex)
    by = {p.turn_id: p for p in props}
    failed, ok = by[ids[0]], by[ids[1]]
    assert (
        failed.source == "rephrase" and failed.intent == "iot_hue_lighton" and failed.parsed_intent == "general_quirky"
    )
    assert failed.slots == {"device_type": "lamp", "house_place": "livin room"}
    assert {failed.text[a:b] for a, b, _ in failed.spans} == {"lamp", "livin room"}
    # the successful turn confirms its own parse
    assert ok.source == "confirmed" and ok.intent == "iot_hue_lighton"
    assert ok.slots == {"device_type": "lamp", "house_place": "living room"}
    row = failed.to_row()
    assert row["intent"] == "iot_hue_lighton" and row["source"] == "traces:rephrase" and len(row["spans"]) == 2


def test_an_unrelated_later_request_in_the_same_goal_never_labels_an_earlier_one(tmp_path: Path) -> None:
    # the bundled demo: requests seconds apart that the segmentation (and the rephrase detector) took for one goal;
    # "what time is it?" must not teach the NLU that "turn on the kitchen lights" meant datetime_query
    s, ex, ids = _one(
        tmp_path,
        [
            T("turn on the kitchen lights", "iot_hue_lighton", conf=0.99, nbest=[("iot_hue_lighton", 0.99)]),
            T("what time is it", "datetime_query", conf=0.99, at=5.0, action="time", response="It's 2:44 AM."),
        ],
    )
    s.pairs[(ids[0], ids[1])] = 0.89  # what the learned detector said on the demo
    props = propose_session(s, _labels(s, [[0, 1]], [0.9, 0.05], 0.95), ex)
    first = {p.turn_id: p for p in props}[ids[0]]
    assert first.source != "rephrase" and first.intent == "iot_hue_lighton"


def test_correction_relabels_a_request_the_nlu_took_for_a_control_intent(tmp_path: Path) -> None:
    s, ex, ids = _one(
        tmp_path,
        [
            T("make the hall light brighter please", "general_repeat", conf=0.55, response="I said: OK."),
            T(
                "no I said make the hall light brighter",
                "iot_hue_lightup",
                conf=0.93,
                at=5.0,
                slots={"house_place": "hall"},
                action="light.brighten",
                response="Brightened the hall light.",
            ),
            T("stop", "general_commandstop", conf=0.99, at=12.0, action="stop", response="Okay."),
        ],
    )
    props = propose_session(s, _labels(s, [[0, 1, 2]], [0.85, 0.1, 0.1], 0.9), ex)
    by = {p.turn_id: p for p in props}
    assert by[ids[0]].source == "correction" and by[ids[0]].intent == "iot_hue_lightup"
    assert by[ids[0]].slots == {"house_place": "hall"}
    assert ids[2] not in by  # "stop" is no request: never labelled


def test_clarification_answer_is_not_labelled_and_confirms_the_request(tmp_path: Path) -> None:
    s, ex, ids = _one(
        tmp_path,
        [
            T(
                "turn on the light",
                "iot_hue_lighton",
                conf=0.9,
                status="clarify",
                expects_reply=True,
                response="Which one: the kitchen light or the hall light?",
            ),
            T(
                "the kitchen one",
                "general_affirm",
                conf=0.6,
                at=3.0,
                action="light.on",
                response="Turned on the kitchen light.",
            ),
        ],
    )
    props = propose_session(s, _labels(s, [[0, 1]], [0.6, 0.1], 0.9), ex)
    assert [(p.turn_id, p.source, p.intent) for p in props] == [(ids[0], "clarified", "iot_hue_lighton")]


def test_failure_without_a_later_success_keeps_its_parse_with_less_confidence(tmp_path: Path) -> None:
    s, ex, ids = _one(
        tmp_path,
        [
            T("play some smooth jazz", "play_music", conf=0.9, slots={"music_genre": "jazz"}, action="music.play"),
            T(
                "what's the weather on mars tomorrow",
                "weather_query",
                conf=0.9,
                at=30.0,
                status="failed",
                response="Sorry, that didn't work.",
            ),
        ],
    )
    props = propose_session(s, _labels(s, [[0], [1]], [0.05, 0.9], 0.5), ex)
    TurnLabelModel(None).score(props)
    by = {p.turn_id: p for p in props}
    assert by[ids[1]].source == "unconfirmed" and by[ids[1]].intent == "weather_query"
    assert by[ids[0]].confidence > 0.5 > by[ids[1]].confidence


# -- store level: privacy -------------------------------------------------------------------------------------------
def _store_with_users(tmp_path: Path) -> tuple[TraceStore, dict[str, list[str]]]:
    store = TraceStore(tmp_path / "traces.db")
    ids = {}
    for k, user in enumerate(("alice", "bob")):
        case = Case(
            user,
            "nlu",
            [
                T(
                    "turn on the kitchen light",
                    "iot_hue_lighton",
                    slots={"house_place": "kitchen"},
                    action="light.on",
                    response="Turned on the kitchen light.",
                ),
                T("what time is it", "datetime_query", at=40.0, action="time.query", response="It is 9 o'clock."),
            ],
            [],
            [[0], [1]],
            [True, True],
        )
        ids[user] = write_case(store, case, t0=1_740_985_000.0 + 3600 * k, user=user)
    return store, ids


def _build(store: TraceStore, data_dir: Path) -> set[str]:
    cfg = nlu_retrain.RetrainConfig(min_confidence=0.0)
    lab = Labeller.load(counterfactuals=False)
    rows, stats, turn_ids = nlu_retrain.build_training_set(store, data_dir, cfg, lab, None, TurnLabelModel(None))
    assert len(rows) == stats["labels"] and stats["users"] == len({i for i in turn_ids}) // 2
    assert all("user" not in r and "turn_id" not in r for r in rows)  # rows carry no one's id
    return turn_ids


def test_opted_out_users_turns_are_not_in_the_training_set(tmp_path: Path) -> None:
    store, ids = _store_with_users(tmp_path)
    data_dir = tmp_path / "data"
    assert _build(store, data_dir) == set(ids["alice"]) | set(ids["bob"])
    opt_out(data_dir, "bob")  # opted out, turns kept in the store (--keep): still never trained on
    assert _build(store, data_dir) == set(ids["alice"])
    store.close()


def test_deleted_turns_leave_the_next_training_set(tmp_path: Path) -> None:
    store, ids = _store_with_users(tmp_path)
    data_dir = tmp_path / "data"
    opt_out(data_dir, "alice", store)  # deletes what was recorded
    opt_in(data_dir, "alice")  # recorded again from now on: the deletion alone keeps the old turns out
    assert _build(store, data_dir) == set(ids["bob"])
    store.close()


# -- gates, promotion, rollback -------------------------------------------------------------------------------------
def _fake_trainer(out: Path, **kw) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(b"candidate")
    (out / "labels.json").write_text(json.dumps({"intents": [], "slot_tags": ["O"], "version": "cand"}))
    (out / "MODEL_CARD.md").write_text("# candidate\n")
    assert kw["extra_rows"] and kw["init"] is not None and kw["epochs"] == 1
    return {"version": "cand", "data": {"extra_rows": len(kw["extra_rows"])}}


def _scorers(better: bool) -> dict:
    def score(gate: str, key: str, cur: float, new: float):
        return lambda d: {
            key: new if (d.name != "nlu" and (Path(d) / "model.onnx").read_bytes() == b"candidate") else cur,
            "turns": 100,
        }

    return {
        "heldout_sim": score("heldout_sim", "right", 60, 64 if better else 58),
        "slurp_test": score("slurp_test", "intent_accuracy", 0.8695, 0.8671),
        "actions": score("actions", "action_accuracy", 0.95, 0.95),
        "spoken": score("spoken", "intent_accuracy", 0.79, 0.78),
    }


def test_a_worse_model_is_refused_and_a_better_one_promoted_then_rolled_back(tmp_path: Path) -> None:
    store, _ids = _store_with_users(tmp_path)
    data_dir = tmp_path / "data"
    cfg = nlu_retrain.RetrainConfig(min_confidence=0.0, min_rows=1)
    lab = Labeller.load(counterfactuals=False)
    kw = dict(trainer=_fake_trainer, labeller=lab, detector=None, label_model=TurnLabelModel(None), progress=False)
    worse = nlu_retrain.retrain(store, data_dir, cfg, scorers=_scorers(better=False), **kw)
    assert not worse["promoted"] and not worse["gates"]["heldout_sim"]["passed"]
    assert nlu_retrain.current_version(data_dir) is None
    assert nlu_retrain.current_model_dir(data_dir) == nlu_retrain.SHIPPED
    assert "Promoted: **no**" in (Path(worse["candidate_dir"]) / "MODEL_CARD.md").read_text()

    better = nlu_retrain.retrain(store, data_dir, cfg, scorers=_scorers(better=True), **kw)
    assert better["promoted"] and better["version"] == 1 and all(g["passed"] for g in better["gates"].values())
    assert nlu_retrain.current_model_dir(data_dir) == data_dir / "nlu" / "v1"
    card = (data_dir / "nlu" / "v1" / "MODEL_CARD.md").read_text()
    assert "Data window" in card and "Generated labels" in card and "| heldout_sim |" in card
    from assistant.backends.nlu.onnx_joint import promoted_model_dir

    assert promoted_model_dir(data_dir) == data_dir / "nlu" / "v1"
    nlu_retrain.rollback(data_dir, 0)
    assert promoted_model_dir(data_dir) is None and nlu_retrain.current_model_dir(data_dir) == nlu_retrain.SHIPPED
    with pytest.raises(AssistantError):
        nlu_retrain.rollback(data_dir, 7)
    store.close()


def test_gate_margins() -> None:
    cfg = nlu_retrain.RetrainConfig()
    cur = {
        "heldout_sim": {"right": 50, "turns": 90},
        "slurp_test": {"intent_accuracy": 0.87},
        "actions": {"action_accuracy": 0.9},
        "spoken": {"intent_accuracy": 0.79},
    }
    ok = {
        "heldout_sim": {"right": 51, "turns": 90},
        "slurp_test": {"intent_accuracy": 0.866},
        "actions": {"action_accuracy": 0.895},
        "spoken": {"intent_accuracy": 0.775},
    }
    assert all(g["passed"] for g in nlu_retrain.check_gates(cur, ok, cfg).values())
    slurp_worse = dict(ok, slurp_test={"intent_accuracy": 0.864})
    assert not nlu_retrain.check_gates(cur, slurp_worse, cfg)["slurp_test"]["passed"]
    tie = dict(ok, heldout_sim={"right": 50, "turns": 90})
    assert not nlu_retrain.check_gates(cur, tie, cfg)["heldout_sim"]["passed"]
    missing = {k: v for k, v in ok.items() if k != "spoken"}
    assert not nlu_retrain.check_gates(cur, missing, cfg)["spoken"]["passed"]


def test_contrastive_pretraining_tells_real_pairs_from_swapped_answers(tmp_path: Path) -> None:
    from assistant.learning.labels.contrastive import Contrastive, pretrain

    kinds = [
        ("turn on the {} light", "iot_hue_lighton", "light.on", "Turned on the {} light."),
        ("what's the weather in {}", "weather_query", "weather.query", "It is sunny in {}."),
        ("play some {} music", "play_music", "music.play", "Playing {} music."),
    ]
    fill = ["kitchen", "paris", "jazz", "hall", "london", "rock", "bedroom", "rome", "folk"]
    turns = [
        {"session": f"s{k}-{i}", "transcript": t.format(w), "intent": it, "action": a, "response": r.format(w)}
        for k, (t, it, a, r) in enumerate(kinds)
        for i, w in enumerate(fill)
    ]
    cx = pretrain(turns)
    real = cx.features("turn on the study light", "iot_hue_lighton", "iot_hue_lighton", "light.on", "Turned on.")
    swapped = cx.features(
        "turn on the study light", "weather_query", "iot_hue_lighton", "weather.query", "It is sunny."
    )
    assert real["cx_parse_fit"] > 0.5 > swapped["cx_parse_fit"]
    assert real["cx_answer_fit"] > swapped["cx_answer_fit"]
    assert swapped["cx_label_gain"] > 0  # the label fits the words better than the (wrong) parse did
    cx.save(tmp_path / "cx.json")
    again = Contrastive.load(tmp_path / "cx.json")
    assert (
        abs(
            again.features("play some jazz music", "play_music", "play_music", "music.play", "Playing.")["cx_parse_fit"]
            - cx.features("play some jazz music", "play_music", "play_music", "music.play", "Playing.")["cx_parse_fit"]
        )
        < 0.01
    )
