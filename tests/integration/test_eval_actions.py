"""`assistant eval actions`: the scorer judges the home state a request leaves (real NLU through the pipeline)."""

from __future__ import annotations

import json

from assistant.home.eval_actions import DEFAULT_SUITE, load_suite, run_suite


def _write(tmp_path, cases):
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    return path


def test_scorer_counts_right_wrong_device_and_no_action(tmp_path):
    cases = [
        {
            "id": "ok",
            "text": "turn on the kitchen light",
            "form": "on_off",
            "expect": {"changes": {"kitchen.light": {"on": True}}},
        },
        # a suite that expects the wrong device: the assistant's (right) action is a wrong-device action for it
        {
            "id": "wrong",
            "text": "turn on the kitchen light",
            "form": "on_off",
            "expect": {"changes": {"bedroom.light": {"on": True}}},
        },
        {
            "id": "none",
            "text": "what time is it",
            "form": "on_off",
            "expect": {"changes": {"kitchen.light": {"on": True}}},
        },
        {
            "id": "delay",
            "home": "example",
            "text": "in five minutes turn on the desk lamp",
            "form": "delayed",
            "advance_s": 301,
            "expect": {"changes": {"office.desk_lamp": {"on": True}}},
        },
        {"id": "q", "text": "is the back door locked", "form": "state_query", "expect": {"says": ["yes"]}},
    ]
    m = run_suite(load_suite(_write(tmp_path, cases)))
    assert m["cases"] == 5 and m["action_accuracy"] == 0.6
    assert m["wrong_device_actions"] == 1 and m["no_action_answers"] == 1
    failed = {r["id"] for r in m["failures"]}
    assert failed == {"wrong", "none"}
    assert m["per_form"]["delayed"]["accuracy"] == 1.0


def test_shipped_suite_is_large_and_covers_both_homes():
    cases = load_suite(DEFAULT_SUITE)
    assert len(cases) >= 400
    assert {c.get("home") for c in cases} == {"example", "family_house"}
    assert len({c["form"] for c in cases}) >= 25
