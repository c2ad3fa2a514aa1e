""" "Are you sure?" in the simulator: goals that open the garage door or unlock the back door, the people who answer
yes, change their mind or walk away, and the truth (goal success, failure point) for each."""

from __future__ import annotations

import random

from assistant.home.model import EXAMPLE_HOME, Home
from assistant.learning.labels.truth import gold_goals
from assistant.simulate.goals import GoalBank
from assistant.simulate.ground_truth import Verdict, assess
from assistant.simulate.household import Member, VoiceSpec, feasible
from assistant.simulate.user import CONFIRM_NO, CONFIRM_YES, SimUser

HOME = Home.load(EXAMPLE_HOME)


def _goal(intent: str, device: str):
    (g,) = [g for g in GoalBank.load().by_intent[intent] if g.slots == {"device_type": device}]
    return g


def _rec(name, status, device_ids, transcript, intent="iot_cover_open", expects_reply=False):
    params = {"device_ids": device_ids}
    return {
        "transcript": transcript,
        "intent": intent,
        "intent_confidence": 0.99,
        "slots": {"device_type": "garage door"},
        "action": {"name": name, "status": status, "target": "+".join(device_ids), "params": params},
        "response_text": "Are you sure you want to open the garage door?" if name == "confirm" else "Done.",
        "expects_reply": expects_reply,
    }


def test_confirmed_goals_name_one_device_and_are_never_training_rows():
    garage, back = _goal("iot_cover_open", "garage door"), _goal("iot_cover_open", "back door")
    assert garage.spec.named_device and feasible(garage, HOME) and feasible(back, HOME)
    assert all("garage door" in u for u in garage.utterances) and all("back door" in u for u in back.utterances)
    assert _goal("iot_cover_close", "garage door").utterances
    no_garage = Home.load(EXAMPLE_HOME)
    del no_garage.devices["garage.door"]
    assert not feasible(garage, no_garage)


def test_the_question_about_the_named_device_is_right_and_about_another_is_the_resolution():
    g = _goal("iot_cover_open", "garage door")
    ask = _rec("confirm", "clarify", ["garage.door"], "open the garage door", expects_reply=True)
    v = assess(g, "open the garage door", ask, HOME, role="request")
    assert (v.outcome, v.defect) == ("clarify", False)
    wrong = _rec("confirm", "clarify", ["kitchen.back_door"], "open the garage door", expects_reply=True)
    v = assess(g, "open the garage door", wrong, HOME, role="request")
    assert v.defect and v.failure_point == "entity_resolution"
    # the yes carries it out; a yes that opens another door is no success
    yes = _rec("cover.open", "done", ["garage.door"], "Yes.")
    assert assess(g, "yes", yes, HOME, role="confirm_answer").outcome == "achieved"
    other = _rec("lock.unlock", "done", ["kitchen.back_door"], "Yes.")
    v = assess(g, "yes", other, HOME, role="confirm_answer")
    assert v.defect and v.failure_point == "result"
    unheard = _rec("none", "unsupported", [], "Jess.")
    assert assess(g, "yes", unheard, HOME, role="confirm_answer").failure_point == "asr"


def test_people_mostly_say_yes_sometimes_no_sometimes_walk_away():
    g = _goal("iot_cover_open", "garage door")
    member = Member("alex", "Alex", VoiceSpec("piper"), "quiet", ["kitchen"], ["kitchen"], {}, {})
    ask = _rec("confirm", "clarify", ["garage.door"], "open the garage door", expects_reply=True)
    ok = Verdict("clarify", False, "correct")
    kinds: dict[str, int] = {}
    for seed in range(400):
        r = SimUser(member, random.Random(seed)).react(g, ok, ask, ["open the garage door"], HOME)
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
        if r.kind == "confirm-answer":
            assert r.text in CONFIRM_YES
        elif r.kind == "cancel":
            assert r.text in CONFIRM_NO
        else:
            assert r.kind == "walk-away" and r.text is None
    assert set(kinds) == {"confirm-answer", "cancel", "walk-away"}
    assert kinds["confirm-answer"] > 0.7 * 400
    # a question about the wrong door is not answered yes: the person tries again
    wrong = _rec("confirm", "clarify", ["kitchen.back_door"], "open the garage door", expects_reply=True)
    bad = Verdict("wrong", True, "entity_resolution")
    r = SimUser(member, random.Random(1)).react(g, bad, wrong, ["open the garage door"], HOME)
    assert r.kind not in ("confirm-answer", "walk-away")


def test_goal_success_needs_the_yes():
    base = {"goal": {"intent": "iot_cover_open"}, "defect": False, "failure_point": "correct"}
    truth = {
        "a1": {**base, "episode": "a", "t": "1", "attempt": 0, "role": "request", "outcome": "clarify"},
        "a2": {**base, "episode": "a", "t": "2", "attempt": 1, "role": "confirm_answer", "outcome": "achieved"},
        "b1": {**base, "episode": "b", "t": "3", "attempt": 0, "role": "request", "outcome": "clarify"},
        "c1": {**base, "episode": "c", "t": "4", "attempt": 0, "role": "request", "outcome": "clarify"},
        "c2": {**base, "episode": "c", "t": "5", "attempt": 1, "role": "cancel", "outcome": "achieved"},
    }
    goals = gold_goals(truth)
    assert goals["a"]["success"] and not goals["b"]["success"] and not goals["c"]["success"]
