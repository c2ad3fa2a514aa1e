"""The shorter Whisper encoder window (asr.window_seconds): its size per request, the repeat trimming, the settings and
the bench's variant names; no model runs here (tests/integration/test_asr_window.py runs tiny.en)."""

from __future__ import annotations

import pytest

from assistant.backends.asr.faster_whisper import MAX_WINDOW_SECONDS, drop_repeats, encoder_window
from assistant.bench.asr_models import parse_variant
from assistant.config import load_settings
from assistant.errors import ConfigError


@pytest.mark.parametrize(
    "audio, window, margin, expected",
    [
        (2.0, None, 1.0, None),  # off: the 30 s path
        (2.0, 0, 1.0, None),
        (1.0, 3, 1.0, 3),  # the minimum window
        (2.0, 3, 1.0, 3),  # 2 s + 1 s margin fits exactly
        (2.01, 3, 1.0, 4),  # rounded up to whole seconds
        (2.5, 3, 1.0, 4),
        (2.5, 3, 2.0, 5),
        (3.0, 3, 0.0, 3),
        (4.2, 5, 1.0, 6),
        (11.04, 3, 1.0, 13),  # JFK
        (24.0, 3, 1.0, 25),  # the longest window
        (24.01, 3, 1.0, None),  # longer: the 30 s path
        (40.0, 5, 1.0, None),
        (1.0, 2.5, 0.0, 3),  # a fractional minimum rounds up too
    ],
)
def test_encoder_window_size(audio, window, margin, expected):
    assert encoder_window(audio, window, margin) == expected


def test_encoder_window_never_exceeds_the_limit_and_always_holds_audio_and_margin():
    for tenth in range(0, 400):
        audio = tenth / 10
        w = encoder_window(audio, 3, 1.0)
        if w is None:
            assert audio + 1.0 > MAX_WINDOW_SECONDS
        else:
            assert 3 <= w <= MAX_WINDOW_SECONDS and w >= audio + 1.0
            assert w == 3 or w < audio + 1.0 + 1.0  # no more than the rounding up to whole seconds


def test_encoder_window_rejects_negative_values():
    with pytest.raises(ValueError):
        encoder_window(2.0, -1, 1.0)
    with pytest.raises(ValueError):
        encoder_window(2.0, 3, -0.5)


@pytest.mark.parametrize(
    "heard, kept",
    [
        ("What time is it? What time is it? What time is it?", "What time is it?"),
        ("say the list say the list say the list say", "say the list"),  # the last copy cut short
        ("I'm released, I'm released, I'm released,", "I'm released"),
        (
            "What are the coordinates of the equator? What are the coordinates of the equ",  # cut mid-word
            "What are the coordinates of the equator?",
        ),
        (
            "Quick reply to Jacks, oh please send a mail. Quick reply to Jacks",
            "Quick reply to Jacks, oh please send a mail.",
        ),
        ("the late my meeting for 2 o o o o o o o o o", "the late my meeting for 2 o o o o o o o o o"),
        ("o o o o o o", "o"),
        ("no no no", "no"),
        ("Turn on the light. Turn on the light.", "Turn on the light."),
        # not a repeat of one utterance: unchanged
        ("Turn on the light. Turn off the fan.", "Turn on the light. Turn off the fan."),
        ("stop stop", "stop stop"),  # one word said twice is left alone
        ("play the the song", "play the the song"),
        ("turn on the light turn", "turn on the light turn"),  # one word of a second copy is not enough
        ("turn on the light turn on the fan", "turn on the light turn on the fan"),
        ("play it play it again", "play it play it again"),
        ("", ""),
    ],
)
def test_drop_repeats(heard, kept):
    assert drop_repeats(heard) == kept


@pytest.mark.parametrize("text", ["asr:\n  window_seconds: -1\n", "asr:\n  window_seconds: 30\n"])
def test_window_seconds_out_of_range_is_a_config_error(tmp_path, text):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.code == "config-invalid"
    assert "asr.window_seconds" in err.value.message


def test_negative_margin_is_a_config_error(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("asr:\n  window_margin_seconds: -0.5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "asr.window_margin_seconds" in err.value.message


@pytest.mark.parametrize("text, expected", [("0", 0.0), ("null", None), ("5", 5.0), ("2.5", 2.5)])
def test_window_seconds_accepted_values(tmp_path, text, expected):
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"asr:\n  window_seconds: {text}\n")
    assert load_settings(path).asr.window_seconds == expected


def test_bench_variant_names():
    assert parse_variant("tiny.en") == ("tiny.en", {})
    assert parse_variant("tiny.en@window=5") == ("tiny.en", {"window_seconds": 5.0})
    assert parse_variant("base@window=3@margin=2") == ("base", {"window_seconds": 3.0, "window_margin_seconds": 2.0})
    with pytest.raises(ValueError, match="unknown option"):
        parse_variant("tiny.en@beam=5")
    with pytest.raises(ValueError):
        parse_variant("tiny.en@window=abc")
