"""The pure endpointer on plain sequences of (time, wake score, speech probability): no audio, no models."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.core.endpointer import EndpointConfig, Endpointer, FrameBuffer
from assistant.core.events import (
    ListeningStarted,
    ListenTimeout,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    WakeDetected,
)

F = 0.08
CFG = EndpointConfig(
    frame_seconds=F,
    wake_threshold=0.5,
    refractory_seconds=2.0,
    speech_threshold=0.5,
    start_timeout_seconds=1.0,
    end_silence_seconds=0.48,
    max_request_seconds=4.0,
    min_speech_seconds=0.24,
    pre_roll_seconds=0.24,
)


def run(ep: Endpointer, wake: list[float], speech: list[float], finish: bool = True) -> list:
    """Feed frame i (ending at (i+1)*F) its wake score and speech probability; return every event."""
    events = []
    t = 0.0
    for i, (w, s) in enumerate(zip(wake, speech, strict=True)):
        t = round((i + 1) * F, 6)
        events += ep.feed(
            t, wake_score=w if ep.wants_wake else None, wake_model="alexa", speech_prob=s if ep.wants_speech else None
        )
    if finish:
        events += ep.finish(t)
    return events


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_wake_then_speech_then_silence_ends_at_the_endpoint():
    # frame 3 wakes; speech in frames 6-10; silence after
    wake = [0.0, 0.1, 0.9] + [0.0] * 20
    speech = [0.0] * 5 + [0.9] * 5 + [0.0] * 13
    ev = run(Endpointer(CFG), wake, speech)
    assert [type(e) for e in ev[:2]] == [WakeDetected, ListeningStarted]
    assert ev[0].t == pytest.approx(3 * F) and ev[0].score == 0.9
    assert of(ev, SpeechStarted)[0].t == pytest.approx(5 * F)  # start of frame 6
    end = of(ev, SpeechEnded)
    assert len(end) == 1 and end[0].reason == "endpoint"
    assert end[0].start == pytest.approx(3 * F) and end[0].speech_end == pytest.approx(10 * F)
    assert end[0].end == pytest.approx(16 * F)  # 6 silent frames = 0.48 s after the last speech frame
    assert end[0].endpoint_wait == pytest.approx(0.48)


def test_below_threshold_never_wakes_and_refractory_blocks_a_second_wake():
    assert run(Endpointer(CFG), [0.49] * 10, [0.9] * 10) == []
    # wake, a short request, then the same score again 0.5 s later: inside the 2 s refractory
    wake = [0.9] + [0.0] * 9 + [0.9] * 3 + [0.0] * 30 + [0.9] + [0.0] * 3
    speech = [0.0, 0.9, 0.9] + [0.0] * 44
    ev = run(Endpointer(CFG), wake, speech)
    wakes = of(ev, WakeDetected)
    assert len(wakes) == 2  # the first, and the one after the refractory period
    assert wakes[1].t - of(ev, SpeechEnded)[0].end >= CFG.refractory_seconds


def test_wake_word_with_nothing_after_it_times_out():
    ev = run(Endpointer(CFG), [0.9] + [0.0] * 20, [0.0] * 21)
    to = of(ev, ListenTimeout)
    assert len(to) == 1 and to[0].reason == "timeout" and to[0].start == pytest.approx(F)
    # at the first frame end at least start_timeout after listening began
    assert CFG.start_timeout_seconds <= to[0].t - to[0].start < CFG.start_timeout_seconds + F
    assert not of(ev, SpeechEnded)


def test_endless_speech_is_cut_at_max_length():
    ev = run(Endpointer(CFG), [0.9] + [0.0] * 80, [0.0] + [0.9] * 80)
    end = of(ev, SpeechEnded)
    assert end[0].reason == "max-length" and end[0].end - end[0].start == pytest.approx(CFG.max_request_seconds)
    assert end[0].endpoint_wait == 0.0


def test_stream_ending_mid_request():
    ev = run(Endpointer(CFG), [0.9] + [0.0] * 5, [0.0] + [0.9] * 5)
    assert of(ev, SpeechEnded)[0].reason == "end-of-file"
    ev = run(Endpointer(CFG), [0.9, 0.0], [0.0, 0.0])
    assert of(ev, ListenTimeout)[0].reason == "end-of-file"


def test_no_wake_mode_segments_speech_with_pre_roll_and_drops_short_noise():
    ep = Endpointer(CFG, wake_word=False)
    assert not ep.wants_wake and ep.wants_speech
    # 5 silent frames, 4 speech, 8 silent, 1 speech blip (0.08 s < min_speech), 8 silent
    speech = [0.0] * 5 + [0.9] * 4 + [0.0] * 8 + [0.9] + [0.0] * 8
    ev = run(ep, [0.0] * len(speech), speech)
    ends = of(ev, SpeechEnded)
    assert len(ends) == 1 and len(of(ev, SpeechStarted)) == 2
    pre = int(CFG.pre_roll_seconds / F)
    assert ends[0].start == pytest.approx((5 - pre) * F)  # the pre-roll before the first speech frame
    assert ends[0].speech_start == pytest.approx(5 * F) and ends[0].speech_end == pytest.approx(9 * F)


def test_pre_roll_never_reaches_before_the_stream():
    ev = run(Endpointer(CFG, wake_word=False), [0.0] * 12, [0.9] * 4 + [0.0] * 8)
    assert of(ev, SpeechEnded)[0].start == 0.0


def test_follow_up_listening_ignores_the_echo_tail_and_has_its_own_timeout():
    ep = Endpointer(CFG)
    assert isinstance(ep.listen(0.0, follow_up=True, start_timeout=0.8, ignore_until=0.3), ListeningStarted)
    # speech in the first 0.3 s is the question's echo: it neither starts the request nor keeps it alive
    ev = []
    for i, s in enumerate([0.9] * 3 + [0.0] * 10):
        ev += ep.feed(round((i + 1) * F, 6), speech_prob=s)
    to = of(ev, ListenTimeout)
    assert not of(ev, SpeechStarted) and len(to) == 1 and to[0].follow_up and to[0].t == pytest.approx(0.8)


def test_a_raised_threshold_and_cancel_for_echo():
    ep = Endpointer(CFG)
    assert ep.feed(0.08, wake_score=0.55, wake_threshold=0.6) == []  # gated while speaking
    ev = ep.feed(0.16, wake_score=0.7, wake_threshold=0.6)
    assert of(ev, WakeDetected) and ep.listening
    ep.cancel(0.16)  # the caller found it was the assistant's own voice
    assert not ep.listening and ep.wants_wake


def test_frame_buffer_cuts_exactly_the_frames_of_a_request():
    buf = FrameBuffer(F, max_seconds=1.0)
    for i in range(20):
        buf.append(round((i + 1) * F, 6), np.full(4, i, dtype=np.int16))
    cut = buf.cut(start=5 * F, end=8 * F)  # frames ending at 6F, 7F, 8F: indices 5, 6, 7
    assert list(cut[::4]) == [5, 6, 7]
    assert len(buf.cut(0.0, 2 * F)) == 0  # older than the buffer keeps: gone


def test_a_pause_invites_a_speculative_decode_and_a_complete_request_ends_there():
    cfg = EndpointConfig(**{**CFG.__dict__, "pause_seconds": 0.24})
    ep = Endpointer(cfg)
    ev = []
    for i, (w, s) in enumerate(zip([0.9] + [0.0] * 12, [0.0] + [0.9] * 4 + [0.0] * 8)):
        t = round((i + 1) * F, 6)
        ev += ep.feed(t, wake_score=w if ep.wants_wake else None, speech_prob=s if ep.wants_speech else None)
        if any(isinstance(e, SpeechPaused) for e in ev) and ep.listening:
            ev += ep.end_now(t)  # the caller's decode said: a whole request
    paused = [e for e in ev if isinstance(e, SpeechPaused)]
    end = of(ev, SpeechEnded)
    assert len(paused) == 1 and paused[0].t - paused[0].speech_end == pytest.approx(0.24)
    assert end[0].reason == "complete" and end[0].end == paused[0].t
    assert end[0].endpoint_wait == pytest.approx(0.24)  # instead of 0.48


def test_speech_after_a_pause_resumes_and_an_unfinished_request_waits_longer():
    cfg = EndpointConfig(**{**CFG.__dict__, "pause_seconds": 0.24, "incomplete_silence_seconds": 0.96})
    ep = Endpointer(cfg)
    # wake, speech, a 0.4 s pause (the caller finds "turn on the": wait longer), speech, then silence
    speech = [0.0] + [0.9] * 3 + [0.0] * 5 + [0.9] * 3 + [0.0] * 16
    ev, waited = [], False
    for i, s in enumerate(speech):
        t = round((i + 1) * F, 6)
        new = ep.feed(t, wake_score=0.9 if i == 0 else 0.0, speech_prob=s if ep.wants_speech else None)
        if any(isinstance(e, SpeechPaused) for e in new) and not waited:
            ep.wait_longer()
            waited = True
        ev += new
    assert len(of(ev, SpeechResumed)) == 1 and len(of(ev, SpeechPaused)) == 2
    end = of(ev, SpeechEnded)
    # the pause after "the" did not end it; after the second part, the usual silence did (wait_longer was per pause)
    assert len(end) == 1 and end[0].reason == "endpoint" and end[0].speech_end == pytest.approx(12 * F)


def test_turn_end_judge():
    from assistant.understanding.turn_end import judge

    assert judge("Turn on the", 0.99).kind == "incomplete"
    assert judge("set a timer for", 0.9).kind == "incomplete"
    assert judge("Um...", None).kind == "incomplete"
    assert judge("What time is it?", 0.98).kind == "complete"
    assert judge("What time is it?", 0.5).kind == "unsure"
    assert judge("", None).kind == "incomplete"
    # Whisper spells a trailing "to" / "by" the speaker paused after as "too" / "bye" (bench --endpointing)
    assert judge("Turn the heating up too.", 0.95).kind == "incomplete"
    assert judge("Play some music, bye!", 0.95).kind == "incomplete"
    assert judge("Play some music by the Beatles.", 0.95).kind == "complete"
