"""Teaching (issue 15) on the real models: the dialogue suite typed, the seed's study-mode dialogue from synthesized
speech (ask, teach, carry out, reuse the next day in a new process, forget), and a spoken subset of the suite."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from assistant.understanding.teach.eval_dialogues import DEFAULT_SUITE, load_dialogues, run_dialogues

NOW = datetime(2026, 1, 5, 18, 0)


def test_every_typed_dialogue_is_handled_end_to_end():
    m = run_dialogues(load_dialogues(DEFAULT_SUITE))
    assert m["dialogues"] >= 60
    failures = [(f["dialogue"], f["say"], f["answer"], f["problems"]) for f in m["failures"]]
    assert m["handled"] == m["dialogues"], failures
    assert m["later_uses"] >= 10 and m["later_uses_ok"] == m["later_uses"]
    assert m["latency_ms"]["teach_layer_every_turn"]["median"] < 5.0


def test_the_seed_dialogue_from_spoken_audio(make_pipeline, settings):
    """ "Set my room to study mode" -> "What is study mode?" -> the steps -> done; the next day (a new process on
    the same data dir) it runs again; "forget study mode" forgets it. Every request is Piper speech through
    Whisper."""
    from assistant.simulate.voices import piper_speech

    def say(runner, text, when):
        return runner.run_audio(piper_speech(text), now=when)

    cfg = settings.model_copy(update={"stages": ["asr", "nlu", "resolve", "rerank", "respond"]})
    r = make_pipeline(config=cfg, backends={"wake": None, "vad": None, "tts": None})
    r.home.set_state("living_room.tv", on=True)
    rec = say(r, "Alexa, set my room to study mode.", NOW)
    assert rec.response_text in ("What is study mode?", "What is steady mode?"), rec.transcript  # Whisper hears both
    steps = "Turn off the TV, set the desk lamp to 100 percent and start a 45 minute timer."
    rec = say(r, steps, NOW + timedelta(seconds=5))
    assert rec.action["name"] == "teach.define", rec.transcript
    assert r.home.device("living_room.tv").state["on"] is False
    assert r.home.device("office.desk_lamp").state["on"] is True
    assert "45 minutes" in rec.response_text
    r.close()

    day2 = NOW + timedelta(days=1)
    r2 = make_pipeline(config=cfg, backends={"wake": None, "vad": None, "tts": None})
    r2.home.set_state("living_room.tv", on=True)
    r2.home.set_state("office.desk_lamp", on=False)
    rec = say(r2, "Set my room to study mode.", day2)
    assert rec.action["name"] == "routine.run", rec.transcript
    assert r2.home.device("living_room.tv").state["on"] is False and r2.home.device("office.desk_lamp").state["on"]
    assert rec.taught["applied"][0]["phrase"] in ("study mode", "steady mode")
    rec = say(r2, "Forget study mode.", day2 + timedelta(seconds=10))
    assert rec.action["name"] == "teach.forget" and rec.action["status"] == "done", rec.transcript
    assert r2.teacher.memory.all() == []


SPOKEN = ("routine-movie-night", "alias-is-called", "value-comfortable", "safety-unlock-asks-yes", "forget-value")
SPOKEN += ("asked-focus-mode",)


# Piper samples its voice afresh on every call, so a run may mishear two of the six (session 9's clean-clone CI:
# "barista" heard as "bars", and the heating turn): rerun with fresh syntheses; a real regression fails all three.
@pytest.mark.flaky(reruns=2, reruns_delay=1)
def test_spoken_dialogues():
    """One dialogue per form, every turn spoken (Piper, which samples its voice: runs differ) and heard by Whisper
    tiny.en; at most one of the six may fail on a misheard word. (The alias dialogue is "barista", not "the floor
    lamp Bob": Whisper tiny.en hears that one as "the floor, Lance Bob" too often; the full spoken suite's figure is
    in docs/teach.md.)"""
    d = [x for x in load_dialogues(DEFAULT_SUITE) if x["id"] in SPOKEN]
    m = run_dialogues(d, spoken="piper")
    assert m["dialogues"] == len(SPOKEN)
    assert m["handled"] >= len(SPOKEN) - 1, [(f["say"], f["heard"], f["answer"], f["problems"]) for f in m["failures"]]
