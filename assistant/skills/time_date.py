"""Time and date questions, answered from `context.now`."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, say
from assistant.understanding.spoken import say_time

# "what time is it in this city": where the user is, so the local time (not a place to look up)
_HERE = re.compile(
    r"^(?:(?:this|my|our|the local|the current|the) (?:city|town|place|area|location|country|time zone|timezone)"
    r"|here|where i am|where we are|local|my location)$"
)


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
        if place is not None and not _HERE.match(str(place.name or "").strip().lower()):
            return self._time_in(turn, place)
        result: dict[str, Any] = {"time": now.strftime("%H:%M"), "date": now.date().isoformat()}
        asked_date = turn.value("date")
        if asked_date:
            d = date.fromisoformat(asked_date)
            result["date"] = asked_date
            rel = {0: "Today is", 1: "Tomorrow is", -1: "Yesterday was"}.get((d - now.date()).days, "That's")
            return say(
                f"{rel} {say_date(d, now.date())}.", "datetime.query", "done", params={"asked": "date"}, result=result
            )
        wants_date = bool(re.search(r"\b(date|day|today|month|year|week)\b", text)) and not re.search(r"\btime\b", text)
        if wants_date:
            return say(
                f"Today is {say_date(now.date())}.", "datetime.query", "done", params={"asked": "date"}, result=result
            )
        return say(
            f"It's {say_time(now.strftime('%H:%M'))}.",
            "datetime.query",
            "done",
            params={"asked": "time"},
            result=result,
        )

    def _time_in(self, turn: Turn, place: Any) -> Response:
        """ "What time is it in Tokyo": the city's IANA time zone from the places catalog (zoneinfo, tzdata). A name
        the reranker left open between several cities takes the likeliest, and the answer names it."""
        info = place.normalized if isinstance(place.normalized, dict) else {}
        place_id = place.entity_id
        if place_id is None and isinstance(info.get("likeliest"), dict):  # the reranker left it open between cities
            info = info["likeliest"]
            place_id = info.get("id")
        tz_name, where = info.get("timezone"), info.get("display") or place.name
        try:
            tz = ZoneInfo(tz_name) if tz_name else None
        except (ZoneInfoNotFoundError, ValueError):
            tz = None
        if tz is None:
            return say(
                f"Sorry, I don't know the time zone of {where}.",
                "datetime.query",
                "unsupported",
                params={"place": place.name},
            )
        there = turn.context.now.astimezone(tz)
        params = {"asked": "time", "place": where, "place_id": place_id, "timezone": tz_name}
        return say(
            f"In {where} it's {say_time(there.strftime('%H:%M'))}.",
            "datetime.query",
            "done",
            params=params,
            result={
                "time": there.strftime("%H:%M"),
                "date": there.date().isoformat(),
                "utc_offset": there.strftime("%z"),
            },
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None
