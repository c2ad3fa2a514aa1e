"""Wyoming TTS: Synthesize -> AudioStart, AudioChunk..., AudioStop, with Piper.

Piper yields one array per sentence; each goes to the client as soon as it exists (in 1024-sample chunks, as
wyoming-piper sends them), so a long answer starts playing after its first sentence, not after the whole text.
The voice is the one in pipeline.yaml (`tts.voice`, installed with the package); a Synthesize asking for another
voice gets this one (nothing is downloaded), and the trace says which was asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, TtsProgram, TtsVoice
from wyoming.tts import Synthesize

from assistant.apps.wyoming.service import Clock, Send, Service, source
from assistant.errors import AssistantError, StageError

SAMPLES_PER_CHUNK = 1024
MAX_TEXT = 5000
"""Longest text one Synthesize may ask for (characters)."""
_END = object()


def program(service: Service) -> TtsProgram:
    tts = service.runner.tts
    voice = service.settings.tts.voice
    return TtsProgram(
        name="assistant-tts",
        description="Piper (the voice assistant's TTS)",
        attribution=Attribution(
            name="rhasspy/piper (OHF-Voice piper1-gpl)", url="https://github.com/OHF-Voice/piper1-gpl"
        ),
        installed=tts is not None,
        version=service.version,
        voices=[
            TtsVoice(
                name=voice,
                description=getattr(tts, "version", voice),
                attribution=Attribution(name="rhasspy/piper-voices", url="https://huggingface.co/rhasspy/piper-voices"),
                installed=tts is not None,
                version=None,
                languages=[voice.split("-")[0]],
            )
        ],
        supports_synthesize_streaming=False,
    )


def audio_events(samples: np.ndarray, rate: int) -> list[Event]:
    """AudioChunk events of at most SAMPLES_PER_CHUNK samples (int16 mono)."""
    data = np.asarray(samples, dtype=np.int16)
    return [
        AudioChunk(rate=rate, width=2, channels=1, audio=data[i : i + SAMPLES_PER_CHUNK].tobytes()).event()
        for i in range(0, len(data), SAMPLES_PER_CHUNK)
    ]


class TtsHandler:
    def __init__(self, service: Service, client: str) -> None:
        self.service = service
        self.client = client

    async def handle(self, event: Event, send: Send) -> None:
        svc = self.service
        tts = svc.runner.tts
        if tts is None:
            raise AssistantError("tts-disabled", "This server runs without the tts stage (pipeline.yaml `stages`).")
        request = Synthesize.from_event(event)
        text = (request.text or "").strip()
        if not text:
            raise AssistantError("tts-empty-text", "Synthesize needs a non-empty `text`.")
        if len(text) > MAX_TEXT:
            raise AssistantError("tts-text-too-long", f"Synthesize text may be at most {MAX_TEXT} characters.")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        clock = Clock()
        stats: dict[str, Any] = {"samples": 0}

        def synthesize() -> None:  # pool thread: every sentence goes to the queue as soon as it is ready
            try:
                for chunk in tts.synthesize(text):
                    stats.setdefault("first_chunk_ms", round(clock(), 1))
                    stats["samples"] += len(chunk)
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except Exception as err:  # noqa: BLE001 - handed to the event loop, which answers with an error event
                loop.call_soon_threadsafe(queue.put_nowait, err)
            loop.call_soon_threadsafe(queue.put_nowait, _END)

        job = svc.submit(synthesize)
        rate = tts.sample_rate
        failure: Exception | None = None
        started = False
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    failure = item
                    continue
                if not started:
                    await send(AudioStart(rate=rate, width=2, channels=1).event())
                    started = True
                for ev in audio_events(item, rate):
                    await send(ev)
            if started:
                await send(AudioStop().event())
        finally:
            job.cancel()
            voice = request.voice.name if request.voice is not None else None
            error = None
            if failure is not None or not stats["samples"]:
                error = StageError(
                    "tts-failed" if failure is not None else "tts-no-audio",
                    f"TTS failed: {failure}" if failure is not None else "The voice produced no audio.",
                    "tts",
                )

            def fill(rec) -> None:
                rec.response_text = text
                rec.latency_ms["tts_first_audio"] = stats.get("first_chunk_ms", 0.0)

            svc.background(  # traced in the pool: a database write never waits on the event loop
                svc.trace_stage,
                source("tts", self.client),
                "tts",
                tts,
                {"text": text, "voice_asked": voice},
                {
                    "audio_seconds": round(stats["samples"] / rate, 3),
                    "sample_rate": rate,
                    "first_chunk_ms": stats.get("first_chunk_ms"),
                },
                (0.0, clock()),
                fill=fill,
                error=error,
            )
        if failure is not None or not stats["samples"]:
            raise error  # type: ignore[misc]
