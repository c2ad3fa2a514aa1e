"""The shorter Whisper encoder window (asr.window_seconds) on real tiny.en: a short synthesized command is heard as on
the 30 s path, a request too long for the window takes the 30 s path and keeps its words, and the version and the
trace say which path ran."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.apps.replay import replay_file
from assistant.audio import read_file
from assistant.backends.asr.faster_whisper import MAX_WINDOW_SECONDS, FasterWhisperAsr, encoder_window
from assistant.simulate.voices import compose, piper_speech, spoken_words

JFK = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
COMMANDS = ("turn off the kitchen light", "set an alarm for seven am", "what is the weather like tomorrow")


@pytest.fixture(scope="module")
def full():
    return FasterWhisperAsr("tiny.en")


WINDOW = 10  # the setting docs/asr-base.md measured and recommends ("Shorter encoder window")


@pytest.fixture(scope="module")
def windowed():
    return FasterWhisperAsr("tiny.en", window_seconds=WINDOW, window_margin_seconds=1.0)


def _wer(ref: str, hyp: str) -> float:
    import jiwer

    return float(jiwer.wer(spoken_words(ref), spoken_words(hyp) or "-"))


def test_version_says_which_path(full, windowed):
    assert "window" not in full.version
    assert f"window >= {windowed.window_seconds:g} s + 1 s margin" in windowed.version


@pytest.mark.parametrize("command", COMMANDS)
def test_windowed_path_hears_a_short_command_as_the_30s_path(full, windowed, command):
    """Piper samples its voice afresh on every call: up to four takes; on a take the 30 s path hears word for word,
    the windowed path must hear the same words (and never run on, repeating itself)."""
    agreed, seen = False, []
    for _ in range(4):
        audio = compose([0.4, piper_speech(command), 0.4])
        a, b = full.transcribe(audio, "en"), windowed.transcribe(audio, "en")
        assert a.window_seconds == 30.0
        assert b.window_seconds == encoder_window(len(audio) / 16000, windowed.window_seconds, 1.0) < 30
        assert len(spoken_words(b.text).split()) <= 1.5 * len(spoken_words(command).split()) + 1, b.text  # no runaway
        assert 0.0 < b.confidence <= 1.0 and 0.0 <= b.no_speech_prob < 0.6
        seen.append((a.text, b.text))
        if spoken_words(a.text) == spoken_words(command):
            agreed = spoken_words(b.text) == spoken_words(a.text)
            if agreed:
                break
    assert agreed, seen


def test_windowed_path_hears_silence_as_nothing(windowed):
    res = windowed.transcribe(np.zeros(32000, dtype=np.int16), "en")
    assert res.window_seconds == encoder_window(2.0, windowed.window_seconds) < 30
    assert res.text == "" and res.no_speech_prob > 0.6


def test_long_recording_in_a_long_window_keeps_its_words(windowed, speech_dir):
    res = windowed.transcribe(read_file(speech_dir / "whisper" / "jfk.flac"), "en")  # 11 s: a 13 s window
    assert res.window_seconds == 13.0
    assert _wer(JFK, res.text) <= 0.1, res.text


def test_request_longer_than_the_window_limit_takes_the_30s_path(windowed, speech_dir):
    jfk = read_file(speech_dir / "whisper" / "jfk.flac")
    audio = compose([jfk, 0.5, jfk, 2.0])  # about 24.6 s: it would need a 26 s window
    assert len(audio) / 16000 + 1.0 > MAX_WINDOW_SECONDS
    res = windowed.transcribe(audio, "en")
    assert res.window_seconds == 30.0
    assert _wer(f"{JFK} {JFK}", res.text) <= 0.1, res.text
    assert spoken_words(res.text).split().count("country") == 4, res.text


def test_trailing_silence_is_not_heard_as_words(full, windowed):
    for _ in range(4):
        speech = piper_speech("turn off the kitchen light")
        if spoken_words(full.transcribe(compose([0.4, speech, 0.4]), "en").text) == "turn off the kitchen light":
            break
    audio = compose([0.4, speech, 4.0])  # an endpoint that came 4 s late
    res = windowed.transcribe(audio, "en")
    assert res.window_seconds == encoder_window(len(audio) / 16000, windowed.window_seconds, 1.0) >= 6
    assert spoken_words(res.text) == "turn off the kitchen light", res.text


def test_trace_records_the_window(make_pipeline, windowed, speech_dir):
    p = make_pipeline(backends={"asr": windowed})
    recs = list(replay_file(p, speech_dir / "voice2json" / "turn_on_living_room_lamp.wav", no_wake=True))
    assert len(recs) == 1 and recs[0]["intent"] == "iot_hue_lighton", recs[0]["transcript"]
    spans = {s["stage"]: s for s in p.store.get_turn(recs[0]["turn_id"])["spans"]}
    assert "window >= " in spans["asr"]["version"]
    assert spans["asr"]["output"]["window_seconds"] < 30


def test_windowed_path_carries_the_home_words(speech_dir):
    """`bias_to_home` (faster-whisper hotwords) goes into the windowed decode's prompt as on the 30 s path."""
    biased = FasterWhisperAsr("tiny.en", hotwords="living room, lamp, kitchen", window_seconds=WINDOW)
    assert "3 home words" in biased.version and "window" in biased.version
    res = biased.transcribe(read_file(speech_dir / "voice2json" / "turn_on_living_room_lamp.wav"), "en")
    assert res.window_seconds < 30
    assert spoken_words(res.text) == "turn on the living room lamp", res.text
