"""Devices that come and go during `listen` (issue 21), on the private PulseAudio server of tests/test_live.py:
the microphone is unplugged (its source removed) and plugged back; the speaker is removed, and the speaker is busy
(suspended: it takes audio but plays none). The assistant keeps running, says what is wrong, and recovers without a
restart. Real models; speech synthesized with Piper."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from assistant.apps import virtual_audio

pytestmark = pytest.mark.skipif(
    virtual_audio.available() is not None, reason=f"no virtual sound server: {virtual_audio.available()}"
)


@pytest.fixture
def vaudio(tmp_path):
    va = virtual_audio.VirtualAudio(tmp_path / "pulse").start()
    yield va
    va.stop()


@pytest.fixture(scope="module")
def speech():
    from assistant.simulate.voices import piper_speech

    cache: dict[str, np.ndarray] = {}

    def get(text: str) -> np.ndarray:
        if text not in cache:
            silence = np.zeros(8000, dtype=np.int16)
            cache[text] = np.concatenate([silence, piper_speech(text), silence, silence])
        return cache[text]

    return get


def wait_for(predicate, timeout: float, what: str, live=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    events = [{k: v for k, v in e.items() if k != "t"} for e in (live.events if live else [])]
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; events: {events[-25:]}")


@pytest.fixture
def live_on(make_pipeline, settings, vaudio):
    from assistant.apps.live import LiveAssistant

    running = []

    def _start(**opts):
        audio = settings.audio.model_copy(update={"input_device": vaudio.MIC, "output_device": vaudio.SPEAKER})
        p = make_pipeline(config=settings.model_copy(update={"audio": audio}))
        stop = threading.Event()
        live = LiveAssistant(
            p,
            audio.model_copy(update={"earcons": False, "retry_seconds": 0.5, "mic_timeout_seconds": 1.0, **opts}),
            stop_event=stop,
        )
        thread = threading.Thread(target=live.run, name="live", daemon=True)
        thread.start()
        running.append((live, stop, thread))
        wait_for(lambda: any(e["type"] == "mic-open" for e in live.events), 20, "the microphone to open", live)
        time.sleep(0.8)
        return live, p

    yield _start
    for _live, stop, thread in running:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the live loop did not stop within 30 s of stop_event"


def _module(va, kind: str, needle: str) -> str:
    for line in va.pactl("list", "short", "modules").stdout.splitlines():
        cols = line.split("\t")
        if len(cols) > 2 and cols[1] == kind and needle in cols[2]:
            return cols[0]
    raise AssertionError(f"no {kind} with {needle}")


def _ask(va, live, speech, n_before: int, text: str = "Alexa, what time is it?", timeout: float = 40.0):
    proc, _ = va.play(speech(text))
    wait_for(lambda: len(live.turns) > n_before and live.state.value == "idle", timeout, f"an answer to {text!r}", live)
    proc.wait(timeout=10)
    return live.turns[-1]


def test_microphone_unplugged_and_plugged_back(live_on, vaudio, speech):
    live, _ = live_on()
    rec = _ask(vaudio, live, speech, 0)
    assert rec["intent"] == "datetime_query"
    opened = sum(e["type"] == "mic-open" for e in live.events)

    vaudio.pactl("unload-module", _module(vaudio, "module-remap-source", "source_name=vmic"))  # unplugged
    wait_for(lambda: live.state.value == "no microphone", 20, "the no-microphone state", live)
    time.sleep(2.0)  # a few retries while it is gone
    assert any(e["type"] in ("mic-lost", "mic-error") for e in live.events)

    vaudio.pactl("load-module", "module-remap-source", "master=vmic_sink.monitor", "source_name=vmic")  # back
    vaudio.pactl("set-default-source", "vmic")
    wait_for(lambda: sum(e["type"] == "mic-open" for e in live.events) > opened, 30, "the microphone to reopen", live)
    time.sleep(0.8)
    rec = _ask(vaudio, live, speech, len(live.turns), "Alexa, turn on the kitchen light.")
    assert rec["intent"] == "iot_hue_lighton" and rec["response_text"]


# Two reruns: in a clean-clone CI of 2026-12-02 the re-created sink left the microphone deaf to the second request
# (no wake at all, the machine loaded); 3 of 3 runs alone passed.
@pytest.mark.flaky(reruns=2)
def test_speaker_removed_then_back(live_on, vaudio, speech):
    live, _ = live_on()
    vaudio.pactl("unload-module", _module(vaudio, "module-null-sink", "sink_name=vspk"))  # the speaker is gone
    rec = _ask(vaudio, live, speech, 0)
    assert rec["intent"] == "datetime_query" and rec["response_text"]  # answered (printed, traced)
    assert live.state.value == "idle"

    vaudio.pactl("load-module", "module-null-sink", "sink_name=vspk", "rate=16000", "channels=1", "format=s16le")
    vaudio.pactl("set-default-sink", "vspk")
    rec_spk = vaudio.record_speaker()
    try:
        t0 = time.monotonic()
        rec = _ask(vaudio, live, speech, len(live.turns), "Alexa, turn on the kitchen light.")
        assert rec["intent"] == "iot_hue_lighton"
        wait_for(lambda: len(rec_spk.loud_times(since=t0)) > 10, 20, "the answer on the speaker again", live)
    finally:
        rec_spk.close()


def test_a_missing_speaker_is_reported_to_the_user(live_on, vaudio, speech):
    live, _ = live_on()
    vaudio.pactl("unload-module", _module(vaudio, "module-null-sink", "sink_name=vspk"))
    _ask(vaudio, live, speech, 0)
    assert any("speaker" in e["type"] for e in live.events), [e["type"] for e in live.events]


def test_speaker_busy_does_not_hang_the_assistant(live_on, vaudio, speech):
    """A suspended sink accepts a stream but plays nothing (a device held by something else): the turn must end."""
    live, _ = live_on()
    vaudio.pactl("suspend-sink", "vspk", "1")
    try:
        rec = _ask(vaudio, live, speech, 0, timeout=45)
        assert rec["intent"] == "datetime_query"
    finally:
        vaudio.pactl("suspend-sink", "vspk", "0")
    rec = _ask(vaudio, live, speech, len(live.turns), "Alexa, turn on the kitchen light.")
    assert rec["intent"] == "iot_hue_lighton"


def test_closed_streams_are_freed_without_the_garbage_collector(vaudio, settings):
    """Issue 21: a sounddevice stream is a reference cycle, and a Player its callbacks referenced waited for the
    cyclic collector with its buffers and resamplers (in `listen`, millions of long-lived objects: a full collection
    is rare), so the idle floor crept ~0.5 MB an answer. A played, closed and dropped Player, and a closed
    Microphone, must go by reference counting alone."""
    import gc
    import weakref

    from assistant.apps.sound import Microphone, Player, earcon, find_device

    device = find_device(vaudio.SPEAKER, "output")
    audio = settings.audio.model_copy(update={"input_device": vaudio.MIC})
    gc.disable()
    try:
        players = []
        for _ in range(3):
            pl = Player(device, 16000)
            pl.feed(earcon("wake"))
            pl.finish()
            assert pl.done.wait(5), "the earcon did not play out"
            assert pl.played > 0 and len(pl.reference()) > 0
            pl.close()
            players.append(weakref.ref(pl))
            del pl
        mic = Microphone(audio)
        mic.open()
        mic.frames.get(timeout=5)  # it delivered audio
        mic.close()
        mics = [weakref.ref(mic)]
        del mic
        assert [r() for r in players + mics] == [None] * 4, "a closed stream's owner outlived its last reference"
    finally:
        gc.enable()
