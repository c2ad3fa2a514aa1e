"""Requests the endpointer cut off at a pause: the simulator's cut-offs and the labeller's evidence for them."""

from __future__ import annotations

import random

from synth_traces import turn_view

from assistant.learning.labels.features import view
from assistant.learning.labels.lm import BigramLM
from assistant.learning.labels.redecode import cut_off_features
from assistant.simulate.household import VoiceSpec
from assistant.simulate.run import cut_point, retake, speech_after_endpoint


def test_a_cut_keeps_at_least_two_words_and_drops_at_least_one():
    text = "set a timer for ten minutes"
    cuts = {cut_point(text, random.Random(i), 1.0) for i in range(200)}
    assert cuts and all(c and text.startswith(c) and 2 <= len(c.split()) < 6 for c in cuts)
    assert len(cuts) > 2  # not always the same pause
    assert cut_point("stop", random.Random(0), 1.0) is None and cut_point("lights off", random.Random(0), 1.0) is None
    assert cut_point(text, random.Random(0), 0.0) is None
    rate = sum(cut_point(text, random.Random(i), 0.1) is not None for i in range(2000)) / 2000
    assert 0.07 < rate < 0.13


def test_an_open_ending_that_the_next_attempt_completes_looks_cut_off(tmp_path):
    lm = BigramLM.build(["set a timer for ten minutes", "set a timer for five minutes", "turn on the light"] * 3)
    cut = turn_view(tmp_path, "Set a timer for", "timer_set", 0.6, "clarify")
    full = turn_view(tmp_path, "Set a timer for ten minutes.", "timer_set", 0.95, "done")
    f = cut_off_features(cut, full, lm)
    assert f["ep_open_end"] == 1 and f["ep_prefix_of_target"] == 1 and f["ep_words_vs_target"] < 1
    g = cut_off_features(full, None, lm)
    assert g["ep_open_end"] == 0 and g["ep_prefix_of_target"] == 0
    assert g["ep_end_logp"] > f["ep_end_logp"]  # "minutes" ends sentences, "for" does not


def test_a_cut_off_speaker_always_goes_on_and_others_sometimes_add_a_word():
    gaps = [speech_after_endpoint(True, random.Random(i), 0.04) for i in range(1000)]
    heard = [g for g in gaps if g is not None]  # the rest of the sentence, within the device's 1.5 s watch
    assert all(0 < g <= 1500 for g in heard) and 0.65 < len(heard) / len(gaps) < 0.8
    extra = [speech_after_endpoint(False, random.Random(i), 0.04) for i in range(3000)]
    share = sum(g is not None for g in extra) / len(extra)
    assert 0.025 < share < 0.055 and all(g is None or 200 <= g <= 1500 for g in extra)
    assert speech_after_endpoint(False, random.Random(0), 0.0) is None


def test_a_repeat_is_a_new_slower_take():
    piper, espeak = VoiceSpec("piper", length_scale=1.0), VoiceSpec("espeak", "en-us", rate_wpm=160)
    assert retake(piper, 0) == piper and retake(espeak, 0) == espeak
    assert retake(piper, 1).length_scale == 1.1 and retake(piper, 2).length_scale == 1.2
    assert retake(espeak, 1).rate_wpm < 160 and retake(espeak, 1).key() != espeak.key()  # new audio, new noise seed


def test_the_labeller_reads_speech_after_the_endpoint_from_the_events():
    t = {
        "turn_id": "t1",
        "started_at": 0.0,
        "record": {"transcript": "turn on the lights in"},
        "events": [{"type": "speech-after-endpoint", "data": {"offset_ms": 420.0, "source": "replay"}}],
    }
    assert view(t).after_speech_ms == 420.0
    assert view({**t, "events": []}).after_speech_ms is None
