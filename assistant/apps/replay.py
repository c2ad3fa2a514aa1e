"""Replay: a recorded file treated as a microphone stream, faster than real time.

Each 80 ms frame goes through the wake word and VAD backends; the pure endpointer (assistant/core/endpointer.py)
decides where requests start and end; each request is one turn of the runner. A file may hold several turns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.core.endpointer import AFTER_SPEECH_WINDOW_S, EndpointConfig, Endpointer, FrameBuffer
from assistant.core.events import (
    Event,
    ListenTimeout,
    SpeechAfterEndpoint,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    WakeDetected,
)
from assistant.core.record import TurnRecord
from assistant.core.request import Request, Speculation
from assistant.errors import AssistantError, StageError

FRAME_SECONDS = audio_io.FRAME_SAMPLES / audio_io.PIPELINE_RATE


def replay_file(runner, path: Path, no_wake: bool = False, start: datetime | None = None) -> Iterator[TurnRecord]:
    """Yield one record per turn found in the file (`no_wake`: every speech segment is a request).

    The file's clock is `start` plus the audio time: scheduled commands due before a request are carried out (and
    yielded) before it, and those due before the file's end when it ends."""
    start = start or datetime.now()
    try:
        frames = _checked(audio_io.stream_file(Path(path)))
    except audio_io.AudioInputError as err:
        # Nothing to listen to: trace the failed turn (its error code says why) and say nothing.
        yield runner.run(
            Request(
                source={"kind": "file", "file": str(path), "offset_seconds": 0.0},
                wake={"detected": False},
                now=start,
                error=err,
                speak=False,
            )
        )
        return
    clock = {"t": 0.0}
    last: dict[str, Any] = {}  # the request run last and its turn: `segment` watches only after the last one

    def after_speech(req: Request, offset_ms: float) -> None:
        if last.get("request") is req:
            runner.emit(SpeechAfterEndpoint(last["turn_id"], round(offset_ms, 1), {"source": "replay"}))

    for req in segment(runner, frames, str(path), no_wake, clock, on_after_speech=after_speech):
        timed = _at(req, start)
        yield from runner.run_due(timed.now)
        rec = runner.run(timed)
        last.update(request=req, turn_id=rec.turn_id)
        yield rec
    yield from runner.run_due(start + timedelta(seconds=clock["t"]))


def segment(
    runner,
    frames: Iterator[np.ndarray],
    path: str,
    no_wake: bool = False,
    clock: dict[str, float] | None = None,
    config: EndpointConfig | None = None,
    on_after_speech: Callable[[Request, float], None] | None = None,
) -> Iterator[Request]:
    """Requests in a stream of 80 ms frames, via the runner's wake and VAD backends and the endpointer.

    `clock["t"]` follows the stream's audio time (seconds); `config` overrides the settings' endpointing;
    `on_after_speech(request, offset_ms)` is called when speech starts within AFTER_SPEECH_WINDOW_S of a request's
    endpoint (after the request was yielded)."""
    clock = clock if clock is not None else {}
    if runner.vad is None or (not no_wake and runner.wake is None):
        need = "the vad stage" if no_wake else "the wake and vad stages; use --no-wake"
        raise AssistantError("stage-disabled", f"Replay needs {need} in pipeline.yaml.")
    cfg = config or EndpointConfig.from_settings(runner.settings, FRAME_SECONDS)
    ep = Endpointer(cfg, wake_word=not no_wake)
    buf = FrameBuffer(FRAME_SECONDS, cfg.max_request_seconds + cfg.pre_roll_seconds + 1.0)
    wake, vad = runner.wake, runner.vad
    vad.reset()
    if wake is not None and not no_wake:
        wake.reset()
    woke: dict[str, Any] = {"detected": False, "skipped": True}
    spec: Speculation | None = None
    ended: tuple[Request, float] | None = None  # the last request and its endpoint, watched for speech after it
    t = 0.0
    i = 0
    for frame in frames:
        i += 1
        t = round(i * FRAME_SECONDS, 6)
        clock["t"] = t
        buf.append(t, frame)
        score, model = None, ""
        if ep.wants_wake:
            scores = wake.process(frame)
            model, score = max(scores.items(), key=lambda kv: kv[1])
        watching = ended is not None and on_after_speech is not None and t - ended[1] <= AFTER_SPEECH_WINDOW_S
        prob = vad.speech_probability(frame) if ep.wants_speech or watching else None
        if watching and prob is not None and prob >= cfg.speech_threshold:
            on_after_speech(ended[0], (t - FRAME_SECONDS - ended[1]) * 1000)
            ended = None
        events = ep.feed(t, wake_score=score, wake_model=model, speech_prob=prob)
        while events:
            ev = events.pop(0)
            if isinstance(ev, SpeechPaused):  # semantic end of turn: decode what was said so far
                spec = runner.speculate(buf.cut(ev.start, ev.t), pause_ms=(ev.t - ev.speech_end) * 1000)
                if spec.verdict == "complete":
                    events[:0] = ep.end_now(ev.t)
                elif spec.verdict == "incomplete":
                    ep.wait_longer()
                continue
            if isinstance(ev, SpeechResumed):
                spec = None  # the user went on: that decode is out of date
                continue
            req = _on_event(ev, path, woke, runner, buf, spec)
            if isinstance(ev, WakeDetected):
                woke = {
                    "detected": True,
                    "score": round(ev.score, 4),
                    "model": ev.model,
                    "offset_seconds": round(ev.t, 2),
                }
                vad.reset()
            if isinstance(ev, (SpeechEnded, ListenTimeout)):
                spec = None
            if req is not None:
                # the VAD goes on with the frames right after a request; a wake with no request has no endpoint
                ended = (req, ev.end) if req.samples is not None else None
                yield req
                woke = {"detected": False, "skipped": True}
    for ev in ep.finish(t):
        req = _on_event(ev, path, woke, runner, buf, spec)
        if req is not None:
            yield req


def _on_event(
    ev: Event, path: str, woke: dict[str, Any], runner, buf: FrameBuffer, spec: Speculation | None = None
) -> Request | None:
    if isinstance(ev, SpeechEnded):
        if runner.wake is not None and woke.get("detected"):
            runner.wake.reset()
        source = {
            "kind": "file",
            "file": path,
            "offset_seconds": round(ev.start, 2),
            "end_seconds": round(ev.end, 2),
            "endpoint": ev.reason,
            "speech_start_seconds": round(ev.speech_start, 2),
            "speech_end_seconds": round(ev.speech_end, 2),
        }
        return Request(
            source=source,
            wake=dict(woke),
            samples=buf.cut(ev.start, ev.end),
            endpoint_wait_ms=ev.endpoint_wait * 1000,
            speculation=spec,
        )
    if isinstance(ev, ListenTimeout):
        if runner.wake is not None:
            runner.wake.reset()
        source = {
            "kind": "file",
            "file": path,
            "offset_seconds": round(ev.start, 2),
            "end_seconds": round(ev.t, 2),
            "endpoint": ev.reason,
        }
        return Request(
            source=source,
            wake=dict(woke),
            error=StageError("no-speech-after-wake", "The wake word was heard but no request followed.", "vad"),
        )
    return None


def _at(req: Request, start: datetime) -> Request:
    """The request's time: the file's start plus its offset in the file (replay's clock)."""
    from dataclasses import replace

    return replace(req, now=start + timedelta(seconds=float(req.source.get("offset_seconds", 0.0))))


def _checked(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Decode the first frame now, so a bad file fails before any turn starts."""
    first = next(frames)

    def chained() -> Iterator[np.ndarray]:
        yield first
        yield from frames

    return chained()
