"""Weather through a provider interface. The default provider has no network and says so; nothing is made up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from assistant.core.stages.respond import Response
from assistant.skills.base import Turn, cancelled, choose_option, say


class WeatherUnavailable(Exception):
    """The provider cannot answer now (no network, no service)."""


@dataclass(frozen=True)
class WeatherReport:
    place: str
    date: str
    summary: str
    """e.g. 'light rain'"""
    temperature_c: float | None = None
    high_c: float | None = None
    low_c: float | None = None


class WeatherProvider(Protocol):
    name: str

    def forecast(self, place: str | None, date: str | None) -> WeatherReport:
        """The weather at `place` (None: the home) on `date` ('YYYY-MM-DD', None: now). Raises WeatherUnavailable."""
        ...


class OfflineWeatherProvider:
    """The default: this assistant runs offline, so there is no weather service to ask."""

    name = "offline"

    def forecast(self, place: str | None, date: str | None) -> WeatherReport:
        raise WeatherUnavailable("no weather service configured (offline)")


class WeatherSkill:
    name = "weather"
    intents: ClassVar[frozenset[str]] = frozenset({"weather_query"})

    def __init__(self, provider: WeatherProvider | None = None) -> None:
        self.provider: WeatherProvider = provider or OfflineWeatherProvider()

    def handle(self, turn: Turn) -> Response:
        place_e = turn.entity("place")
        date = turn.value("date")
        if place_e is not None and place_e.ambiguous:
            return self._ask_place(turn, place_e, date)
        place = place_e.name if place_e is not None else None
        params: dict[str, Any] = {"place": place, "date": date, "provider": self.provider.name}
        if place_e is not None and place_e.entity_id:
            info = place_e.normalized if isinstance(place_e.normalized, dict) else {}
            params.update(
                place_id=place_e.entity_id, place_display=info.get("display"), lat=info.get("lat"), lon=info.get("lon")
            )
        return self._forecast(place, date, params)

    def _ask_place(self, turn: Turn, place_e: Any, date: str | None) -> Response:
        """Two cities of that name are about equally likely for this user: ask, and let the answer choose."""
        options = {c.entity_id: c.name for c in place_e.candidates}
        names = list(options.values())
        text = f"Which {place_e.value.strip().title()}: {', '.join(names[:-1])} or {names[-1]}?"
        pending = {"skill": self.name, "kind": "choose_place", "intent": turn.intent, "options": options, "date": date}
        return say(
            text,
            "clarify",
            "clarify",
            params={"intent": turn.intent, "candidates": list(options)},
            expects_reply=True,
            pending=pending,
        )

    def _forecast(self, place: str | None, date: str | None, params: dict[str, Any]) -> Response:
        try:
            rep = self.provider.forecast(place, date)
        except WeatherUnavailable as e:
            return say(
                "I can't reach the weather service right now.",
                "weather.query",
                "unavailable",
                params=params,
                result={"error": str(e)},
            )
        temp = ""
        if rep.temperature_c is not None:
            temp = f", {rep.temperature_c:g} degrees"
        elif rep.high_c is not None:
            temp = f", with a high of {rep.high_c:g} degrees"
        where = f" in {rep.place}" if rep.place else ""
        return say(
            f"{rep.summary.capitalize()}{where}{temp}.",
            "weather.query",
            "done",
            params=params,
            result={
                "place": rep.place,
                "date": rep.date,
                "summary": rep.summary,
                "temperature_c": rep.temperature_c,
                "high_c": rep.high_c,
                "low_c": rep.low_c,
            },
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        """The answer to "Which Springfield: Springfield, Missouri or Springfield, Massachusetts?": the option whose
        name (state, country) the answer matches best, "the first/second one", or a place the answer resolved to."""
        if pending.get("kind") != "choose_place":
            return None
        options: dict[str, str] = pending.get("options", {})
        stop = cancelled(turn, "weather_query")
        if stop is not None:
            return stop
        chosen = choose_option(turn.text, options)
        if chosen is None:
            place_e = turn.entity("place")
            if place_e is not None and place_e.entity_id in options:
                chosen = place_e.entity_id
        if chosen is None:
            return None
        display = options[chosen]
        place, date = display.split(",")[0], pending.get("date")
        params = {
            "place": place,
            "date": date,
            "provider": self.provider.name,
            "place_id": chosen,
            "place_display": display,
        }
        return self._forecast(place, date, params)
