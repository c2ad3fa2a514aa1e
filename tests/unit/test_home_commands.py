"""Executing parsed home commands and scheduling them: truthful answers, persisted schedule. No models."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from assistant.core.context import TurnContext
from assistant.home import grammar
from assistant.home.model import Home
from assistant.skills import scheduled
from assistant.skills.home_commands import run_command

NOW = datetime(2026, 1, 5, 18, 0)


@pytest.fixture
def home():
    return Home.example()


def run(text, home, area="kitchen", previous=None, confirmed=False):
    cmd = grammar.parse(text, home, NOW)
    assert cmd is not None, text
    return run_command(cmd, home, area, previous, confirmed=confirmed)


def test_group_answer_counts_and_names(home):
    for d in ("kitchen.light", "hallway.light", "living_room.floor_lamp"):
        home.set_state(d, on=True)
    r, _ids = run("turn off all the lights downstairs", home)
    assert r.text.startswith("Turned off 3 lights on the ground floor")
    assert "the ceiling light was already off" in r.text
    assert r.action.result["changed"] == {
        d: {"on": False} for d in ("living_room.floor_lamp", "kitchen.light", "hallway.light")
    }


def test_already_and_nothing_changed(home):
    r, _ = run("turn off the kitchen light", home)
    assert r.text == "The kitchen light is already off." and r.action.result["changed"] == {}


def test_scene_sets_its_devices(home):
    r, _ = run("activate movie time", home)
    assert r.text == "Activated movie time."
    assert home.device("living_room.tv").state["on"] and home.device("living_room.floor_lamp").state["brightness"] == 30


def test_garage_door_opening_is_confirmed(home):
    r, _ = run("open the garage door", home)
    assert r.expects_reply and home.device("garage.door").state["position"] == "closed"
    r, _ = run("open the garage door", home, confirmed=True)
    assert home.device("garage.door").state["position"] == "open"


def test_a_door_already_as_asked_is_not_confirmed(home):
    run("open the garage door", home, confirmed=True)
    r, _ = run("open the garage door", home)
    assert not r.expects_reply and r.text == "The garage door is already open."
    home.set_state("kitchen.back_door", locked=False)
    r, _ = run("unlock the back door", home)
    assert not r.expects_reply and r.text == "The back door is already unlocked."
    home.set_state("kitchen.back_door", locked=True)
    r, _ = run("unlock the back door", home)
    assert r.expects_reply and home.device("kitchen.back_door").state["locked"] is True


def test_questions(home):
    home.set_state("bedroom.window", position="open", open_percent=40)
    assert run("how many windows are open", home)[0].text == "One window is open: the bedroom window."
    assert run("is the back door locked", home)[0].text == "Yes, the back door is locked."
    assert run("what's the battery of the smoke alarm", home)[0].text == "The smoke alarm battery is at 76 percent."
    assert "11 degrees" in run("what's the temperature outside", home)[0].text
    assert "21.5 degrees" in run("what's the temperature in the living room", home)[0].text


def test_schedule_persists_lists_cancels_and_runs(tmp_path, home):
    ctx = TurnContext(home=home, device_id="kitchen.speaker", user_id="u", now=NOW, session_id="s", data_dir=tmp_path)
    home.set_state("bedroom.blinds", position="open", open_percent=100)
    cmd = grammar.parse("at 7 pm close the blinds", home, NOW)
    r = scheduled.schedule(cmd, ctx, "kitchen", [])
    assert r.text == "Okay, at 7 PM I'll close the bedroom blinds."
    cmd = grammar.parse("in 5 minutes turn on the kitchen light", home, NOW)
    scheduled.schedule(cmd, ctx, "kitchen", [])
    assert "2 scheduled actions" in scheduled.list_response(tmp_path, NOW).text
    cancelled = scheduled.cancel_response(tmp_path, NOW, {"all": False, "what": "kitchen light"})
    assert cancelled.text.startswith("Cancelled")
    fresh = Home.example()  # a restart: the schedule is in the data dir, not in memory
    fresh.set_state("bedroom.blinds", position="open", open_percent=100)
    assert scheduled.run_due(NOW + timedelta(minutes=30), fresh, tmp_path, run_command) == []
    ran = scheduled.run_due(NOW + timedelta(hours=1, seconds=1), fresh, tmp_path, run_command)
    assert [r["description"] for r in ran] == ["close the bedroom blinds"]
    assert fresh.device("bedroom.blinds").state["position"] == "closed"
    assert not fresh.device("kitchen.light").state["on"]  # the cancelled one never ran


def test_several_devices_and_a_lock_by_its_door_sensor():
    fh = Home.load(Home.example().source.parent / "family_house.yaml")
    r, ids = run("lock the front door and the back door", fh)
    assert set(ids) == {"lock.front", "lock.back"} and "already locked" in r.text
    assert fh.report("binary.front_door", detected=True) == {"detected": True}
    assert run("is the front door open", fh)[0].text == "Yes, the front door sensor is open."
    r, _ = run("unlock the front door", fh)
    assert r.expects_reply and fh.device("lock.front").state["locked"] is True
