"""Scheduled commands are carried out by the runner at the right time: before the first turn after they are due,
traced as turns of their own, and by replay's clock at the end of a recording."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from assistant.apps.replay import replay_file
from assistant.audio import write_wav
from assistant.simulate.voices import compose, piper_speech

T0 = datetime(2026, 3, 2, 18, 0, 0)


def test_a_delayed_command_runs_when_due_and_not_before(make_pipeline):
    p = make_pipeline(load_audio_stages=False)
    p.run_text("turn on the kitchen light", now=T0)
    rec = p.run_text("in ten minutes turn off the kitchen light", now=T0 + timedelta(seconds=5))
    assert rec["action"]["status"] == "done" and p.home.states()["kitchen.light"]["on"] is True
    # nine minutes later: not yet
    early = p.run_text("is the kitchen light on", now=T0 + timedelta(minutes=9))
    assert p.home.states()["kitchen.light"]["on"] is True and "yes" in early["response_text"].lower()
    assert p.run_due(T0 + timedelta(minutes=9, seconds=30)) == []
    # after ten minutes the next turn finds it done, and the scheduled action is a turn of its own in the trace
    late = p.run_text("is the kitchen light on", now=T0 + timedelta(minutes=11))
    assert p.home.states()["kitchen.light"]["on"] is False
    assert "no" in late["response_text"].lower() or "off" in late["response_text"].lower(), late["response_text"]
    scheduled = [r for r in p.store.iter_records() if (r.get("source") or {}).get("kind") == "scheduled"]
    assert len(scheduled) == 1 and scheduled[0]["action"]["status"] == "done"
    assert scheduled[0]["action"]["target"] == "kitchen.light"
    assert scheduled[0]["action"]["result"]["changed"] == {"kitchen.light": {"on": False}}
    assert scheduled[0]["session_id"] != late["session_id"]  # not part of the conversation
    assert p.run_due(T0 + timedelta(minutes=30)) == []  # carried out once


def test_replay_runs_what_falls_due_by_the_end_of_the_recording(make_pipeline, tmp_path):
    p = make_pipeline()
    p.run_text("turn on the kitchen light", now=T0)
    p.run_text("in 1 minute turn off the kitchen light", now=T0)
    # a recording that starts 50 s later and lasts ~15 s: nothing due while it plays ...
    clip = compose([0.5, piper_speech("Alexa,"), 0.4, piper_speech("what time is it?"), 1.5])
    short = tmp_path / "short.wav"
    write_wav(short, clip, 16000)
    recs = list(replay_file(p, short, start=T0 + timedelta(seconds=50)))
    assert [r["source"]["kind"] for r in recs] == ["file"] and p.home.states()["kitchen.light"]["on"] is True
    # ... a longer one (the clock passes the due time inside it): carried out and yielded, before the next request
    long = tmp_path / "long.wav"
    write_wav(long, np.concatenate([clip, np.zeros(16000 * 20, dtype=np.int16), clip]), 16000)
    recs = list(replay_file(p, long, start=T0 + timedelta(seconds=45)))
    kinds = [r["source"]["kind"] for r in recs]
    assert kinds == ["file", "scheduled", "file"], kinds
    assert p.home.states()["kitchen.light"]["on"] is False
