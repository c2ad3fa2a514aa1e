"""Issue 13 through the whole pipeline (real NLU, resolver, reranker, skills; real ASR for the spoken case):
what a turn leaves in the home is what counts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

NOW = datetime(2026, 1, 5, 18, 0)
LIGHTS = (
    "living_room.floor_lamp",
    "living_room.ceiling_light",
    "kitchen.light",
    "bedroom.light",
    "office.desk_lamp",
    "hallway.light",
)


def _changed(before: dict, after: dict) -> dict:
    return {
        k: {kk: vv for kk, vv in after[k].items() if before[k].get(kk) != vv} for k in after if after[k] != before[k]
    }


def _turn(p, text, now=NOW):
    before = p.home.states()
    rec = p.run_text(text, now=now)
    return rec, _changed(before, p.home.states())


@pytest.fixture
def p(make_pipeline):
    return make_pipeline(load_audio_stages=False)


def test_turn_off_all_the_lights_turns_off_every_light(p):
    p.home.set_state("bedroom.light", on=True)
    p.home.set_state("living_room.floor_lamp", on=True)
    rec, changed = _turn(p, "turn off all the lights")
    assert changed == {"bedroom.light": {"on": False}, "living_room.floor_lamp": {"on": False}}
    assert all(not p.home.device(d).state["on"] for d in LIGHTS)
    assert "floor lamp" in rec["response_text"] and "bedroom light" in rec["response_text"]
    assert rec["action"]["status"] == "done"


def test_turn_off_all_the_lights_downstairs_spares_upstairs(p):
    for d in LIGHTS:
        p.home.set_state(d, on=True)
    rec, changed = _turn(p, "turn off all the lights downstairs")
    assert set(changed) == {"living_room.floor_lamp", "living_room.ceiling_light", "kitchen.light", "hallway.light"}
    assert p.home.device("bedroom.light").state["on"] and p.home.device("office.desk_lamp").state["on"]
    assert "4 lights" in rec["response_text"] and "ground floor" in rec["response_text"]


def test_delayed_command_waits_then_runs_when_due(p):
    from assistant.skills import scheduled
    from assistant.skills.home_commands import run_command

    p.home.set_state("kitchen.light", on=True)
    rec, changed = _turn(p, "in ten minutes turn off the lights")
    assert changed == {} and rec["action"]["name"] == "schedule.add"
    assert "10 minutes" in rec["response_text"]
    rec, _ = _turn(p, "what's scheduled", NOW + timedelta(minutes=1))
    assert "kitchen light" in rec["response_text"]
    assert scheduled.run_due(NOW + timedelta(minutes=9), p.home, p.data_dir, run_command) == []
    assert p.home.device("kitchen.light").state["on"]
    ran = scheduled.run_due(NOW + timedelta(minutes=10, seconds=1), p.home, p.data_dir, run_command)
    assert [r["status"] for r in ran] == ["done"]
    assert not p.home.device("kitchen.light").state["on"]
    assert scheduled.run_due(NOW + timedelta(minutes=11), p.home, p.data_dir, run_command) == []  # once only


def test_lock_a_door_the_home_lacks_changes_nothing(p):
    before = p.home.states()
    rec, changed = _turn(p, "lock the front door")
    assert changed == {} and p.home.states() == before
    assert rec["action"]["status"] == "failed"
    assert "no lock called front door" in rec["response_text"].lower()
    assert "garage" not in rec["response_text"].lower()


def test_temperature_comes_from_the_thermostat_even_with_the_oven_on(p):
    rec, _ = _turn(p, "what is the temperature")
    assert "19.5 degrees" in rec["response_text"] and "weather" not in rec["response_text"]
    p.home.set_state("kitchen.oven", on=True, temperature=180)
    rec, changed = _turn(p, "what is the temperature")
    assert "19.5 degrees" in rec["response_text"] and "oven" not in rec["response_text"]
    assert changed == {}


def test_unlock_asks_first_and_no_leaves_it_locked(p):
    rec, changed = _turn(p, "unlock the back door")
    assert rec["expects_reply"] and changed == {}
    rec, changed = _turn(p, "no", NOW + timedelta(seconds=5))
    assert changed == {} and p.home.device("kitchen.back_door").state["locked"] is True
    _turn(p, "unlock the back door", NOW + timedelta(seconds=10))
    rec, changed = _turn(p, "yes", NOW + timedelta(seconds=15))
    assert changed == {"kitchen.back_door": {"locked": False}}
    rec, _ = _turn(p, "is the back door locked", NOW + timedelta(seconds=20))
    assert rec["response_text"].startswith("No")


def test_already_off_is_said_not_claimed(p):
    rec, changed = _turn(p, "turn off the kitchen light")
    assert changed == {} and "already off" in rec["response_text"]


def test_spoken_turn_off_all_the_lights(make_pipeline):
    from assistant.simulate.voices import piper_speech

    p = make_pipeline()
    p.home.set_state("bedroom.light", on=True)
    p.home.set_state("office.desk_lamp", on=True)
    before = p.home.states()
    rec = p.run_audio(piper_speech("turn off all the lights"), now=NOW)
    changed = _changed(before, p.home.states())
    assert changed == {"bedroom.light": {"on": False}, "office.desk_lamp": {"on": False}}, rec["transcript"]


def test_spoken_lock_the_front_door_touches_nothing(make_pipeline):
    from assistant.simulate.voices import piper_speech

    p = make_pipeline()
    before = p.home.states()
    rec = p.run_audio(piper_speech("lock the front door"), now=NOW)
    assert p.home.states() == before, rec["transcript"]


def test_command_words_before_the_device_noun_are_not_a_name_the_home_lacks(p):
    """The guard against acting on a device nobody named ("the front door" is not the garage door) read "can" and
    "change" in "can the lights be changed to green" as names of lights this home lacks and refused: the simulator's
    households hit it for weeks (seed 51: "There's no can lights here."). Command words are not names; a real name
    word the home lacks ("garden") still stops the turn."""
    rec, changed = _turn(p, "can the lights be changed to green")
    assert rec["action"]["status"] == "done" and changed and "no can lights" not in rec["response_text"]
    assert all(v.get("color") for v in changed.values()), changed
    rec, changed = _turn(p, "turn on the garden lights")
    assert changed == {} and rec["action"]["status"] == "failed", rec["response_text"]


def test_natural_light_and_the_time_in_this_city(p):
    """Two requests the simulated households repeated for a week (held-out seed 73) and the labeller flagged as
    skill failures: "please make the lights natural" asked "Which colour would you like?", and "what time is it in
    this city" answered "I don't know the time zone of this city". Natural is a neutral white; "this city" is here."""
    rec, changed = _turn(p, "please make the lights natural")
    assert rec["action"]["status"] == "done" and changed, rec["response_text"]
    assert all(v.get("color_temp") == 4000 for v in changed.values()), changed
    rec, _ = _turn(p, "what time is it in this city")
    assert rec["action"]["status"] == "done" and "time zone" not in rec["response_text"], rec["response_text"]
    assert rec["response_text"].startswith("It's"), rec["response_text"]
    rec, _ = _turn(p, "what time is it in tokyo")
    assert "Tokyo" in rec["response_text"], rec["response_text"]


def test_outdoor_lights_are_the_lights_outside(make_pipeline):
    """ "Please turn on all the outdoor lights" (simulated households asked it daily) answered "There's no light
    called outdoor lights.": "outdoor" before the noun was read as a name. It is the lights outside; a home without
    any says so instead of naming an indoor lamp that "can't do that"."""
    from pathlib import Path

    import assistant

    family = Path(assistant.__file__).parent / "data" / "homes" / "family_house.yaml"
    p = make_pipeline(home=family, load_audio_stages=False)
    p.home.set_state("light.patio", on=False)
    rec, changed = _turn(p, "please turn on all the outdoor lights")
    assert changed == {"light.patio": {"on": True}}, rec["response_text"]
    rec, changed = _turn(p, "turn on the patio lights")
    assert changed == {} and rec["response_text"] == "The patio lights are already on.", rec["response_text"]
    plain = make_pipeline(load_audio_stages=False)  # the example home: a garden with no light in it
    rec, changed = _turn(plain, "turn on the outdoor lights")
    assert changed == {} and rec["response_text"] == "There's no light outside.", rec["response_text"]


def test_my_room_is_the_room_the_home_calls_so_not_the_room_here(p):
    """The example home calls its bedroom "my room" too; "turn on the lights in my room" said in the kitchen turned
    on the kitchen light ("my" was dropped and "in the room" means here). It is the bedroom; "in the room" is here."""
    p.home.set_state("bedroom.light", on=False)
    p.home.set_state("kitchen.light", on=False)
    rec, changed = _turn(p, "turn on the lights in my room")
    assert changed == {"bedroom.light": {"on": True}}, rec["response_text"]
    rec, changed = _turn(p, "turn off my room light")
    assert changed == {"bedroom.light": {"on": False}}, rec["response_text"]
    rec, changed = _turn(p, "turn on the light in the room")
    assert changed == {"kitchen.light": {"on": True}}, rec["response_text"]
