"""Weather through a provider interface. The default provider has no network and says so; nothing is made up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from assistant.skills.base import Turn, say
from assistant.stages.respond import Response


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
        place = place_e.name if place_e is not None else None
        date = turn.value("date")
        params: dict[str, Any] = {"place": place, "date": date, "provider": self.provider.name}
        if place_e is not None and place_e.entity_id:
            info = place_e.normalized if isinstance(place_e.normalized, dict) else {}
            params.update(place_id=place_e.entity_id, place_display=info.get("display"), lat=info.get("lat"), lon=info.get("lon"))
        try:
            rep = self.provider.forecast(place, date)
        except WeatherUnavailable as e:
            return say("I can't reach the weather service right now.", "weather.query", "unavailable",
                       params=params, result={"error": str(e)})
        temp = ""
        if rep.temperature_c is not None:
            temp = f", {rep.temperature_c:g} degrees"
        elif rep.high_c is not None:
            temp = f", with a high of {rep.high_c:g} degrees"
        where = f" in {rep.place}" if rep.place else ""
        return say(f"{rep.summary.capitalize()}{where}{temp}.", "weather.query", "done", params=params,
                   result={"place": rep.place, "date": rep.date, "summary": rep.summary,
                           "temperature_c": rep.temperature_c, "high_c": rep.high_c, "low_c": rep.low_c})

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        return None
