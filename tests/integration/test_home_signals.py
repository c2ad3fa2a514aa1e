"""Issue 13: the learning signals see home-control defects in real pipeline traces: an action that changed nothing,
and a reply followed by a manual correction ("no, all of them")."""

from __future__ import annotations

from datetime import datetime, timedelta

from assistant.learning.signals import SignalConfig, changed_nothing, iter_sessions, label_sessions

T0 = datetime(2026, 1, 5, 18, 0)


def _labels(p):
    labels = {}
    now = (T0 + timedelta(hours=1)).timestamp()
    for turn_id, label, _conf, _signals in label_sessions(iter_sessions(p.store), SignalConfig(), now):
        labels[turn_id] = label
    return labels


def test_correction_to_all_of_them_labels_the_reply_a_defect(make_pipeline):
    p = make_pipeline(load_audio_stages=False)
    p.home.set_state("kitchen.light", on=True)
    p.home.set_state("bedroom.light", on=True)
    first = p.run_text("turn off the light", now=T0)  # the kitchen speaker: the kitchen light
    assert first["action"]["status"] == "done" and not p.home.device("kitchen.light").state["on"]
    second = p.run_text("no, all of them", now=T0 + timedelta(seconds=4))
    assert not p.home.device("bedroom.light").state["on"]  # the correction is carried out
    labels = _labels(p)
    assert labels[first["turn_id"]] == "defect"
    assert labels[second["turn_id"]] != "defect"


def test_an_action_that_changed_nothing_is_a_defect_and_a_real_change_is_not(make_pipeline):
    p = make_pipeline(load_audio_stages=False)
    p.home.set_state("bedroom.light", on=True)
    ok = p.run_text("turn off the bedroom light", now=T0)
    assert changed_nothing(ok) is False
    # what the old answer did: "Turned off the kitchen light." for a light that was already off
    claimed = dict(ok, action={**ok["action"], "result": {"changed": {}}}, response_text="Turned off the light.")
    assert changed_nothing(claimed) is True
    from assistant.learning.signals import session_signals

    turns = [{"turn_id": "t", "started_at": 0.0, "ended_at": 1.0, "record": claimed, "events": []}]
    sig = session_signals(turns, now=100.0)["t"]
    assert [s["type"] for s in sig] == ["no-change"] and sig[0]["weight"] == 0.8
    assert _labels(p)[ok["turn_id"]] == "ok"
