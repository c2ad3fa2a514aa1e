"""Personal meanings in the simulated people (simulate/meanings.py) and the truth that checks them."""

from __future__ import annotations

from assistant.home.model import EXAMPLE_HOME, Home
from assistant.simulate.ground_truth import result_ok
from assistant.simulate.meanings import DISAGREE, PLACES, big_light, personal_meanings, place, usual

HOME = Home.load(EXAMPLE_HOME)


def _rec(name, status="done", target=None, entities=()):
    return {"action": {"name": name, "status": status, "target": target}, "entities": list(entities)}


def test_big_light_truth_is_the_persons_device():
    (_, on), (_, off) = big_light(HOME, "alex", "living_room.floor_lamp", "floor lamp")
    assert on.utterances[0] == "turn on the big light" and "turn on the floor lamp" in on.utterances
    assert off.intent == "iot_hue_lightoff"
    # the pipeline's default reading of "the big light" (the ceiling light) is wrong for this person ...
    ok, why = result_ok(on, _rec("light.turn_on", target="living_room.ceiling_light"), HOME)
    assert not ok and "big light" in why
    # ... the floor lamp is right, and so is the same request said explicitly
    assert result_ok(on, _rec("light.turn_on", target="living_room.floor_lamp"), HOME)[0]
    # and the partner who means the ceiling light is right with the default reading
    (_, on2), _ = big_light(HOME, "sam", "living_room.ceiling_light", "ceiling light")
    assert result_ok(on2, _rec("light.turn_on", target="living_room.ceiling_light"), HOME)[0]


def test_place_truth_checks_the_resolved_entity():
    city, (dreg, did), (oreg, oid) = PLACES[0]
    ((_, g),) = place("alex", city, oreg, oid)
    assert g.utterances[0] == f"what time is it in {city}" and oreg in g.utterances[1]
    default = _rec("datetime.query", entities=[{"slot": "place_name", "entity_id": did}])
    meant = _rec("datetime.query", entities=[{"slot": "place_name", "entity_id": oid}])
    assert not result_ok(g, default, HOME)[0]
    assert result_ok(g, meant, HOME)[0]
    assert g.to_dict()["expect"]["entity"]["id"] == oid


def test_usual_is_the_persons_artist():
    ((_, g),) = usual("alex", "adele")
    assert g.utterances[0] == "put on my usual" and g.slots == {"artist_name": "adele"}
    assert not result_ok(g, _rec("music.play", target="track:jingle-bells"), HOME)[0]
    assert result_ok(g, _rec("music.play", target="artist:adele"), HOME)[0]


def test_draw_is_deterministic_and_members_disagree():
    names = ["Alex", "Sam", "Priya", "Jonas"]
    a = personal_meanings(HOME, 2, 0, names, 1.0)
    b = personal_meanings(HOME, 2, 0, names, 1.0)
    assert {k: [g.to_dict() for _, g in v] for k, v in a.items()} == {
        k: [g.to_dict() for _, g in v] for k, v in b.items()
    }
    assert personal_meanings(HOME, 2, 0, names, 0.0) == {n: [] for n in names}
    # over many households, members of one household often mean different things by the same phrase
    disagree = same = 0
    for i in range(60):
        m = personal_meanings(HOME, 5, i, ["Alex", "Sam"], 1.0)
        for kind in ("big-light-on", "place-"):
            ea = [g.expect for _, g in m["Alex"] if kind in g.goal_id]
            eb = [g.expect for _, g in m["Sam"] if kind in g.goal_id]
            if ea and eb:
                disagree += ea != eb
                same += ea == eb
    assert disagree / (disagree + same) > DISAGREE - 0.2
    assert same > 0


def test_personal_goals_join_only_their_members_habits(tmp_path):
    import random

    from assistant.simulate.goals import Goal, GoalBank
    from assistant.simulate.household import make_household

    bank = GoalBank(
        [Goal("datetime_query:x", "datetime_query", {}, ["what time is it please", "tell me the time"])]
        + [Goal(f"play_music:{i}", "play_music", {"music_genre": g}, [f"play some {g}"]) for i, g in enumerate("ab")]
    )
    random.seed(0)
    hh = make_household(0, 2, bank, tmp_path, ("piper",), n_members=3, personal_meanings=1.0)
    assert hh.personal and all(g.goal_id.startswith("personal:") for g in hh.personal.values())
    assert not set(hh.personal) & set(hh.goals)  # never drawn as someone else's random request
    for m in hh.members:
        mine = {gid for hs in m.habits.values() for gid in hs if gid.startswith("personal:")}
        assert mine and all(gid.split(":")[1] == m.id for gid in mine)
        assert all(m.phrasing[gid] == 0 for gid in mine)
        assert all(hh.goal(gid).goal_id == gid for gid in mine)
    plain = make_household(0, 2, bank, tmp_path, ("piper",), n_members=3)
    assert not plain.personal
    assert [m.voice for m in plain.members] == [m.voice for m in hh.members]


def test_room_word_is_a_room_the_home_lacks_and_its_failure_is_the_resolution():
    from assistant.simulate.ground_truth import assess
    from assistant.simulate.household import areas_for_place
    from assistant.simulate.meanings import ROOM_WORDS, room_word, room_words

    (_, on), (_, off) = room_word(HOME, "alex", "living_room", "den")
    assert on.utterances[0] == "turn on the lights in the den" and "living room" in on.utterances[1]
    assert on.expect["area"] == "living_room" and set(on.expect["devices"]) == {
        "living_room.floor_lamp",
        "living_room.ceiling_light",
    }
    said = on.utterances[0]
    heard = {"transcript": said, "intent": "iot_hue_lighton", "intent_confidence": 0.97, "slots": {}}
    # heard right, understood (the room slot found), but the home has no "den": the resolution failed
    unresolved = {
        **heard,
        "slots": {"house_place": "den"},
        "entities": [{"slot": "house_place", "entity_id": None}],
        "action": {"name": "light.turn_on", "status": "failed", "target": None},
    }
    v = assess(on, said, unresolved, HOME)
    assert v.defect and v.failure_point == "entity_resolution", v
    # the room slot not found at all is the NLU's
    v = assess(on, said, {**unresolved, "slots": {}, "entities": []}, HOME)
    assert v.defect and v.failure_point == "nlu", v
    # the room named as the home names it, every light in it on: achieved
    done = {
        **heard,
        "slots": {"house_place": "living room"},
        "entities": [{"slot": "house_place", "entity_id": "living_room"}],
        "action": {
            "name": "light.turn_on",
            "status": "done",
            "target": "living_room.floor_lamp+living_room.ceiling_light",
        },
    }
    assert not assess(on, on.utterances[1], done, HOME).defect
    # the draw: words the home does not list, deterministic, none at rate 0
    names = ["Alex", "Sam", "Priya"]
    known = lambda w: bool(areas_for_place(HOME, w))  # noqa: E731
    drawn = room_words(HOME, 3, 0, names, 1.0, known)
    assert drawn == room_words(HOME, 3, 0, names, 1.0, known)
    assert room_words(HOME, 3, 0, names, 0.0, known) == {n: [] for n in names}
    for goals in drawn.values():
        for _, g in goals:
            word = g.expect["phrase"]
            assert word in ROOM_WORDS[g.expect["area"]] and not areas_for_place(HOME, word)


def test_chained_routine_requests_follow_right_after_the_answer(tmp_path):
    """SimConfig.chain_rate: a routine request after the first of its morning or evening may be said right after the
    previous answer (a new goal as quick as a retry: what segmentation must not read as a retry). Its own random
    stream: the agenda is otherwise the same at any rate."""
    import random

    from assistant.simulate.goals import GoalBank
    from assistant.simulate.household import make_household
    from assistant.simulate.run import SimConfig, Simulator

    bank = GoalBank.load()
    hh = make_household(0, 4, bank, tmp_path, ("piper",), n_members=2)

    def agenda(rate):
        sim = Simulator.__new__(Simulator)
        sim.cfg = SimConfig(seed=4, chain_rate=rate)
        return sim._agenda(hh, 0, random.Random(1))

    never, always, half = agenda(0.0), agenda(1.0), agenda(0.5)
    key = [[(it.when, it.goal and it.goal.goal_id, it.room) for it in a] for a in (never, always, half)]
    assert key[0] == key[1] == key[2]
    assert not any(it.chained for it in never)
    routine = [it for it in always if it.routine]
    assert routine and sum(it.chained for it in always) == len(routine) - sum(
        1
        for m in hh.members
        for part in ("morning", "evening")
        if any(it.member is m and it.routine and (it.when.hour < 12) == (part == "morning") for it in always)
    )
    assert not any(it.chained for it in always if not it.routine)
    assert 0 < sum(it.chained for it in half) < sum(it.chained for it in always)
