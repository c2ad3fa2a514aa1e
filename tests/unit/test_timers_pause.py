"""Named timers: pause, resume, add and take off time, several at once (no models; the skill's own patterns)."""

from __future__ import annotations

from datetime import datetime, timedelta

from assistant.core.context import TurnContext
from assistant.core.stages.nlu import NluResult
from assistant.core.stages.resolve import ResolveResult
from assistant.home.model import Home
from assistant.skills.base import Turn
from assistant.skills.timers import TimersSkill

T0 = datetime(2026, 1, 5, 18, 0)


def _turn(text, tmp_path, home, at):
    ctx = TurnContext(home=home, device_id="kitchen.speaker", user_id="u", now=at, session_id="s", data_dir=tmp_path)
    return Turn(NluResult(text=text, intent="timer_query", confidence=1.0), ResolveResult(), ctx)


def test_pause_add_resume(tmp_path):
    home, skill = Home.example(), TimersSkill()
    skill._start_timer(_turn("", tmp_path, home, T0), 600, "pizza")
    skill._start_timer(_turn("", tmp_path, home, T0), 300, "eggs")
    r = skill.try_handle(_turn("pause the pizza timer", tmp_path, home, T0 + timedelta(minutes=1)))
    assert r.text == "Pizza timer paused with 9 minutes left."
    # paused: an hour later it still has 9 minutes
    r = skill.try_handle(_turn("add 5 minutes to the pizza timer", tmp_path, home, T0 + timedelta(hours=1)))
    assert r.text == "Added 5 minutes to the pizza timer: 14 minutes left."
    r = skill.try_handle(_turn("resume the pizza timer", tmp_path, home, T0 + timedelta(hours=1)))
    assert r.text == "Pizza timer resumed: 14 minutes left."
    later = T0 + timedelta(hours=1, minutes=2)
    r = skill.try_handle(_turn("take 4 minutes off the pizza timer", tmp_path, home, later))
    assert r.text == "Took 4 minutes off the pizza timer: 8 minutes left."
    assert skill.try_handle(_turn("pause the toast timer", tmp_path, home, T0)).text == "There's no toast timer."
    assert skill.try_handle(_turn("pause the timer", tmp_path, home, T0)).action.status == "clarify"  # two running
    assert skill.try_handle(_turn("set a timer for 5 minutes", tmp_path, home, T0)) is None  # the NLU's
