"""The whole pipeline on the real models: recorded and synthesized audio in, actions on the home and traces out."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from assistant.apps.replay import replay_file
from assistant.audio import PIPELINE_RATE, read_file
from assistant.simulate.voices import compose, espeak_speech, piper_speech

DEMO = Path(__file__).resolve().parents[2] / "assistant" / "data" / "demo"


def wer(ref: str, hyp: str) -> float:
    clean = lambda t: " ".join(re.sub(r"[^a-z0-9' ]+", " ", t.lower()).split())  # noqa: E731
    return jiwer.wer(clean(ref), clean(hyp))


def test_replay_multi_turn_recording_acts_on_the_home(make_pipeline, tmp_path):
    p = make_pipeline()
    assert p.home.devices["kitchen.light"].state["on"] is False
    recs = list(replay_file(p, DEMO / "morning_routine.flac"))
    lines = (DEMO / "morning_routine.txt").read_text().splitlines()
    assert len(recs) == 3
    assert [r["wake"]["model"] for r in recs] == ["alexa", "hey_jarvis", "alexa"]
    for rec, line in zip(recs, lines):
        spoken = re.sub(r"^(alexa|hey jarvis),\s*", "", line, flags=re.I)
        assert wer(spoken, rec["transcript"]) <= 0.2, (spoken, rec["transcript"])
        assert rec["error"] is None
    assert [r["intent"] for r in recs] == ["iot_hue_lighton", "timer_set", "datetime_query"]
    assert p.home.devices["kitchen.light"].state["on"] is True
    assert recs[0]["action"]["status"] == "done" and recs[0]["action"]["target"] == "kitchen.light"
    assert recs[1]["action"]["name"].startswith("timer") and recs[1]["action"]["status"] == "done"
    assert re.search(r"\d", recs[2]["response_text"])  # says a time
    # one session, three turns, every stage traced, response audio written and audible
    assert len({r["session_id"] for r in recs}) == 1
    for rec in recs:
        turn = p.store.get_turn(rec["turn_id"])
        assert [s["stage"] for s in turn["spans"]] == [
            "wake",
            "vad",
            "asr",
            "rewrite",
            "nlu",
            "resolve",
            "rerank",
            "respond",
            "tts",
        ]
        assert all(s["error_code"] is None and s["version"] for s in turn["spans"])
        assert turn["events"][0]["type"] == "wake"
        audio, rate = sf.read(rec["response_audio"])
        assert rate == 22050 and len(audio) / rate > 0.5 and np.abs(audio).max() > 0.05
        assert rec["latency_ms"]["end_to_end"] > rec["latency_ms"]["asr"] > 0


@pytest.mark.parametrize(
    "clip, transcript, intent",
    [
        ("voice2json/turn_on_living_room_lamp.wav", "turn on the living room lamp", "iot_hue_lighton"),  # 24 kHz
        (
            "voice2json/would_you_please_turn_on_living_room_lamp.wav",
            "would you please turn on the living room lamp",
            "iot_hue_lighton",
        ),  # 44.1 kHz stereo
        ("wyoming_faster_whisper/turn_on_the_living_room_lamp.wav", "turn on the living room lamp", "iot_hue_lighton"),
        ("voice2json/what_time_is_it.wav", "what time is it", "datetime_query"),  # 48 kHz stereo
        ("wyoming_faster_whisper/living_room_light_en.wav", "turn on the living room light", "iot_hue_lighton"),
    ],
)
def test_real_recordings_without_wake_word(make_pipeline, speech_dir, clip, transcript, intent):
    p = make_pipeline()
    recs = list(replay_file(p, speech_dir / clip, no_wake=True))
    assert len(recs) == 1
    rec = recs[0]
    assert wer(transcript, rec["transcript"]) <= 0.2, rec["transcript"]
    assert rec["intent"] == intent
    assert rec["action"]["status"] in ("done", "clarify")
    if intent == "iot_hue_lighton" and rec["action"]["status"] == "done":
        assert p.home.devices[rec["action"]["target"]].area == "living_room"
        assert p.home.devices[rec["action"]["target"]].state["on"] is True


def test_jfk_transcript(make_pipeline, speech_dir):
    p = make_pipeline()
    recs = list(replay_file(p, speech_dir / "whisper" / "jfk.flac", no_wake=True))
    text = " ".join(r["transcript"] for r in recs)
    ref = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    assert wer(ref, text) <= 0.15, text


@pytest.mark.parametrize("clip, model", [("alexa.wav", "alexa"), ("hey_jarvis.wav", "hey_jarvis")])
def test_wake_word_clips_wake_the_right_model(make_pipeline, speech_dir, tmp_path, clip, model):
    # the clip, then a synthesized request after it, as a person would speak
    wake = read_file(speech_dir / "wyoming_openwakeword" / clip)
    path = tmp_path / "wake_then_request.wav"
    sf.write(path, compose([wake, 0.2, piper_speech("what time is it"), 2.0]), PIPELINE_RATE)
    recs = list(replay_file(make_pipeline(), path))
    assert len(recs) == 1 and recs[0]["wake"]["model"] == model and recs[0]["wake"]["score"] >= 0.5
    assert recs[0]["intent"] == "datetime_query"


def test_other_wake_words_and_plain_speech_do_not_wake(make_pipeline, speech_dir):
    p = make_pipeline()
    for clip in (
        "wyoming_openwakeword/hey_mycroft.wav",
        "openwakeword/tests/data/hey_jane.wav",
        "arm_ml_eval_kit/resources/asr/samples/another_engineer.wav",
    ):
        assert list(replay_file(p, speech_dir / clip)) == []
    assert p.store.count_turns() == 0


def test_espeak_request_with_asr_noise_still_acts(make_pipeline, tmp_path):
    """espeak-ng's robotic voice gives real ASR errors; a simple command must survive them."""
    path = tmp_path / "espeak.wav"
    sf.write(
        path,
        compose([0.5, piper_speech("Alexa,"), 0.1, espeak_speech("turn off the bedroom light"), 2.0]),
        PIPELINE_RATE,
    )
    p = make_pipeline()
    p.home.set_state("bedroom.light", on=True)
    recs = list(replay_file(p, path))
    assert len(recs) == 1 and recs[0]["intent"] == "iot_hue_lightoff", recs[0]["transcript"]
    assert p.home.devices["bedroom.light"].state["on"] is False


def test_wake_word_without_request_is_a_traced_timeout(make_pipeline, tmp_path):
    path = tmp_path / "wake_only.wav"
    sf.write(path, compose([0.5, piper_speech("Alexa."), 6.0]), PIPELINE_RATE)
    p = make_pipeline()
    recs = list(replay_file(p, path))
    assert len(recs) == 1
    assert recs[0]["error"]["code"] == "no-speech-after-wake"
    assert p.store.get_turn(recs[0]["turn_id"])["record"]["error"]["code"] == "no-speech-after-wake"


@pytest.mark.parametrize("content, code", [(b"", "audio-empty"), (b"RIFF\x00\x00garbage" * 50, "audio-undecodable")])
def test_bad_file_gives_traced_error_and_keeps_store(make_pipeline, tmp_path, content, code):
    p = make_pipeline()
    p.run_text("what time is it")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    recs = list(replay_file(p, bad))
    assert len(recs) == 1 and recs[0]["error"]["code"] == code
    assert recs[0]["response_audio"] is None  # nothing to answer
    assert p.store.count_turns() == 2


class _ExplodingResolver:
    """The real resolver, until `armed`: then it crashes (a bug in a backend, mid-turn)."""

    def __init__(self, inner) -> None:
        self.inner, self.armed = inner, True
        self.name, self.version = inner.name, inner.version

    def __getattr__(self, item):
        return getattr(self.inner, item)

    def resolve(self, nlu, ctx):
        if self.armed:
            raise RuntimeError("resolver exploded")
        return self.inner.resolve(nlu, ctx)


def test_crash_mid_turn_is_traced_and_answered(make_pipeline):
    p = make_pipeline(wrap={"resolve": _ExplodingResolver})
    rec = p.run_text("turn on the kitchen light")
    assert rec["error"]["code"] == "resolve-failed" and "exploded" in rec["error"]["message"]
    assert rec["intent"] == "iot_hue_lighton"  # stages before the crash kept their output
    assert rec["response_text"] and rec["response_audio"]  # the user still hears an apology
    turn = p.store.get_turn(rec["turn_id"])
    assert [s["error_code"] for s in turn["spans"] if s["stage"] == "resolve"] == ["resolve-failed"]
    p.resolver.armed = False
    assert p.run_text("what time is it")["error"] is None  # the pipeline keeps working


def test_say_skills_that_cannot_or_need_network(make_pipeline):
    p = make_pipeline()
    sandwich = p.run_text("make me a sandwich")
    assert sandwich["action"]["status"] == "unsupported"
    weather = p.run_text("what's the weather like tomorrow")
    assert weather["intent"] == "weather_query" and weather["action"]["status"] == "unavailable"
    assert "can't" in weather["response_text"].lower() or "cannot" in weather["response_text"].lower()


def test_clarifying_question_and_answer(make_pipeline, settings):
    cfg = settings.model_copy(
        update={"session": settings.session.model_copy(update={"device_id": "living_room.display"})}
    )
    p = make_pipeline(config=cfg)
    ask = p.run_text("turn on the light")
    assert ask["action"]["status"] == "clarify" and ask["expects_reply"] is True
    answer = p.run_text("the floor lamp")
    assert answer["session_id"] == ask["session_id"]
    assert answer["action"]["status"] == "done" and answer["action"]["target"] == "living_room.floor_lamp"
    assert p.home.devices["living_room.floor_lamp"].state["on"] is True
    assert p.home.devices["living_room.ceiling_light"].state["on"] is False


def test_device_state_persists_across_processes(make_pipeline):
    make_pipeline().run_text("turn on the kitchen light")
    assert make_pipeline().home.devices["kitchen.light"].state["on"] is True


def test_feedback_question_and_answer_are_recorded(make_pipeline, settings):
    cfg = settings.model_copy(update={"feedback": settings.feedback.model_copy(update={"ask_rate": 1.0})})
    p = make_pipeline(config=cfg)
    asked = p.run_text("what time is it")
    assert asked["response_text"].endswith("Did I answer your question?") and asked["expects_reply"]
    reply = p.run_text("no not really")
    assert reply["action"]["name"] == "feedback.record" and reply["action"]["params"]["answer"] == "no"
    events = p.store.get_turn(asked["turn_id"])["events"]
    assert [e["data"]["answer"] for e in events if e["type"] == "feedback"] == ["no"]


def test_opted_out_user_leaves_no_trace(make_pipeline, tmp_path):
    from assistant.trace.privacy import opt_out

    p = make_pipeline()
    p.run_text("what time is it")
    opt_out(p.data_dir, p.user_id, p.store)
    rec = p.run_text("what time is it")
    assert rec["response_text"]  # still answered
    assert p.store.count_turns() == 0  # earlier turn deleted, new one never written
