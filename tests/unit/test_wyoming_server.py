"""`assistant serve wyoming` without models: addresses and satellite targets, the localhost default, routing, error
events for bad requests (the connection stays usable), audio chunking and conversion."""

from __future__ import annotations

import asyncio
import socket
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize

from assistant.apps.wyoming import asr as wy_asr
from assistant.apps.wyoming.satellite import parse_target
from assistant.apps.wyoming.server import check_uri, serve
from assistant.apps.wyoming.service import Service
from assistant.apps.wyoming.tts import audio_events
from assistant.cli import main as cli_main
from assistant.config import load_settings
from assistant.errors import AssistantError


def test_satellite_targets_parse_with_and_without_a_device():
    assert parse_target("tcp://192.168.1.31:10700") == ("tcp://192.168.1.31:10700", None)
    assert parse_target("kitchen.speaker@tcp://pi.local:10700") == ("tcp://pi.local:10700", "kitchen.speaker")
    for bad in ("pi.local:10700", "tcp://pi.local", "http://pi:1"):
        with pytest.raises(AssistantError) as err:
            parse_target(bad)
        assert err.value.code == "wyoming-bad-satellite" and "tcp://HOST:PORT" in err.value.message


def test_the_server_binds_to_localhost_unless_told_otherwise():
    check_uri("tcp://127.0.0.1:10700")
    check_uri("unix:///tmp/assistant.sock")
    with pytest.raises(AssistantError) as err:
        check_uri("tcp://0.0.0.0:10700")
    assert err.value.code == "wyoming-remote-bind" and "--allow-remote" in err.value.message
    check_uri("tcp://0.0.0.0:10700", allow_remote=True)
    for bad in ("http://x:1", "tcp://127.0.0.1"):
        with pytest.raises(AssistantError):
            check_uri(bad)


def test_cli_refuses_a_remote_address_before_loading_anything(capsys):
    assert cli_main.main(["serve", "wyoming", "--uri", "tcp://0.0.0.0:10799"]) == 1
    assert "wyoming-remote-bind" in capsys.readouterr().err


def test_tts_audio_is_sent_in_chunks_of_1024_samples():
    events = audio_events(np.arange(2500, dtype=np.int16), 22050)
    chunks = [AudioChunk.from_event(e) for e in events]
    assert [len(c.audio) for c in chunks] == [2048, 2048, 2 * 452]
    assert all(c.rate == 22050 and c.width == 2 and c.channels == 1 for c in chunks)
    assert np.array_equal(np.frombuffer(b"".join(c.audio for c in chunks), np.int16), np.arange(2500))


def test_asr_audio_is_converted_to_16k_mono_and_bounded():
    session = wy_asr.AsrSession()
    stereo_48k = np.zeros((4800, 2), np.int16)  # 0.1 s
    session.add(AudioChunk(rate=48000, width=2, channels=2, audio=stereo_48k.tobytes()))
    assert len(session.samples()) == 1600
    session.add(AudioChunk(rate=16000, width=2, channels=1, audio=bytes(int(wy_asr.MAX_SECONDS * 16000 * 2))))
    assert session.too_long


class _Server:
    def __init__(self, service) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main():
            self.stop = asyncio.Event()
            started = asyncio.Event()
            task = asyncio.create_task(serve(service, f"tcp://127.0.0.1:{self.port}", started=started, stop=self.stop))
            await started.wait()
            ready.set()
            await task

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def test_bad_events_get_error_events_and_the_connection_goes_on():
    """A runner without asr/tts stages (no models): every request it cannot serve is an error event, not a crash."""
    runner = SimpleNamespace(settings=load_settings(), asr=None, tts=None, wake=None, nlu=None, run_due=lambda now: [])
    service = Service(runner, workers=1)
    srv = _Server(service)
    try:

        async def run():
            async with AsyncTcpClient("127.0.0.1", srv.port) as client:
                out = []
                for ev in (
                    Event(type="no-such-event"),
                    Synthesize(text="hello").event(),
                    Event(type="transcript", data={"text": ""}),
                    Event(type="audio-chunk", data={"rate": 16000}),
                    Ping(text="still there?").event(),
                ):
                    await client.write_event(ev)
                    out.append(await asyncio.wait_for(client.read_event(), 10))
                return out

        out = asyncio.run(run())
    finally:
        srv.close()
        service.close()
    codes = [Error.from_event(e).code if Error.is_type(e.type) else e.type for e in out]
    assert codes == [
        "wyoming-unsupported-event",
        "tts-disabled",
        "handle-empty-text",
        "wyoming-bad-event",
        "pong",
    ], codes
    assert Pong.from_event(out[-1]).text == "still there?"
    assert "transcribe" in Error.from_event(out[0]).text  # says what the server does serve
    assert "width" in Error.from_event(out[3]).text  # names the missing field


class _SlowDetector:
    """A wake detector that takes a while per frame and records a reset that lands while it is processing (what
    crashed a TFLite model in CI: a client left mid-chunk and its detector was reset and pooled meanwhile)."""

    def __init__(self) -> None:
        self.busy = threading.Event()
        self.reset_while_busy = False
        self.frames = 0

    def process(self, frame):
        self.busy.set()
        threading.Event().wait(0.02)
        self.frames += 1
        self.busy.clear()
        return {"hey_jarvis": 0.0}

    def reset(self) -> None:
        self.reset_while_busy |= self.busy.is_set()


def test_a_client_leaving_mid_chunk_gets_its_wake_detector_pooled_only_after_the_chunk():
    from assistant.apps.wyoming.wake import FRAME, WakeHandler, WakeStream

    runner = SimpleNamespace(settings=load_settings(), asr=None, tts=None, wake=None, nlu=None)
    service = Service(runner, workers=2)  # the release gets a thread of its own at once: the lock holds it back
    detector = _SlowDetector()
    models = ("hey_jarvis",)
    service._pool[("wake", models)] = [detector]
    handler = WakeHandler(service, "tcp://test")
    stream = WakeStream(models=models)
    try:
        running = service.submit(handler._process, stream, np.zeros(FRAME * 10, np.int16))
        assert detector.busy.wait(5)
        handler.close()  # the client disconnected while its chunk is in a pool thread
        assert running.result(10) == []
        for _ in range(500):  # the release has run: the detector is back in the pool
            if service._pool[("wake", models)]:
                break
            threading.Event().wait(0.01)
        late = handler._process(stream, np.zeros(FRAME, np.int16))  # a chunk that arrived as it left
    finally:
        service.close()
    assert not detector.reset_while_busy
    assert detector.frames == 10 and late == []
    assert service._pool[("wake", models)] == [detector]  # back in the pool, once
