"""Time and date questions, answered from `context.now`."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar

from assistant.backends.spoken import say_time
from assistant.skills.base import Turn, say
from assistant.stages.respond import Response


def say_date(d: date, today: date | None = None) -> str:
    text = f"{d.strftime('%A')}, {d.strftime('%B')} {d.day}"
    if today is not None and d.year != today.year:
        text += f", {d.year}"
    return text


class TimeDateSkill:
    name = "time_date"
    intents: ClassVar[frozenset[str]] = frozenset({"datetime_query"})

    def handle(self, turn: Turn) -> Response:
        now = turn.context.now
        text = turn.text.lower()
        place = turn.entity("place")
        if place is not None:
            return say(f"Sorry, I can only tell the time here, not in {place.name}.", "datetime.query", "unsupported",
                       params={"place": place.name})
        result: dict[str, Any] = {"time": now.strftime("%H:%M"), "date": now.date().isoformat()}
        asked_date = turn.value("date")
        if asked_date:
            d = date.fromisoformat(asked_date)
            result["date"] = asked_date
            rel = {0: "Today is", 1: "Tomorrow is", -1: "Yesterday was"}.get((d - now.date()).days, "That's")
            return say(f"{rel} {say_date(d, now.date())}.", "datetime.query", "done", params={"asked": "date"}, result=result)
        wants_date = bool(re.search(r"\b(date|day|today|month|year|week)\b", text)) and not re.search(r"\btime\b", text)
        if wants_date:
            return say(f"Today is {say_date(now.date())}.", "datetime.query", "done", params={"asked": "date"}, result=result)
        return say(f"It's {say_time(now.strftime('%H:%M'))}.", "datetime.query", "done", params={"asked": "time"}, result=result)

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None
