"""Wyoming ASR: Transcribe, AudioStart, AudioChunk..., AudioStop -> Transcript.

The audio (any rate, width, channels: wyoming's AudioChunkConverter makes it 16 kHz mono int16) is endpointed like a
replayed file (Silero VAD + the pure endpointer, replay.segment without a wake word): Whisper gets the span from the
first request's start to the last one's end, not the silence Home Assistant streams before and after (on silence
Whisper invents words). No speech at all gives an empty Transcript, like wyoming-faster-whisper does on silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution

from assistant import audio as audio_io
from assistant.apps.wyoming.service import Clock, Send, Service, source
from assistant.core.endpointer import EndpointConfig
from assistant.errors import AsrError, AssistantError

FRAME_SECONDS = audio_io.FRAME_SAMPLES / audio_io.PIPELINE_RATE
MAX_SECONDS = 60.0
"""Longest audio one Transcribe may send (16 kHz int16: 1.9 MB): more is refused with an error event."""


def program(service: Service) -> AsrProgram:
    asr = service.runner.asr
    a = service.settings.asr
    return AsrProgram(
        name="assistant-asr",
        description="Silero VAD endpointing + faster-whisper (the voice assistant's ASR)",
        attribution=Attribution(
            name="SYSTRAN faster-whisper, OpenAI Whisper", url="https://github.com/SYSTRAN/faster-whisper"
        ),
        installed=asr is not None,
        version=service.version,
        models=[
            AsrModel(
                name=a.model,
                description=getattr(asr, "version", a.model),
                attribution=Attribution(name="OpenAI", url="https://github.com/openai/whisper"),
                installed=asr is not None,
                version=a.model,
                languages=[a.language or "en"],
            )
        ],
        supports_transcript_streaming=False,
    )


def pcm16k() -> AudioChunkConverter:
    return AudioChunkConverter(rate=audio_io.PIPELINE_RATE, width=2, channels=1)


@dataclass
class AsrSession:
    """One Transcribe (or a bare AudioStart) of one client: the audio so far."""

    language: str | None = None
    converter: AudioChunkConverter = field(default_factory=pcm16k)
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    started: bool = False
    too_long: bool = False

    def add(self, chunk: AudioChunk) -> None:
        audio = self.converter.convert(chunk).audio
        if self.size + len(audio) > MAX_SECONDS * audio_io.PIPELINE_RATE * 2:
            self.too_long = True
            return
        self.parts.append(audio)
        self.size += len(audio)

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.parts), dtype=np.int16)


class _Detectors:
    """What replay.segment reads from a runner: the settings and a VAD (this connection's own)."""

    wake = None

    def __init__(self, settings, vad) -> None:
        self.settings, self.vad = settings, vad


def speech_span(settings, vad, samples: np.ndarray) -> tuple[float, float] | None:
    """Seconds (start, end) from the first request's start to the last one's end, by our endpointing; None: no
    speech. A request longer than `vad.max_request_seconds` is several requests here: the span covers them all."""
    from assistant.apps.replay import segment

    n = audio_io.FRAME_SAMPLES
    padded = np.concatenate([samples, np.zeros((-len(samples)) % n, np.int16)])
    frames = (padded[i : i + n] for i in range(0, len(padded), n))
    # no speculative decode here: the whole audio is already known
    cfg = replace(EndpointConfig.from_settings(settings, FRAME_SECONDS), pause_seconds=None)
    spans = [
        (r.source["offset_seconds"], r.source["end_seconds"])
        for r in segment(_Detectors(settings, vad), frames, "wyoming", no_wake=True, config=cfg)
        if r.samples is not None
    ]
    if not spans:
        return None
    return spans[0][0], spans[-1][1]


class AsrHandler:
    """The ASR events of one connection (`wants` says which); `handle` sends the answers with `send`."""

    def __init__(self, service: Service, client: str) -> None:
        self.service = service
        self.client = client
        self.session: AsrSession | None = None

    async def handle(self, event: Event, send: Send) -> None:
        if Transcribe.is_type(event.type):
            self.session = AsrSession(language=Transcribe.from_event(event).language)
            return
        if self.session is None:  # audio without Transcribe: transcribe it all the same
            self.session = AsrSession()
        if AudioStart.is_type(event.type):
            self.session.started = True
            return
        if AudioChunk.is_type(event.type):
            self.session.add(AudioChunk.from_event(event))
            return
        session, self.session = self.session, None  # AudioStop
        if session.too_long:
            raise AssistantError(
                "wyoming-audio-too-long", f"A Transcribe request may hold at most {MAX_SECONDS:g} s of audio."
            )
        text = await self.service.call(self._transcribe, session)
        await send(Transcript(text=text, language=session.language or self.service.settings.asr.language).event())

    def _transcribe(self, session: AsrSession) -> str:
        """Endpoint, transcribe and trace (pool thread)."""
        svc = self.service
        asr = svc.runner.asr
        clock = Clock()
        samples = session.samples()
        if asr is None:
            raise AssistantError("asr-disabled", "This server runs without the asr stage (pipeline.yaml `stages`).")
        vad = svc.borrow("vad")
        try:
            vad.reset()
            span = speech_span(svc.settings, vad, samples) if len(samples) else None
        finally:
            svc.give_back("vad", vad)
        inp: dict[str, Any] = {
            "audio_seconds": round(len(samples) / audio_io.PIPELINE_RATE, 3),
            "speech": list(span) if span else None,
        }
        language = session.language or svc.settings.asr.language
        t0 = clock()
        if span is None:
            err = AsrError("asr-no-speech", "No speech was found in the audio.")
            svc.trace_stage(source("asr", self.client), "asr", asr, inp, None, (t0, clock()), error=err)
            return ""
        cut = samples[int(span[0] * audio_io.PIPELINE_RATE) : int(span[1] * audio_io.PIPELINE_RATE)]
        try:
            with svc.asr_lock:  # first come, first decoded (see Service.asr_lock)
                result = asr.transcribe(cut, language)
        except Exception as err:  # noqa: BLE001 - traced, then an error event to the client
            coded = err if isinstance(err, AssistantError) else AsrError("asr-failed", f"ASR failed: {err}")
            svc.trace_stage(source("asr", self.client), "asr", asr, inp, None, (t0, clock()), error=coded)
            raise coded from err

        def fill(rec) -> None:
            rec.transcript, rec.asr_confidence = result.text, result.confidence

        svc.trace_stage(
            source("asr", self.client),
            "asr",
            asr,
            inp,
            result,
            (t0, clock()),
            confidence=result.confidence,
            fill=fill,
        )
        return result.text
