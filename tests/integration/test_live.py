"""Live mode end to end on a virtual microphone and speaker (a private PulseAudio daemon with null sinks).

Speech is synthesized (Piper) and played with paplay into the virtual microphone; what the assistant says is recorded
from the virtual speaker's monitor. Real models throughout. Every wait has a timeout so a hang fails fast.
Needs the Debian packages pulseaudio, pulseaudio-utils and libasound2-plugins (scripts/setup.sh installs them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from assistant.apps import virtual_audio

pytestmark = pytest.mark.skipif(
    virtual_audio.available() is not None, reason=f"no virtual sound server: {virtual_audio.available()}"
)

LONG_ANSWER = (
    "Here is a long story about a little house by the sea, where the light was always on, the kettle was "
    "always warm, and the garden ran all the way down to the water. "
) * 3


@pytest.fixture(scope="module")
def vaudio(tmp_path_factory):
    va = virtual_audio.VirtualAudio(tmp_path_factory.mktemp("pulse")).start()
    yield va
    va.stop()


@pytest.fixture(scope="module")
def speech():
    from assistant.simulate.voices import piper_speech

    cache: dict[str, np.ndarray] = {}

    def get(text: str) -> np.ndarray:
        if text not in cache:
            cache[text] = piper_speech(text)
        return cache[text]

    return get


def wait_for(predicate, timeout: float, what: str, live=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    t0 = live.events[0]["t"] if live and live.events and "t" in live.events[0] else 0.0
    events = [
        {**{k: v for k, v in e.items() if k != "t"}, "at": round(e.get("t", t0) - t0, 2)}
        for e in (live.events if live else [])
    ]
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; events: {events[-25:]}")


@pytest.fixture
def start_live(make_pipeline, settings, vaudio):
    """Start a LiveAssistant on the virtual devices in a thread; stopped (and checked to stop) at teardown."""
    from assistant.apps.live import LiveAssistant

    running = []

    def _start(echo_gain: float | None = None, respond=None, echo_cancel: bool = False, vad=None, **opts):
        vaudio.set_echo(echo_gain)
        vaudio.set_echo_cancel(echo_cancel)
        audio = settings.audio.model_copy(update={"input_device": vaudio.MIC, "output_device": vaudio.SPEAKER})
        wrap = {"respond": lambda inner: _Rewording(inner, respond)} if respond is not None else {}
        config = settings.model_copy(update={"audio": audio, "vad": settings.vad.model_copy(update=vad or {})})
        p = make_pipeline(config=config, wrap=wrap)
        stop = threading.Event()
        live = LiveAssistant(p, audio.model_copy(update={"earcons": False, **opts}), stop_event=stop)
        thread = threading.Thread(target=live.run, name="live", daemon=True)
        thread.start()
        running.append((live, stop, thread))
        wait_for(lambda: any(e["type"] == "mic-open" for e in live.events), 15, "the microphone to open", live)
        time.sleep(0.8)  # the stream's first callbacks
        return live, p

    yield _start
    for _live, stop, thread in running:
        stop.set()
        thread.join(timeout=20)
        assert not thread.is_alive(), "the live loop did not stop within 20 s of stop_event"
    vaudio.set_echo(None)
    vaudio.set_echo_cancel(False)


class _Rewording:
    """The real responder (the action happens), with the answer reworded by the test."""

    def __init__(self, inner, reword) -> None:
        self.inner, self.reword = inner, reword
        self.name, self.version = inner.name, inner.version

    def respond(self, nlu, resolved, ctx):
        return self.reword(self.inner.respond(nlu, resolved, ctx), nlu)


def _idle_after_turns(live, n: int):
    return lambda: len(live.turns) >= n and live.state.value == "idle"


def test_wake_word_command_runs_action_and_answers_through_the_speaker(start_live, vaudio, speech):
    from assistant.simulate.voices import compose

    live, p = start_live(earcons=True)
    speaker = vaudio.record_speaker()
    try:
        assert p.home.states()["kitchen.light"]["on"] is False
        _, t_play = vaudio.play(compose([0.3, speech("Alexa,"), 0.4, speech("turn on the kitchen light."), 1.0]))
        wait_for(_idle_after_turns(live, 1), 60, "one turn, answered", live)
        rec = live.turns[0]
        assert rec["wake"]["detected"] and rec["wake"]["model"] == "alexa"
        assert rec["source"]["kind"] == "microphone"
        assert rec["action"]["target"] == "kitchen.light", rec
        assert p.home.states()["kitchen.light"]["on"] is True
        assert "kitchen light" in rec["response_text"].lower()
        # The response came out of the speaker: after the wake earcon, about as much loud audio as was synthesized.
        time.sleep(0.5)
        spoken = next(e for e in live.events if e["type"] == "speaking")["t"]
        out = speaker.audio(since=spoken)
        from assistant.audio import read_file

        expected = read_file(rec["response_audio"])  # the WAV the pipeline wrote (16 kHz after decoding)
        loud = np.abs(out.astype(np.int32))
        active = np.flatnonzero(loud > 300)
        assert len(active), "nothing came out of the virtual speaker"
        heard_s = (active[-1] - active[0]) / 16000
        exp_loud = np.flatnonzero(np.abs(expected.astype(np.int32)) > 300)
        expected_s = (exp_loud[-1] - exp_loud[0]) / 16000
        assert abs(heard_s - expected_s) < 0.3 * expected_s, (heard_s, expected_s)
        # and the wake earcon played before it
        assert speaker.loud_times(since=t_play)[0] < spoken
    finally:
        speaker.close()
    trace = p.store.get_turn(rec["turn_id"])
    assert trace["record"]["source"]["kind"] == "microphone"


# Through PulseAudio's echo canceller (module-echo-cancel, WebRTC), as on a device. Without it the "Alexa" over the
# -12 dB echo scored 0.44-1.0 and missed barge_in_threshold 0.6 in 2 of 11 runs (peaks 0.44, 0.51); with it 10 of
# 10 runs barged in, at 0.87-1.0 (median 0.995), without re-runs.
# Two reruns, as the other live tests that depend on a loaded machine: in the clean-clone CI of 2026-12-02 the
# wake model never scored the barge-in "Alexa" over 0.2 (the stop word caught "stop." instead), while 5 of 5 runs
# alone passed at 0.78-1.0.
@pytest.mark.flaky(reruns=2)
def test_barge_in_stops_playback_and_is_traced(start_live, vaudio, speech):
    from assistant.simulate.voices import compose

    def long_answer(response, nlu):
        return (
            replace(response, text=LONG_ANSWER, expects_reply=False)
            if nlu.intent != "general_commandstop"
            else response
        )

    # the speaker leaks into the microphone at -12 dB; the assistant records and plays through the echo canceller
    live, p = start_live(echo_gain=0.25, respond=long_answer, echo_cancel=True)
    speaker = vaudio.record_speaker()
    t_b = None
    try:
        vaudio.play(compose([0.3, speech("Alexa,"), 0.4, speech("tell me a joke."), 1.0]))
        wait_for(lambda: any(e["type"] == "speaking" for e in live.events), 60, "the long answer to start", live)
        time.sleep(3.0)
        alexa = speech("Alexa,")
        _, t_b = vaudio.play(compose([alexa, 0.3, speech("stop."), 1.0]), "barge.wav")
        wait_for(_idle_after_turns(live, 2), 60, "the interrupted turn and the stop request", live)
        time.sleep(0.3)
        barge = [e for e in live.events if e["type"] == "barge-in"]
        assert len(barge) == 1 and barge[0]["reason"] == "wake", barge
        b = barge[0]
        assert b["stopped_t"] - b["decided_t"] < 0.25
        # On the speaker: the long answer's audio ends within 250 ms of the decision (parec's own latency included).
        # The next answer cannot start within 1 s of it ("stop" is still being said and endpointed).
        loud = [t for t in speaker.loud_times(since=b["decided_t"] - 1.0) if t < b["decided_t"] + 1.0]
        assert loud and loud[-1] - b["decided_t"] < 0.25, (loud[-3:], b)
        # From the end of the spoken wake word (paplay latency 30 ms) to the decision: the detector's own delay.
        print(
            f"barge-in: wake word end -> playback stopped "
            f"{b['stopped_t'] - (t_b + 0.03 + np.flatnonzero(np.abs(alexa.astype(np.int32)) > 500)[-1] / 16000):.3f} s"
        )
        first, then = live.turns
        trace = p.store.get_turn(first["turn_id"])
        ev = [e for e in trace["events"] if e["type"] == "barge-in"]
        assert len(ev) == 1
        assert 1000 < ev[0]["data"]["offset_ms"] < 30000 and ev[0]["t_ms"] == ev[0]["data"]["offset_ms"]
        assert then["wake"].get("barge_in") is True
        assert "stop" in (then["transcript"] or "").lower(), then["transcript"]
    finally:
        speaker.close()
        # the margin over barge_in_threshold, for measuring (-s): the score that barged in, else the best one seen
        if t_b is not None:
            scores = [e["score"] for e in live.events if e["type"] in ("wake-score", "barge-in") and e["t"] >= t_b]
            print(f"barge-in: wake score {max(scores, default=0.0):.3f}")


def test_own_voice_saying_the_wake_word_does_not_wake_it(start_live, vaudio, speech):
    from assistant.simulate.voices import compose

    said = []

    def echo_bait(response, nlu):
        if said:
            return response
        said.append(True)
        return replace(
            response,
            text="Alexa, turn on the kitchen light. Alexa, turn on the kitchen light, please.",
            expects_reply=False,
        )

    live, p = start_live(echo_gain=1.0, respond=echo_bait)  # worst case: its own voice as loud as the user's
    vaudio.play(compose([0.3, speech("Alexa,"), 0.4, speech("tell me a joke."), 1.0]))
    wait_for(_idle_after_turns(live, 1), 60, "the answer", live)
    time.sleep(3.5)  # the echo tail and the wake model's window
    wakes = [e for e in live.events if e["type"] == "wake"]
    assert len(wakes) == 1, wakes
    assert not [e for e in live.events if e["type"] == "barge-in"], [
        e for e in live.events if e["type"] in ("barge-in", "echo-rejected", "wake-score", "stop-candidate")
    ]
    assert len(live.turns) == 1
    assert p.home.states()["kitchen.light"]["on"] is False


def test_follow_up_question_is_answered_without_the_wake_word(start_live, vaudio, speech):
    from assistant.simulate.voices import compose

    asked = []

    def ask_first(response, nlu):
        if asked:
            return response
        asked.append(True)
        return replace(response, text="Which light?", expects_reply=True)

    live, p = start_live(respond=ask_first, follow_up_seconds=5.0)
    vaudio.play(compose([0.3, speech("Alexa,"), 0.4, speech("turn on the light."), 1.0]))
    wait_for(
        lambda: any(e["type"] == "listening" and e.get("follow_up") for e in live.events),
        60,
        "follow-up listening",
        live,
    )
    vaudio.play(compose([0.5, speech("the kitchen light."), 1.0]), "answer.wav")
    wait_for(_idle_after_turns(live, 2), 60, "the answer to the question", live)
    second = live.turns[1]
    assert second["wake"].get("follow_up") is True and not second["wake"].get("detected")
    assert "kitchen" in (second["transcript"] or "").lower()


def test_semantic_endpoint_ends_a_complete_request_at_the_pause(start_live, vaudio, speech):
    """With a speculative pause, a whole request ends after 0.24 s of silence, not 0.5 s, and the turn uses the
    transcript decoded at the pause (no second decode)."""
    from assistant.simulate.voices import compose

    live, p = start_live(vad={"speculative_pause_seconds": 0.24})
    vaudio.play(compose([0.3, speech("Alexa,"), 0.4, speech("turn on the kitchen light."), 1.5]))
    wait_for(_idle_after_turns(live, 1), 60, "one turn, answered", live)
    rec = live.turns[0]
    assert rec["source"]["endpoint"] == "complete", rec["source"]
    assert p.home.states()["kitchen.light"]["on"] is True
    span = next(s for s in p.store.get_turn(rec["turn_id"])["spans"] if s["stage"] == "asr")
    assert span["input"]["speculative"]["verdict"] == "complete"
    assert rec["latency_ms"]["speculation_ready"] >= 240


def test_missing_microphone_gives_a_clear_message_and_retries(make_pipeline, settings):
    from assistant.apps.live import LiveAssistant

    audio = settings.audio.model_copy(update={"input_device": "no-such-microphone"})
    p = make_pipeline(config=settings.model_copy(update={"audio": audio}))
    stop = threading.Event()
    live = LiveAssistant(p, audio.model_copy(update={"earcons": False, "retry_seconds": 0.3}), stop_event=stop)
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    wait_for(lambda: len([e for e in live.events if e["type"] == "mic-error"]) >= 2, 15, "two attempts", live)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    err = next(e for e in live.events if e["type"] == "mic-error")
    assert err["code"] == "audio-input-not-found"
    assert "no-such-microphone" in err["message"] and "assistant devices" in err["message"]
    assert live.state.value == "stopped"


def test_echo_explained_separates_echo_from_a_user_talking_over_it():
    from assistant.apps.echo import echo_explained

    rng = np.random.default_rng(0)
    ref = (rng.normal(0, 3000, 16000 * 3)).astype(np.int16)
    echo = (0.3 * ref[8000 : 8000 + 19200]).astype(np.int16)  # a delayed, quieter copy
    assert echo_explained(echo, ref) > 0.95
    user = rng.normal(0, 3000, len(echo)).astype(np.float32)
    mixed = np.clip(echo + user, -32768, 32767).astype(np.int16)
    assert echo_explained(mixed, ref) < 0.2
    assert echo_explained(np.zeros(19200, np.int16), ref) == 0.0


def test_speech_right_after_the_endpoint_is_recorded_on_the_turn(start_live, vaudio, speech):
    """ "Alexa, turn on the lights in ... the bedroom": the pause (1.0 s) ends the request at "in"; the rest of the
    sentence comes while the assistant thinks or answers, and the turn's trace records it (`speech-after-endpoint`,
    what the failure point labeller reads as a sign of a cut-off). A request followed by silence records nothing."""
    from assistant.simulate.voices import compose

    live, p = start_live()
    vaudio.play(
        compose([0.3, speech("Alexa,"), 0.4, speech("turn on the lights in"), 1.0, speech("the bedroom."), 2.5])
    )
    wait_for(_idle_after_turns(live, 1), 60, "the cut-off turn, answered", live)
    vaudio.play(compose([0.3, speech("Alexa,"), 0.4, speech("what time is it?"), 3.0]))
    wait_for(_idle_after_turns(live, 2), 60, "the second turn, answered", live)
    cut, quiet = live.turns[0], live.turns[1]
    assert cut["source"]["end_seconds"] < 4.0, cut["source"]  # ended at the pause, not after "the bedroom"
    after = [
        [e for e in p.store.get_turn(r["turn_id"])["events"] if e["type"] == "speech-after-endpoint"]
        for r in (cut, quiet)
    ]
    assert len(after[0]) == 1 and after[1] == [], after
    assert 0 <= after[0][0]["data"]["offset_ms"] <= 1500, after
    assert after[0][0]["data"]["source"] == "microphone"
