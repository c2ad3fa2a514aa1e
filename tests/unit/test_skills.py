"""SkillResponder end to end over hand-built NLU results: state changes, actions, texts, persistence, follow-ups."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assistant.core.context import PreviousTurn, TurnContext
from assistant.core.stages.nlu import NluResult, Slot
from assistant.core.stages.respond import Response
from assistant.home.model import Home
from assistant.skills.responder import SkillResponder
from assistant.skills.weather import WeatherReport
from assistant.understanding.resolve.catalog import CatalogResolver, MusicCatalog

NOW = datetime(2025, 3, 14, 9, 0)


@pytest.fixture(scope="module")
def music() -> MusicCatalog:
    return CatalogResolver(None).music


class Session:
    """A home, a resolver, a responder and the session history, driven turn by turn."""

    def __init__(self, data_dir: Path, music: MusicCatalog, device: str = "kitchen.speaker", **responder_kw) -> None:
        self.home = Home.example()
        self.resolver = CatalogResolver(self.home, music=music)
        self.responder = SkillResponder(music=music, **responder_kw)
        self.data_dir = data_dir
        self.device = device
        self.now = NOW
        self.history: list[PreviousTurn] = []

    def say(
        self, text: str, intent: str, confidence: float = 0.95, device: str | None = None, **slots: str
    ) -> Response:
        ctx = TurnContext(
            home=self.home,
            device_id=device or self.device,
            user_id="alex",
            now=self.now,
            session_id="s1",
            data_dir=self.data_dir,
            history=list(self.history),
        )
        nlu = NluResult(
            text=text, intent=intent, confidence=confidence, slots=tuple(Slot(k, v) for k, v in slots.items())
        )
        resp = self.responder.respond(nlu, self.resolver.resolve(nlu, ctx), ctx)
        self.history.append(
            PreviousTurn(str(len(self.history)), text, intent, resp.text, resp.expects_reply, resp.pending)
        )
        return resp

    def state(self, device_id: str) -> dict:
        return self.home.device(device_id).state


@pytest.fixture
def s(tmp_path: Path, music: MusicCatalog) -> Session:
    return Session(tmp_path, music)


# -- home control -----------------------------------------------------------------------------------------------
def test_light_on_in_speaking_room(s: Session) -> None:
    r = s.say("turn on the light", "iot_hue_lighton", device_type="light")
    assert s.state("kitchen.light")["on"] is True
    assert (r.action.name, r.action.status, r.action.target) == ("light.turn_on", "done", "kitchen.light")
    assert r.action.result["changed"] == {"kitchen.light": {"on": True}}
    assert "kitchen light" in r.text


def test_ambiguous_light_asks_then_answer_runs_the_action(s: Session) -> None:
    r = s.say("turn on the light", "iot_hue_lighton", device="living_room.display")
    assert r.expects_reply and r.action.status == "clarify"
    assert r.text == "Which light: the floor lamp or the ceiling light?"
    assert r.pending["intent"] == "iot_hue_lighton"
    assert set(r.pending["candidates"]) == {"living_room.floor_lamp", "living_room.ceiling_light"}
    assert s.state("living_room.floor_lamp")["on"] is False
    r2 = s.say("the floor lamp", "iot_hue_lighton", confidence=0.4, device="living_room.display")
    assert (r2.action.name, r2.action.status, r2.action.target) == ("light.turn_on", "done", "living_room.floor_lamp")
    assert s.state("living_room.floor_lamp")["on"] is True
    assert s.state("living_room.ceiling_light")["on"] is False


def test_clarify_answer_by_partial_name_and_cancel(s: Session) -> None:
    s.say(
        "dim the light to twenty percent",
        "iot_hue_lightdim",
        device="living_room.display",
        change_amount="to twenty percent",
    )
    r = s.say("ceiling", "general_quirky", confidence=0.2, device="living_room.display")
    assert r.action.target == "living_room.ceiling_light"
    assert s.state("living_room.ceiling_light")["brightness"] == 20
    s.say("turn off the light", "iot_hue_lightoff", device="living_room.display")
    r = s.say("never mind", "general_negate", device="living_room.display")
    assert r.text == "Okay, never mind." and not r.expects_reply


def test_lights_plural_in_named_room(s: Session) -> None:
    s.home.set_state("living_room.floor_lamp", on=True)
    s.home.set_state("living_room.ceiling_light", on=True)
    r = s.say(
        "turn off the lights in the living room", "iot_hue_lightoff", house_place="living room", device_type="lights"
    )
    assert r.action.status == "done" and r.action.name == "light.turn_off"
    assert not s.state("living_room.floor_lamp")["on"] and not s.state("living_room.ceiling_light")["on"]


def test_dim_brighten_colour(s: Session) -> None:
    r = s.say(
        "set the kitchen light to fifty percent",
        "iot_hue_lightdim",
        device_type="kitchen light",
        change_amount="fifty percent",
    )
    assert s.state("kitchen.light")["brightness"] == 50 and "50%" in r.text
    s.say("brighter", "iot_hue_lightup", device_type="light")
    assert s.state("kitchen.light")["brightness"] == 70
    r = s.say("make the bedroom light blue", "iot_hue_lightchange", house_place="bedroom", color_type="blue")
    assert s.state("bedroom.light")["color"] == "blue" and r.action.name == "light.set_color" and "blue" in r.text


def test_oven_thermostat_covers_plug(s: Session) -> None:
    r = s.say(
        "preheat the oven to two hundred degrees",
        "iot_appliance_on",
        device_type="oven",
        temperature="two hundred degrees",
    )
    assert s.state("kitchen.oven") == {"on": True, "temperature": 200}
    assert r.action.target == "kitchen.oven" and "200 degrees" in r.text
    s.say("turn off the oven", "iot_appliance_off", device_type="oven")
    assert s.state("kitchen.oven")["on"] is False
    r = s.say(
        "set the thermostat to twenty one degrees",
        "iot_climate_set",
        device_type="thermostat",
        temperature="twenty one degrees",
    )
    assert s.state("hallway.thermostat")["temperature"] == 21 and r.action.name == "thermostat.set_temperature"
    r = s.say("open the garage door", "iot_cover_open", device_type="garage door")
    assert s.state("garage.door")["position"] == "closed" and r.expects_reply  # opening a garage door is confirmed
    r = s.say("yes", "general_affirm")
    assert s.state("garage.door")["position"] == "open" and r.action.name == "cover.open"
    s.say("close the blinds", "iot_cover_close", device_type="blinds")
    assert s.state("bedroom.blinds")["position"] == "closed"
    r = s.say("turn on the wemo plug", "iot_wemo_on", device_type="wemo plug socket")
    assert s.state("kitchen.kettle_plug")["on"] is True and r.action.name == "plug.turn_on"


def test_missing_device_fails_politely(s: Session) -> None:
    r = s.say("turn on the light in the garage", "iot_hue_lighton", house_place="garage")
    assert r.action.status == "failed" and "no light in the garage" in r.text


# -- time, timers, alarms ---------------------------------------------------------------------------------------
def test_time_and_date(s: Session) -> None:
    r = s.say("what time is it", "datetime_query")
    assert r.text == "It's 9 AM." and r.action.result["time"] == "09:00"
    assert s.say("what's the date today", "datetime_query").text == "Today is Friday, March 14."


def test_timers_persist_across_responders(s: Session, tmp_path: Path, music: MusicCatalog) -> None:
    r = s.say("set a timer for ten minutes", "timer_set", duration="ten minutes")
    assert (r.action.name, r.action.status) == ("timer.start", "done") and "10 minutes" in r.text
    s2 = Session(tmp_path, music)
    s2.now = NOW + timedelta(minutes=3)
    r = s2.say("how long is left on my timer", "timer_query")
    assert "7 minutes" in r.text and r.action.result["timers"][0]["remaining_s"] == 420
    r = s2.say("cancel the timer", "timer_remove")
    assert r.action.status == "done"
    assert Session(tmp_path, music).say("any timers", "timer_query").text == "You have no timers running."


def test_timer_without_duration_asks(s: Session) -> None:
    r = s.say("set a timer", "timer_set")
    assert r.expects_reply and r.text == "For how long?"
    r = s.say("an hour and a half", "general_quirky", confidence=0.3)
    assert r.action.name == "timer.start" and r.action.params["duration_s"] == 5400


def test_alarm_set_query_remove(s: Session, tmp_path: Path, music: MusicCatalog) -> None:
    r = s.say("wake me up at half past seven tomorrow", "alarm_set", time="half past seven", date="tomorrow")
    assert r.text == "Alarm set for 7:30 AM tomorrow." and r.action.result["due"] == "2025-03-15T07:30:00"
    r = s.say("set an alarm for 7:30 pm", "alarm_set", time="7:30 pm")
    assert r.text == "Alarm set for 7:30 PM."
    s2 = Session(tmp_path, music)
    assert "2 alarms" in s2.say("what alarms do i have", "alarm_query").text
    r = s2.say("remove the 7:30 pm alarm", "alarm_remove", time="7:30 pm")
    assert r.action.status == "done"
    assert s2.say("what alarms do i have", "alarm_query").text == "You have an alarm for 7:30 AM tomorrow."
    # a relative alarm ("wake me up in thirty minutes": SLURP's alarm_set, with a duration and no clock time)
    r = s2.say("wake me up in thirty minutes", "alarm_set", duration="thirty minutes")
    assert r.action.status == "done" and r.text == "Alarm set for 9:30 AM.", r.text


# -- lists --------------------------------------------------------------------------------------------------------
def test_lists_persist_and_remove(s: Session, tmp_path: Path, music: MusicCatalog) -> None:
    r = s.say("add eggs and milk to my shopping list", "lists_createoradd", list_name="shopping")
    assert (r.action.name, r.action.status) == ("list.add", "done") and r.action.result["added"] == ["eggs", "milk"]
    s2 = Session(tmp_path, music)
    r = s2.say("what's on my shopping list", "lists_query", list_name="shopping")
    assert r.text == "Your shopping list has eggs and milk."
    r = s2.say("remove eggs from my shopping list", "lists_remove", list_name="shopping")
    assert r.action.result["removed"] == ["eggs"]
    assert s2.say("read my shopping list", "lists_query", list_name="shopping").text == "Your shopping list has milk."
    r = s2.say("create a new groceries list", "lists_createoradd", list_name="groceries")
    assert r.action.name == "list.create" and r.action.result["created"] is True
    r = s2.say("put pencil on the grocery list", "lists_createoradd", list_name="grocery")
    assert r.action.result["added"] == ["pencil"]
    assert "2 lists" in s2.say("what lists do i have", "lists_query").text


# -- music ---------------------------------------------------------------------------------------------------------
def test_play_phonetic_track_then_transport(s: Session) -> None:
    r = s.say("play purple k's by jimmy hendrix", "play_music", song_name="purple K's", artist_name="Jimmy Hendrix")
    assert (r.action.name, r.action.status, r.action.target) == ("music.play", "done", "track:purple-haze")
    assert r.action.result["track_id"] == "track:purple-haze"
    assert r.text == "Playing Purple Haze by Jimi Hendrix."
    assert s.say("pause", "media_pause").action.name == "music.pause"
    assert s.say("resume", "media_resume").action.status == "done"
    assert s.say("what song is this", "music_query").text == "This is Purple Haze by Jimi Hendrix."


def test_play_artist_and_unknown(s: Session) -> None:
    r = s.say("play something by the beatles", "play_music", artist_name="the beatles")
    assert r.action.status == "done" and r.action.result["source"] == "artist:the-beatles"
    r = s.say("play zzqx wuvvle", "play_music", song_name="zzqx wuvvle frrumptious")
    assert r.action.status == "failed" and "couldn't find" in r.text


def test_volume_on_speaking_device(s: Session) -> None:
    r = s.say("turn it up", "audio_volume_up")
    assert s.state("kitchen.speaker")["volume"] == 60 and r.action.target == "kitchen.speaker"
    s.say("mute", "audio_volume_mute")
    assert s.state("kitchen.speaker")["volume"] == 0


# -- weather, fallback, general ---------------------------------------------------------------------------------------
def test_weather_is_unavailable_offline(s: Session) -> None:
    r = s.say("what's the weather in paris", "weather_query", place_name="paris")
    assert r.text == "I can't reach the weather service right now." and r.action.status == "unavailable"


def test_weather_provider_is_pluggable(tmp_path: Path, music: MusicCatalog) -> None:
    class Fake:
        name = "fake"

        def forecast(self, place, date):
            return WeatherReport(place=place or "here", date=date or "today", summary="light rain", temperature_c=12)

    s = Session(tmp_path, music, weather=Fake())
    r = s.say("weather in paris", "weather_query", place_name="Paris")
    assert r.action.status == "done" and r.text == "Light rain in Paris, 12 degrees."


def test_unsupported_and_low_confidence(s: Session) -> None:
    r = s.say("make me a sandwich", "cooking_recipe")
    assert r.text == "Sorry, I can't do that." and r.action.status == "unsupported"
    r = s.say("do the light thing", "iot_hue_lighton", confidence=0.3)  # the home grammar does not parse it either
    assert r.action.status == "unsupported" and r.action.params["reason"] == "low-confidence"
    assert s.state("kitchen.light")["on"] is False


def test_low_confidence_threshold_is_a_parameter(tmp_path: Path, music: MusicCatalog) -> None:
    s = Session(tmp_path, music, min_confidence=0.2)
    assert s.say("turn on the light", "iot_hue_lighton", confidence=0.3).action.status == "done"


def test_general_intents(s: Session) -> None:
    r = s.say("stop", "general_commandstop")
    assert r.action.name == "stop" and r.action.status == "done"
    assert s.say("yes", "general_affirm").action.status == "done"
    assert s.say("no", "general_negate").text == "Alright."
    assert s.say("say that again", "general_repeat").text == "Alright."
    assert s.say("tell me a joke", "general_joke").action.name == "joke.tell"
