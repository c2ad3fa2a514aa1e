"""Wyoming wake word: Detect(names), AudioStart, AudioChunk..., AudioStop -> Detection (each time) / NotDetected.

Each connection gets its own detector of the configured wake backend (openWakeWord, microWakeWord or the cascade of
the two; its windows
are per-stream state) with the models the Detect asked for, else those of pipeline.yaml; a name may be given as
wyoming-openwakeword does ("hey_jarvis", "hey_jarvis_v0.1", "hey jarvis"). Every model built into the backend's
package is listed in `info` as installed: they ship with the package. A detection needs `wake.threshold` and is
followed by `wake.refractory_seconds` of silence from that model, as in replay and live. One audio stream
(AudioStart..AudioStop) is traced as one turn with its wake span.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart
from wyoming.event import Event
from wyoming.info import Attribution, WakeModel, WakeProgram
from wyoming.wake import Detect, Detection, NotDetected

from assistant import audio as audio_io
from assistant.apps.wyoming.service import Clock, Send, Service, source
from assistant.errors import AssistantError

FRAME = audio_io.FRAME_SAMPLES
RATE = audio_io.PIPELINE_RATE


# what Home Assistant shows for each wake backend: (description, attribution name, url, model licence)
_ABOUT = {
    "openwakeword": (
        "openWakeWord",
        "dscripka openWakeWord",
        "https://github.com/dscripka/openWakeWord",
        "CC BY-NC-SA 4.0",
    ),
    "microwakeword": (
        "microWakeWord",
        "kahrendt microWakeWord",
        "https://github.com/kahrendt/microWakeWord",
        "Apache-2.0",
    ),
    "cascade": (
        "microWakeWord, confirmed by openWakeWord",
        "kahrendt microWakeWord and dscripka openWakeWord",
        "https://github.com/kahrendt/microWakeWord",
        "Apache-2.0 and CC BY-NC-SA 4.0",
    ),
}


def builtin_models(backend: str = "openwakeword") -> list[str]:
    """The models the wake backend ships (microwakeword, and so the cascade, has no hey_rhasspy)."""
    if backend in ("microwakeword", "cascade"):
        from assistant.backends.wake.microwakeword import builtin_models as micro_models

        return micro_models()
    from pyopen_wakeword import Model

    return [m.value for m in Model]


def _phrase(name: str) -> str:
    return name.replace("_", " ").replace("okay", "ok").strip()


def program(service: Service) -> WakeProgram:
    wake = service.runner.wake
    backend = service.settings.wake.backend
    what, who, url, licence = _ABOUT.get(backend, _ABOUT["openwakeword"])
    return WakeProgram(
        name="assistant-wake",
        description=f"{what} (the voice assistant's wake word)",
        attribution=Attribution(name=who, url=url),
        installed=True,
        version=service.version,
        models=[
            WakeModel(
                name=m,
                description=f"{_phrase(m)} ({getattr(wake, 'version', backend)}; {licence})",
                phrase=_phrase(m),
                attribution=Attribution(name=who.split()[0], url=url),
                installed=True,
                version=None,
                languages=["en"],
            )
            for m in builtin_models(backend)
        ],
    )


def model_names(asked: list[str] | None, default: list[str], backend: str = "openwakeword") -> list[str]:
    """Our model ids for the names a Detect asked for (unknown names are an error that lists the known ones)."""
    if not asked:
        return list(default)
    known = builtin_models(backend)
    out = []
    for name in asked:
        key = re.sub(r"_v\d+(\.\d+)*$", "", name.strip().lower()).replace(" ", "_").replace("ok_", "okay_")
        if key not in known and name not in default:
            raise AssistantError("wake-model-unknown", f"No wake word model {name!r}; installed: {', '.join(known)}.")
        out.append(key if key in known else name)
    return list(dict.fromkeys(out))


@dataclass
class WakeStream:
    models: tuple[str, ...]
    converter: AudioChunkConverter = field(default_factory=lambda: AudioChunkConverter(RATE, 2, 1))
    rest: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    samples: int = 0
    detections: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    last_at: dict[str, float] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)


class WakeHandler:
    def __init__(self, service: Service, client: str) -> None:
        self.service = service
        self.client = client
        self.asked: list[str] | None = None
        self.stream: WakeStream | None = None
        self._detectors: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        """Held while a chunk runs in a pool thread: the detectors go back to the pool (reset) only after it, since a
        TFLite model reset or reused by another stream mid-inference crashes the process (a CI run segfaulted)."""
        self._closed = False

    async def handle(self, event: Event, send: Send) -> None:
        if Detect.is_type(event.type):
            names = Detect.from_event(event).names
            w = self.service.settings.wake
            self.asked = model_names(names, w.models, w.backend)
            return
        if AudioStart.is_type(event.type) or self.stream is None:
            self.stream = WakeStream(models=tuple(self.asked or self.service.settings.wake.models))
            if AudioStart.is_type(event.type):
                return
        stream = self.stream
        if AudioChunk.is_type(event.type):
            chunk = stream.converter.convert(AudioChunk.from_event(event))
            found = await self.service.call(self._process, stream, np.frombuffer(chunk.audio, np.int16))
            for name, ms in found:
                await send(Detection(name=name, timestamp=ms).event())
            return
        self.stream = None  # AudioStop
        if not stream.detections:
            await send(NotDetected().event())
        self.service.background(self._trace, stream)

    def _detector(self, models: tuple[str, ...]):
        if models not in self._detectors:
            self._detectors[models] = self.service.borrow("wake", models)
        return self._detectors[models]

    def close(self) -> None:
        """The connection ended: its detectors go back to the pool once a chunk still running has finished."""
        self.service.background(self._release)

    def _release(self) -> None:
        with self._lock:
            self._closed = True
            detectors, self._detectors = self._detectors, {}
        for models, detector in detectors.items():
            self.service.give_back("wake", detector, models)

    def _process(self, stream: WakeStream, samples: np.ndarray) -> list[tuple[str, int]]:
        """Feed whole 80 ms frames; returns the (model, ms into the stream) detected in them (pool thread)."""
        with self._lock:
            if self._closed:  # a chunk that arrived as the client left: nobody waits for its answer
                return []
            return self._feed(stream, samples)

    def _feed(self, stream: WakeStream, samples: np.ndarray) -> list[tuple[str, int]]:
        detector = self._detector(stream.models)
        if stream.samples == 0:
            detector.reset()
        w = self.service.settings.wake
        audio = np.concatenate([stream.rest, samples])
        n = len(audio) // FRAME * FRAME
        stream.rest = audio[n:]
        found = []
        for i in range(0, n, FRAME):
            stream.samples += FRAME
            t = stream.samples / RATE
            for name, score in detector.process(audio[i : i + FRAME]).items():
                stream.best[name] = max(stream.best.get(name, 0.0), score)
                if score < w.threshold or t - stream.last_at.get(name, -1e9) < w.refractory_seconds:
                    continue
                stream.last_at[name] = t
                ms = int(t * 1000)
                stream.detections.append({"model": name, "score": round(score, 4), "offset_seconds": round(t, 2)})
                found.append((name, ms))
        return found

    def _trace(self, stream: WakeStream) -> None:
        svc = self.service
        detector = self._detectors.get(stream.models) or self.service.runner.wake  # same name and version
        first = stream.detections[0] if stream.detections else None
        wake = {"detected": first is not None, **(first or {})}
        svc.trace_stage(
            source("wake", self.client),
            "wake",
            detector,
            {"models": list(stream.models), "threshold": svc.settings.wake.threshold},
            {
                "detections": stream.detections,
                "best_scores": {k: round(v, 4) for k, v in stream.best.items()},
                "audio_seconds": round(stream.samples / RATE, 2),
            },
            (0.0, stream.clock()),
            confidence=first["score"] if first else None,
            wake=wake,
        )
