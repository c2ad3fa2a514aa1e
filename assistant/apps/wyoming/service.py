"""What every Wyoming handler shares: the one Runner, a thread pool for model work, the turn lock and tracing.

Model-bound work (Whisper, Piper, openWakeWord, a whole turn) runs in the pool, never on the event loop, so one
client's long request or a client that stops reading cannot hold up another's. `Runner.run` shares the home, its
states and the sessions, so whole turns run one at a time (`run_turn`); a request for one stage only (ASR, TTS, wake)
runs beside them and is traced as a turn of its own with that one stage (`trace_stage`), like `Runner.run_due` traces
a scheduled command.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from wyoming.info import Attribution

from assistant.core import registry
from assistant.core.events import Listener, StageEnded, StageStarted, TurnEnded, TurnStarted
from assistant.core.record import TurnRecord
from assistant.core.request import Request
from assistant.errors import AssistantError
from assistant.trace.privacy import is_opted_out
from assistant.trace.recorder import jsonable

_LOGGER = logging.getLogger(__name__)

PROJECT = Attribution(name="voice-assistant (GPL-3.0-or-later; models/nlu: see its MODEL_CARD.md)", url="")
"""This project (no public address yet): the brain and the NLU model."""

CLOSE_WAIT_S = 60.0
"""How long closing waits for the model work already running (a decode, a turn, its trace write) before the runner
and its trace store close under it."""

Send = Callable[[Any], Awaitable[None]]
"""Writes one wyoming Event to the client."""


def package_version() -> str:
    try:
        return version("voice-assistant")
    except PackageNotFoundError:  # running from a source tree
        return "0.1.0"


def source(service: str, client: str, **extra: Any) -> dict[str, Any]:
    """A turn's `source` for a Wyoming request: which service and which client (address) asked."""
    return {"kind": "wyoming", "service": service, "client": client, **extra}


class Service:
    """Shared by all connections of one `assistant serve wyoming` process."""

    def __init__(self, runner, workers: int = 4) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wyoming")
        self._turn_lock = threading.Lock()
        self.asr_lock = threading.Lock()
        """Whisper requests decode one after another: four at once would share the CPU and all finish late (the
        first answer after ~4x one decode); in turn, the first is back after one decode and the last no later."""
        self.version = package_version()
        self._closed = False
        self._pool: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
        self._pool_lock = threading.Lock()
        self._pool_max = workers
        self._running: set[Future] = set()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run `fn` in the pool; `close` waits for it once it is running."""
        future = self.executor.submit(fn, *args, **kwargs)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking model work in the pool; the event loop stays free for the other clients."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run `fn` in the pool without waiting (tracing); dropped once the server is shutting down."""
        if self._closed:
            _LOGGER.info("shutting down: %s not run", getattr(fn, "__name__", fn))
            return
        try:
            self.submit(fn, *args, **kwargs)
        except RuntimeError:  # the pool shut down meanwhile
            _LOGGER.info("shutting down: %s not run", getattr(fn, "__name__", fn))

    def run_turn(self, req: Request, listener: Listener | None = None) -> TurnRecord:
        """A whole turn (NLU, resolve, skills, maybe TTS) through the runner; one at a time (shared home state)."""
        with self._turn_lock:
            return self.runner.run(req, listener=listener)

    def borrow(self, stage: str, models: tuple[str, ...] = ()):
        """A streaming detector (wake, vad) for one stream, from the pool: they keep per-stream state, so one is
        never used by two streams at once, but Home Assistant opens a connection per request and loading one costs
        more than the request; `give_back` returns it (reset)."""
        with self._pool_lock:
            free = self._pool.get((stage, models))
            if free:
                return free.pop()
        return self.new_detector(stage, **({"models": list(models)} if models else {}))

    def give_back(self, stage: str, detector: Any, models: tuple[str, ...] = ()) -> None:
        detector.reset()
        with self._pool_lock:
            free = self._pool.setdefault((stage, models), [])
            if len(free) < self._pool_max:
                free.append(detector)

    def run_due(self) -> int:
        """Carry out the scheduled commands whose time has come ("in ten minutes turn off the lights"), as the live
        loop does every second while idle; returns how many ran."""
        with self._turn_lock:
            return len(self.runner.run_due(datetime.now()))

    def new_detector(self, stage: str, **settings_update: Any):
        """A fresh streaming detector (wake, vad) with its own state."""
        settings = self.settings
        if settings_update:
            section = getattr(settings, stage).model_copy(update=settings_update)
            settings = settings.model_copy(update={stage: section})
        build = registry.Build(settings=settings, home=self.runner.home, data_dir=self.runner.data_dir, built={})
        return registry.create(stage, getattr(settings, stage).backend, build)

    def trace_stage(
        self,
        src: dict[str, Any],
        stage: str,
        backend: Any,
        inp: Any,
        output: Any,
        t_ms: tuple[float, float],
        confidence: float | None = None,
        fill: Callable[[TurnRecord], None] | None = None,
        error: AssistantError | None = None,
        wake: dict[str, Any] | None = None,
    ) -> TurnRecord:
        """Trace a one-stage request (ASR, TTS or wake only) as its own turn: TurnStarted, the stage, TurnEnded.

        `t_ms` is when the stage started and ended, in ms since the request began; `fill` sets the record's fields
        (transcript, response text, ...)."""
        runner = self.runner
        now = datetime.now()
        turn_id = uuid.uuid4().hex
        rec = TurnRecord(
            turn_id=turn_id,
            session_id=f"wyoming-{stage}-{turn_id[:12]}",
            source=src,
            wake=wake or {"detected": False, "skipped": True},
        )
        if fill is not None:
            fill(rec)
        if error is not None:
            rec.error = error.to_dict() | {"stage": stage}
        rec.latency_ms[stage] = round(t_ms[1] - t_ms[0], 1)
        rec.latency_ms["total"] = round(t_ms[1], 1)
        name, ver = getattr(backend, "name", None), getattr(backend, "version", None)
        runner.emit(TurnStarted(turn_id, rec.session_id, src, rec.wake, now.isoformat()))
        runner.emit(StageStarted(turn_id, stage, name, ver, round(t_ms[0], 3), inp))
        runner.emit(
            StageEnded(
                turn_id,
                stage,
                round(t_ms[1], 3),
                output=jsonable(output),
                confidence=confidence,
                error_code=error.code if error is not None else None,
            )
        )
        runner.emit(
            TurnEnded(
                record=rec,
                traced=not is_opted_out(runner.data_dir, runner.user_id),
                context={"device_id": runner.device_id, "user_id": runner.user_id, "now": now.isoformat()},
                pipeline={stage: f"{name} {ver or ''}".strip()},
                device_id=runner.device_id,
                user_id=runner.user_id,
                started_at=now.timestamp(),
            )
        )
        return rec

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Drop the queued work, then wait (up to `timeout`) for the work already running, so a request's trace is
        written before the runner closes the store (the store itself refuses writes after it is closed)."""
        self._closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)
        _, late = wait(list(self._running), timeout=timeout)
        if late:
            _LOGGER.warning(
                "%d request(s) still running after %.0f s; their traces may not be saved", len(late), timeout
            )


class Clock:
    """Milliseconds since a request began (the trace's `t_ms`)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return (time.perf_counter() - self.t0) * 1000
