"""The satellite brain: connect to a Wyoming satellite (wyoming-satellite on a Pi), run the whole pipeline on its
microphone stream and play the answers through its speaker, with barge-in and follow-ups.

A satellite is a server (it listens, Home Assistant connects to it); here this process connects instead:
Describe -> Info (its name, area), RunSatellite, then the satellite streams AudioChunks (always, or after its local
wake word / VAD; its RunPipeline says which stage to start at). Per satellite, one frame thread (like the live
loop's control thread, assistant/apps/live.py) feeds each 80 ms frame to the satellite's own openWakeWord and Silero
detectors and the pure endpointer: wake word -> Detection, speech -> VoiceStarted / VoiceStopped, the request ->
a runner turn (in the service's pool, device = this satellite, so "here" is its room and each satellite has its own
sessions) -> Transcript, Synthesize and the answer's AudioStart / AudioChunk... / AudioStop as Piper makes them.

The answer is sent paced to real time (at most `LEAD_SECONDS` ahead of what the satellite has played), so a
barge-in (the wake word, at `audio.barge_in_threshold`, while it speaks) stops it within that lead: the rest is
dropped and AudioStop sent. An answer that asks a question (expects_reply) is followed by listening without the wake
word for `audio.follow_up_seconds`. The satellite's own echo canceller (wyoming-satellite --mic-auto-gain /
--mic-noise-suppression, or PulseAudio's module-echo-cancel on the Pi) is the defence against hearing itself; the
live loop's software echo gates are not applied here (the played audio's timing at the satellite is not known).

A satellite that goes away is reconnected every `reconnect_seconds`; its turn in progress finishes (the home state
changes and is traced), its audio is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import RunSatellite
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from assistant import audio as audio_io
from assistant.apps.wyoming.service import Service, source
from assistant.apps.wyoming.tts import audio_events
from assistant.core.endpointer import AFTER_SPEECH_WINDOW_S, EndpointConfig, Endpointer, FrameBuffer
from assistant.core.events import (
    BargeIn,
    ListenTimeout,
    ResponseAudio,
    ResponsePlayed,
    SpeechAfterEndpoint,
    SpeechEnded,
    SpeechStarted,
    StageEnded,
    WakeDetected,
)
from assistant.core.record import TurnRecord
from assistant.core.request import Request
from assistant.errors import AssistantError, StageError

_LOGGER = logging.getLogger(__name__)
RATE = audio_io.PIPELINE_RATE
FRAME = audio_io.FRAME_SAMPLES
FRAME_S = FRAME / RATE
LEAD_SECONDS = 0.4
"""How far ahead of real time answer audio is sent: a barge-in stops the satellite's speaker within about this."""


def parse_target(spec: str) -> tuple[str, str | None]:
    """`tcp://HOST:PORT` or `DEVICE_ID@tcp://HOST:PORT` -> (uri, device id or None)."""
    device, _, uri = spec.rpartition("@") if "@" in spec.split("://", 1)[0] else ("", "", spec)
    u = urlparse(uri)
    if u.scheme not in ("tcp", "unix") or (u.scheme == "tcp" and (u.hostname is None or u.port is None)):
        raise AssistantError(
            "wyoming-bad-satellite",
            f"{spec!r}: a satellite is tcp://HOST:PORT (or DEVICE_ID@tcp://HOST:PORT, DEVICE_ID one of the home's "
            "satellites).",
        )
    return uri, device or None


@dataclass
class _Turn:
    request: Request
    done: threading.Event = field(default_factory=threading.Event)
    played: threading.Event = field(default_factory=threading.Event)
    record: TurnRecord | None = None
    cancelled: bool = False
    had_audio: bool = False
    played_seconds: float = 0.0
    barge_in: dict[str, Any] | None = None
    ended_t: float | None = None
    """Stream time of the request's endpoint, watched for speech right after it (as `listen` does)."""
    after_speech: dict[str, Any] | None = None


class SatelliteSession:
    """The frame thread's state for one connected satellite (all its methods run on that thread; a turn's listener
    and work run in the service's pool and only set the turn's flags and queue events to send)."""

    def __init__(self, link: SatelliteLink, start_stage: str = PipelineStage.WAKE.value) -> None:
        svc = link.service
        self.link = link
        self.service = svc
        self.wake = svc.new_detector("wake")
        self.vad = svc.new_detector("vad")
        opts = svc.settings.audio
        self.opts = opts
        self.cfg = EndpointConfig.from_settings(svc.settings, FRAME_S)
        self.ep = Endpointer(self.cfg, wake_word=True)
        self.buf = FrameBuffer(FRAME_S, max(self.cfg.max_request_seconds, opts.follow_up_seconds) + 2.0)
        self.converter = AudioChunkConverter(RATE, 2, 1)
        self.rest = np.zeros(0, np.int16)
        self.t = 0.0
        self.turn: _Turn | None = None
        self.listening: dict[str, Any] | None = None  # the wake info of the request being collected
        self.listen_start = 0.0
        self.follow_up = False
        self.barge_threshold = max(svc.settings.wake.threshold, opts.barge_in_threshold)
        self.wake.reset()
        self.vad.reset()
        if start_stage == PipelineStage.ASR.value:  # the satellite woke locally: its audio is the request
            self._listen({"detected": True, "model": "satellite", "remote": True})

    # -- audio in -----------------------------------------------------------------------------------------------
    def feed(self, chunk: AudioChunk) -> None:
        audio = np.frombuffer(self.converter.convert(chunk).audio, np.int16)
        audio = np.concatenate([self.rest, audio])
        n = len(audio) // FRAME * FRAME
        self.rest = audio[n:]
        for i in range(0, n, FRAME):
            self.t = round(self.t + FRAME_S, 6)
            self.buf.append(self.t, audio[i : i + FRAME])
            self._frame(audio[i : i + FRAME], self.t)

    def _frame(self, frame: np.ndarray, t: float) -> None:
        turn = self.turn
        if turn is not None:
            if self.listening is None and turn.ended_t is not None and turn.after_speech is None:
                self._watch_after_speech(frame, t, turn)
            if turn.done.is_set() and turn.played.is_set():
                self._after_turn(turn, t)
            elif self.listening is None and self.opts.barge_in and turn.had_audio and not turn.cancelled:
                self._watch_barge_in(frame, t, turn)
                return
            elif self.listening is None:
                return
        if self.ep.wants_wake:
            model, score = max(self.wake.process(frame).items(), key=lambda kv: kv[1])
            events = self.ep.feed(t, wake_score=score, wake_model=model)
        else:
            events = self.ep.feed(t, speech_prob=self.vad.speech_probability(frame))
        for ev in events:
            if isinstance(ev, WakeDetected):
                self.link.send(Detection(name=ev.model, timestamp=int(ev.t * 1000)).event())
                self.vad.reset()
                self.listening = {"detected": True, "score": round(ev.score, 4), "model": ev.model}
                self.listen_start, self.follow_up = t, False
            elif isinstance(ev, SpeechStarted):
                self.link.send(VoiceStarted(timestamp=int(ev.t * 1000)).event())
            elif isinstance(ev, SpeechEnded):
                self.link.send(VoiceStopped(timestamp=int(ev.t * 1000)).event())
                self._request(ev, t)
            elif isinstance(ev, ListenTimeout):
                self._timeout(ev, t)

    def _listen(self, wake: dict[str, Any], follow_up: bool = False, start_timeout: float | None = None) -> None:
        self.vad.reset()
        self.ep.listen(self.t, follow_up=follow_up, start_timeout=start_timeout, ignore_until=self.t + 0.1)
        self.listening, self.listen_start, self.follow_up = wake, self.t, follow_up

    def _source(self, t: float, reason: str, ev: SpeechEnded | None = None) -> dict[str, Any]:
        link = self.link
        src = source(
            "satellite",
            link.uri,
            satellite=link.name,
            device=link.device_id,
            endpoint=reason,
            offset_seconds=0.0,
            end_seconds=round(t - self.listen_start, 2),
            follow_up=self.follow_up,
        )
        if ev is not None:
            src["speech_start_seconds"] = round(max(0.0, ev.speech_start - self.listen_start), 2)
            src["speech_end_seconds"] = round(ev.speech_end - self.listen_start, 2)
        return src

    def _request(self, ev: SpeechEnded, t: float) -> None:
        req = Request(
            source=self._source(t, ev.reason, ev),
            wake=dict(self.listening or {}),
            samples=self.buf.cut(ev.start, ev.end),
            now=datetime.now(),
            endpoint_wait_ms=ev.endpoint_wait * 1000,
            device_id=self.link.device_id,
        )
        self.listening = None
        if self.turn is not None:  # a barge-in's request while the interrupted turn still finishes: wait for it
            self.turn.done.wait(30)
            self._finish(self.turn)
        self._start_turn(req, ended_t=t)

    def _timeout(self, ev: ListenTimeout, t: float) -> None:
        wake, self.listening = self.listening or {}, None
        self.wake.reset()
        self.ep.refractory(t + 0.3)
        if self.follow_up:
            return
        # The wake word with nothing after it: traced like live and replay do (no-speech-after-wake), quietly.
        req = Request(
            source=self._source(t, ev.reason),
            wake=wake,
            now=datetime.now(),
            speak=False,
            error=StageError("no-speech-after-wake", "The wake word was heard but no request followed.", "vad"),
            device_id=self.link.device_id,
        )
        self.service.background(self.service.run_turn, req)

    # -- the turn -------------------------------------------------------------------------------------------
    def _start_turn(self, req: Request, ended_t: float | None = None) -> None:
        turn = _Turn(request=req, ended_t=ended_t)
        self.turn = turn
        link = self.link

        def listener(event) -> None:  # runner events of this turn -> satellite events
            if isinstance(event, StageEnded) and event.stage == "asr" and isinstance(event.output, dict):
                link.send(Transcript(text=event.output.get("text", "")).event())
            elif isinstance(event, StageEnded) and event.stage == "respond" and isinstance(event.output, dict):
                link.send(Synthesize(text=event.output.get("text", "")).event())
            elif isinstance(event, ResponseAudio) and not turn.cancelled:
                if not turn.had_audio:
                    turn.had_audio = True
                    self.wake.reset()  # a fresh window for barge-in detection
                    link.send(AudioStart(rate=event.sample_rate, width=2, channels=1).event(), turn)
                for ev in audio_events(event.samples, event.sample_rate):
                    link.send(ev, turn)

        def work() -> None:
            try:
                turn.record = self.service.run_turn(req, listener)
            except Exception:  # noqa: BLE001 - the satellite keeps listening whatever one turn does
                _LOGGER.exception("satellite %s: turn failed", link.name)
            finally:
                turn.done.set()
                if turn.had_audio:
                    link.send(AudioStop().event(), turn, last=True)
                else:
                    turn.played.set()

        self.service.background(work)

    def _watch_after_speech(self, frame: np.ndarray, t: float, turn: _Turn) -> None:
        """Speech within AFTER_SPEECH_WINDOW_S of the endpoint (the rest of a sentence cut at a pause, or an
        afterthought): recorded on the turn as `speech-after-endpoint`, for failure point isolation."""
        if t - turn.ended_t > AFTER_SPEECH_WINDOW_S:
            turn.ended_t = None  # the window is over: stop running the VAD
            return
        if self.vad.speech_probability(frame) >= self.cfg.speech_threshold:
            offset_ms = round((t - FRAME_S - turn.ended_t) * 1000, 1)
            turn.after_speech = {"offset_ms": offset_ms, "source": "satellite", "during_answer": turn.had_audio}

    def _watch_barge_in(self, frame: np.ndarray, t: float, turn: _Turn) -> None:
        model, score = max(self.wake.process(frame).items(), key=lambda kv: kv[1])
        if score < self.barge_threshold:
            return
        turn.cancelled = True
        turn.barge_in = {
            "offset_ms": round(turn.played_seconds * 1000, 1),
            "reason": "wake",
            "model": model,
            "score": round(score, 4),
        }
        self.link.send(Detection(name=model, timestamp=int(t * 1000)).event())
        self._listen({"detected": True, "score": round(score, 4), "model": model, "barge_in": True})

    def _finish(self, turn: _Turn) -> None:
        """The turn is over (played or cut short): what happened after it goes to its trace."""
        self.turn = None
        rec = turn.record
        self.wake.reset()
        if rec is not None:
            if turn.had_audio:
                self.service.runner.emit(ResponsePlayed(rec.turn_id, stopped=turn.cancelled))
            if turn.barge_in is not None:
                b = turn.barge_in
                data = {k: v for k, v in b.items() if k not in ("offset_ms", "reason")}
                self.service.runner.emit(BargeIn(rec.turn_id, b["offset_ms"], b["reason"], data))
            if turn.after_speech is not None:
                self.service.runner.emit(
                    SpeechAfterEndpoint(rec.turn_id, turn.after_speech["offset_ms"], turn.after_speech)
                )

    def _after_turn(self, turn: _Turn, t: float) -> None:
        self._finish(turn)
        rec = turn.record
        if self.listening is not None:  # a barge-in is already collecting the next request
            return
        if rec is not None and rec.expects_reply and turn.barge_in is None and self.opts.follow_up_seconds > 0:
            self._listen(
                {"detected": False, "follow_up": True, "after_turn": rec.turn_id},
                follow_up=True,
                start_timeout=self.opts.follow_up_seconds,
            )
            return
        self.ep.refractory(t + min(self.service.settings.wake.refractory_seconds, 0.5))


class SatelliteLink:
    """One satellite: (re)connects, describes, starts it and streams its audio through a SatelliteSession."""

    def __init__(self, service: Service, uri: str, device_id: str | None = None, reconnect_seconds: float = 3.0):
        self.service = service
        self.uri = uri
        self.asked_device = device_id
        self.device_id = device_id or service.runner.device_id
        self.name = uri
        self.reconnect_seconds = reconnect_seconds
        self.connected = asyncio.Event()
        self.turns: list[str] = []
        self._stop = asyncio.Event()
        self._out: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satellite")
        if device_id is not None:
            self._check_device(device_id)

    def _check_device(self, device_id: str) -> None:
        ids = [s.id for s in self.service.runner.home.satellites()]
        if device_id not in ids:
            raise AssistantError(
                "wyoming-unknown-satellite",
                f"No satellite {device_id!r} in the home ({', '.join(ids) or 'none'}); add it under `satellites:`.",
            )

    def stop(self) -> None:
        self._stop.set()

    # -- outgoing (any thread) ----------------------------------------------------------------------------------
    def send(self, event: Event, turn: _Turn | None = None, last: bool = False) -> None:
        if self._loop is None or self._out is None:
            return
        out = self._out
        self._loop.call_soon_threadsafe(out.put_nowait, (event, turn, last))

    async def _writer(self, client: AsyncClient) -> None:
        """Send queued events; a turn's answer audio paced to real time (LEAD_SECONDS ahead), dropped once
        barged in on."""
        assert self._out is not None
        started: dict[int, tuple[float, float]] = {}  # id(turn) -> (monotonic start, seconds sent)
        while True:
            event, turn, last = await self._out.get()
            if turn is None:
                await client.write_event(event)
                continue
            key = id(turn)
            if AudioStart.is_type(event.type):
                started[key] = (time.monotonic(), 0.0)
                await client.write_event(event)
                continue
            t0, sent = started.get(key, (time.monotonic(), 0.0))
            if last:  # AudioStop: wait until the satellite has played what it got, then the turn is over
                await client.write_event(event)
                if not turn.cancelled:
                    await asyncio.sleep(max(0.0, t0 + sent - time.monotonic()))
                turn.played_seconds = sent
                turn.played.set()
                started.pop(key, None)
                continue
            if turn.cancelled:
                continue
            chunk = AudioChunk.from_event(event)
            ahead = t0 + sent - time.monotonic()
            if ahead > LEAD_SECONDS:
                await asyncio.sleep(ahead - LEAD_SECONDS)
            if turn.cancelled:
                continue
            await client.write_event(event)
            sent += len(chunk.audio) / (chunk.width * chunk.channels * chunk.rate)
            started[key] = (t0, sent)
            turn.played_seconds = max(0.0, time.monotonic() - t0)

    # -- the connection -------------------------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (ConnectionError, OSError) as err:
                _LOGGER.warning("satellite %s: %s; retrying in %g s", self.uri, err, self.reconnect_seconds)
            except Exception:  # noqa: BLE001 - one satellite's trouble never stops the server or the others
                _LOGGER.exception("satellite %s failed; retrying in %g s", self.uri, self.reconnect_seconds)
            self.connected.clear()
            try:
                await asyncio.wait_for(self._stop.wait(), self.reconnect_seconds)
            except asyncio.TimeoutError:
                pass
        self._frames.shutdown(wait=False, cancel_futures=True)

    async def _session(self) -> None:
        client = AsyncClient.from_uri(self.uri)
        await client.connect()
        self._out = asyncio.Queue()
        writer = asyncio.create_task(self._writer(client))
        try:
            await client.write_event(Describe().event())
            info = await asyncio.wait_for(self._read_info(client), 10.0)
            self._identify(info)
            await client.write_event(RunSatellite().event())
            self.connected.set()
            _LOGGER.info("satellite %s (%s) connected: device %s", self.name, self.uri, self.device_id)
            session: SatelliteSession | None = None
            loop = asyncio.get_running_loop()
            stop = asyncio.create_task(self._stop.wait())
            while True:
                read = asyncio.create_task(client.read_event())
                done, _ = await asyncio.wait({read, stop, writer}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    if writer in done:
                        writer.result()  # raises the writer's connection error
                    return
                event = read.result()
                if event is None:
                    raise ConnectionError("the satellite closed the connection")
                if RunPipeline.is_type(event.type):
                    stage = RunPipeline.from_event(event).start_stage
                    session = await loop.run_in_executor(
                        self._frames, SatelliteSession, self, getattr(stage, "value", stage)
                    )
                elif AudioChunk.is_type(event.type):
                    if session is None:  # audio before any RunPipeline: start at the wake word
                        session = await loop.run_in_executor(self._frames, SatelliteSession, self)
                    await loop.run_in_executor(self._frames, session.feed, AudioChunk.from_event(event))
                elif AudioStop.is_type(event.type):
                    session = None  # the satellite stopped streaming (its VAD or wake timeout): start afresh
                elif Error.is_type(event.type):
                    _LOGGER.warning("satellite %s: %s", self.name, Error.from_event(event).text)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self._out = None
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def _read_info(self, client: AsyncClient) -> Info:
        while True:
            event = await client.read_event()
            if event is None:
                raise ConnectionError("the satellite closed the connection before describing itself")
            if Info.is_type(event.type):
                return Info.from_event(event)

    def _identify(self, info: Info) -> None:
        """The satellite's name, and which of the home's satellites it is (asked for, or by name or area)."""
        sat = info.satellite
        if sat is not None:
            self.name = sat.name or self.uri
        if self.asked_device is not None:
            return
        home_sats = self.service.runner.home.satellites()
        for s in home_sats:
            names = {s.id, s.name, *getattr(s, "aliases", [])}
            if sat is not None and (sat.name in names or (sat.area and sat.area in (s.area, s.name))):
                self.device_id = s.id
                return
