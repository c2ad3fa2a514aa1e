"""The runner: builds the configured backends once and runs each request through the stages, emitting typed events.

Backends do one thing each and never time or trace themselves; the runner times every stage, wraps any failure in a
coded error and emits StageStarted / StageEnded / ... / TurnEnded(record). Everything else subscribes: the trace
recorder (always), the CLI's printers, the live loop's speaker, the simulator. Backends come from the registry by
the `backend:` names in pipeline.yaml; `backends=` supplies ready instances (tests, the simulator's shared models)
and `wrap=` composes adapters around built ones (a caching ASR) at build time; nothing is swapped afterwards.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.config import Settings, default_data_dir
from assistant.core import registry
from assistant.core.context import TurnContext
from assistant.core.events import (
    Event,
    Listener,
    ResponseAudio,
    StageEnded,
    StageRecorded,
    StageStarted,
    TurnEnded,
    TurnError,
    TurnStarted,
)
from assistant.core.record import TurnRecord
from assistant.core.request import Request, Speculation
from assistant.core.session import SessionTracker
from assistant.core.stages.resolve import ResolveResult
from assistant.errors import AsrError, AssistantError, StageError
from assistant.home.state import HomeStateFile
from assistant.learning.feedback import FEEDBACK_QUESTION, classify_reply, record_feedback, should_ask
from assistant.trace.privacy import is_opted_out
from assistant.trace.recorder import TraceRecorder, jsonable
from assistant.trace.store import TraceStore

_LOGGER = logging.getLogger(__name__)
_WAKE_PREFIX = re.compile(r"^\W*(?:(?:hey|ok|okay)[\s,]+)?(?:alexa|jarvis|mycroft|nabu|rhasspy)\b\W*", re.IGNORECASE)
AUDIO_STAGES = ("wake", "vad", "speaker", "asr")
BUILD_ORDER = ("wake", "vad", "speaker", "asr", "rewrite", "nlu", "resolve", "rerank", "respond", "tts")
ALWAYS = ("nlu", "respond")
"""Stages every turn needs, built even when pipeline.yaml leaves them out of `stages`."""
DEFAULT_USER = "default"
"""`session.user_id` when nobody configured one: it names no person (the household's shared behaviour)."""


class _Handled(Exception):
    """Ends a turn early without an error (e.g. the reply to a feedback question)."""


class Runner:
    """Runs turns through the configured stages. `run(request)` is the one entry point; `subscribe` adds listeners."""

    def __init__(
        self,
        settings: Settings,
        home_path: Path,
        data_dir: Path | None = None,
        out_dir: Path | None = None,
        load_audio_stages: bool = True,
        backends: Mapping[str, Any] | None = None,
        wrap: Mapping[str, Callable[[Any], Any]] | None = None,
        record_traces: bool = True,
    ) -> None:
        from assistant.home.model import Home

        self.settings = settings
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = Path(out_dir) if out_dir else None
        self.home = Home.load(home_path)
        self.store = TraceStore(self._trace_path())
        self._listeners: list[Listener] = []
        if record_traces:
            self.subscribe(TraceRecorder(self.store))
        self.load_seconds: dict[str, float] = {}
        self._backends = self._build(backends or {}, wrap or {}, load_audio_stages)
        satellites = self.home.satellites()
        self.device_id = settings.session.device_id or (satellites[0].id if satellites else "default")
        self.user_id = settings.session.user_id
        self._home_state = HomeStateFile(self.data_dir)
        self._home_state.restore(self.home)
        self.sessions = SessionTracker(self.store, self.device_id, self.user_id, settings.session.gap_seconds)
        self._device_sessions = {self.device_id: self.sessions}
        self.user_history = self._user_history()

    # -- building ---------------------------------------------------------------------------------------------
    def _enabled(self, stage: str, load_audio_stages: bool) -> bool:
        if stage in AUDIO_STAGES and not load_audio_stages:
            return False
        if stage == "rerank" and "resolve" not in self.settings.stages:
            return False
        return stage in ALWAYS or stage in self.settings.stages

    def _build(
        self, given: Mapping[str, Any], wrap: Mapping[str, Callable[[Any], Any]], load_audio_stages: bool
    ) -> dict[str, Any]:
        unknown = (set(given) | set(wrap)) - set(BUILD_ORDER)
        if unknown:
            raise AssistantError("unknown-stage", f"no stage(s) {sorted(unknown)}; stages: {', '.join(BUILD_ORDER)}")
        built: dict[str, Any] = {}
        build = registry.Build(settings=self.settings, home=self.home, data_dir=self.data_dir, built=built)
        for stage in BUILD_ORDER:
            if stage in given:
                backend = given[stage]  # None disables the stage
            elif self._enabled(stage, load_audio_stages):
                t0 = time.perf_counter()
                backend = registry.create(stage, self._backend_name(stage), build)
                self.load_seconds[stage] = round(time.perf_counter() - t0, 3)
            else:
                backend = None
            if backend is not None and stage in wrap:
                backend = wrap[stage](backend)
            built[stage] = backend
        return built

    def _backend_name(self, stage: str) -> str:
        return getattr(self.settings, stage).backend

    def _trace_path(self) -> Path:
        p = Path(self.settings.traces.db).expanduser()
        return p if p.is_absolute() else self.data_dir / p

    def _user_history(self):
        """What this device's users chose before (last 90 days of traces): a feature source for the reranker."""
        if self.reranker is None:
            return None
        from assistant.understanding.rerank.context import user_history_from_records

        since = time.time() - 90 * 86400
        return user_history_from_records(
            self.store.iter_records(since=since), user_id=None, music=getattr(self.resolver, "music", None)
        )

    # -- the backends (read only: compose at build time with `backends=` / `wrap=`) ----------------------------
    def backend(self, stage: str) -> Any:
        return self._backends.get(stage)

    wake = property(lambda self: self._backends.get("wake"))
    vad = property(lambda self: self._backends.get("vad"))
    speaker = property(lambda self: self._backends.get("speaker"))
    asr = property(lambda self: self._backends.get("asr"))
    rewriter = property(lambda self: self._backends.get("rewrite"))
    nlu = property(lambda self: self._backends.get("nlu"))
    resolver = property(lambda self: self._backends.get("resolve"))
    reranker = property(lambda self: self._backends.get("rerank"))
    responder = property(lambda self: self._backends.get("respond"))
    tts = property(lambda self: self._backends.get("tts"))

    def versions(self) -> dict[str, str]:
        return {
            stage: f"{b.name} {getattr(b, 'version', '')}".strip()
            for stage, b in self._backends.items()
            if b is not None
        }

    def close(self) -> None:
        if self._speaker_pool is not None:
            self._speaker_pool.shutdown(wait=True)
        self.store.close()

    # -- who is speaking --------------------------------------------------------------------------------------
    _speaker_pool = None

    def _start_speaker(self, samples: np.ndarray | None, enrolling: bool):
        """Identify the speaker in a thread beside ASR (onnxruntime and CTranslate2 release the GIL). Nothing to do
        when nobody is enrolled, unless a voice is being learnt ("learn my voice")."""
        if self.speaker is None or samples is None:
            return None
        if not enrolling and not self.speaker.has_voices():
            return None
        if self._speaker_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._speaker_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speaker")
        samples = np.asarray(samples, dtype=np.int16)

        def job():
            res, emb = self.speaker.identify(samples, enrolling)
            noisy = self.speaker.enrollment_embeddings(samples, emb)[1:] if enrolling and emb is not None else []
            return res, emb, noisy

        return self._speaker_pool.submit(job)

    def _named_person(self) -> str | None:
        return self.user_id if self.user_id != DEFAULT_USER else None

    # -- events -----------------------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: Event, extra: Listener | None = None) -> None:
        """Deliver an event to every listener (the live loop emits what happens after a turn: BargeIn, ...)."""
        for listener in [*self._listeners, *([extra] if extra else [])]:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken subscriber must not break the turn or the others
                _LOGGER.exception("event listener failed on %s", type(event).__name__)

    # -- semantic end of turn -------------------------------------------------------------------------------
    def speculate(self, samples: np.ndarray, pause_ms: float = 0.0) -> Speculation:
        """Decode the request so far at a pause and judge whether it is a whole request (not traced by itself: a
        request that uses it records it in its asr span)."""
        from assistant.understanding.turn_end import judge

        t0 = time.perf_counter()
        speaker_job = self._start_speaker(samples, enrolling=False)  # beside the speculative decode too
        asr = self.asr.transcribe(np.asarray(samples, dtype=np.int16), self.settings.asr.language)
        text = _WAKE_PREFIX.sub("", asr.text).strip()
        confidence = self.nlu.parse(text).confidence if re.search(r"\w", text) else None
        verdict = judge(text, confidence)
        return Speculation(
            asr=asr,
            text=text,
            verdict=verdict.kind,
            reason=verdict.reason,
            decode_ms=round((time.perf_counter() - t0) * 1000, 1),
            pause_ms=round(pause_ms, 1),
            speaker_job=speaker_job,
        )

    # -- scheduled commands ---------------------------------------------------------------------------------
    def run_due(self, now: datetime | None = None) -> list[TurnRecord]:
        """Carry out the scheduled commands whose time has come ("in ten minutes turn off the lights").

        The respond backend keeps them (its `run_due(now, home, data_dir)`, if it has one); each one carried out is
        traced as a turn of its own (source kind `scheduled`, its own session: it is not part of a conversation).
        The runner calls this before every turn; the live loop calls it while idle; replay at its clock's ticks.
        """
        run = getattr(self.responder, "run_due", None)
        if run is None:
            return []
        now = now or datetime.now()
        try:
            items = run(now, self.home, self.data_dir)
        except Exception:  # noqa: BLE001 - a broken schedule must not stop the user's turn
            _LOGGER.exception("scheduled commands failed")
            return []
        records = []
        for item in items:
            turn_id = uuid.uuid4().hex
            source = {
                "kind": "scheduled",
                "scheduled_id": item.get("id"),
                "due": item.get("due"),
                "description": item.get("description"),
            }
            rec = TurnRecord(
                turn_id=turn_id,
                session_id=f"scheduled-{turn_id[:12]}",
                source=source,
                wake={"detected": False, "skipped": True},
                intent="scheduled",
                intent_confidence=1.0,
                action=item.get("action"),
                response_text=item.get("response_text"),
            )
            if item.get("status") != "done":
                rec.error = {"code": "scheduled-failed", "message": item.get("response_text") or "", "stage": "respond"}
            rec.latency_ms["total"] = 0.0
            self.emit(TurnStarted(turn_id, rec.session_id, source, rec.wake, now.isoformat()))
            self.emit(
                TurnEnded(
                    record=rec,
                    traced=not is_opted_out(self.data_dir, self.user_id),
                    context={"device_id": self.device_id, "user_id": self.user_id, "now": now.isoformat()},
                    pipeline=self.versions(),
                    device_id=self.device_id,
                    user_id=self.user_id,
                    started_at=now.timestamp(),
                )
            )
            records.append(rec)
        if records:
            self._home_state.save(self.home)
        return records

    # -- entry points -----------------------------------------------------------------------------------------
    def run_text(self, text: str, now: datetime | None = None) -> TurnRecord:
        """`assistant say`: the same pipeline from NLU on."""
        return self.run(Request.typed(text, now=now))

    def run_audio(
        self, samples: np.ndarray, source: dict[str, Any] | None = None, now: datetime | None = None
    ) -> TurnRecord:
        """One request's audio (already endpointed) from ASR on."""
        return self.run(Request.audio(samples, source, now=now))

    def _sessions_of(self, device_id: str) -> SessionTracker:
        """Each device (a Wyoming satellite, say) has its own sessions: a follow-up belongs to the device asked."""
        if device_id not in self._device_sessions:
            self._device_sessions[device_id] = SessionTracker(
                self.store, device_id, self.user_id, self.settings.session.gap_seconds
            )
        return self._device_sessions[device_id]

    # -- one turn ---------------------------------------------------------------------------------------------
    def run(self, req: Request, listener: Listener | None = None) -> TurnRecord:
        """Run one request; `listener` gets this turn's events too (the live loop plays ResponseAudio from it)."""
        now = req.now or datetime.now()
        self.run_due(now)  # what was scheduled for before this turn happens first
        device_id = req.device_id or self.device_id
        sessions = self._sessions_of(device_id)
        session = sessions.session_for(now)
        turn_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        rec = TurnRecord(
            turn_id=turn_id, session_id=session.session_id, source=req.source, wake=req.wake, transcript=req.text
        )
        ctx = TurnContext(
            home=self.home,
            device_id=device_id,
            user_id=self.user_id,
            now=now,
            session_id=session.session_id,
            data_dir=self.data_dir,
            history=list(session.history),
            person=self._named_person(),
        )
        if ctx.person is not None:
            ctx.speaker = {"person": ctx.person, "decision": "session"}
        context_snapshot = {
            "device_id": device_id,
            "user_id": self.user_id,
            "now": now.isoformat(),
            "home": {"name": self.home.name, "source": str(self.home.source), "states": self.home.states()},
        }

        def emit(event: Event) -> None:
            self.emit(event, listener)

        def ms() -> float:
            return (time.perf_counter() - t0) * 1000

        def run(stage: str, fn, inp: Any, result=lambda out: (jsonable(out), None)):
            backend = self._backends.get(stage)
            s0 = ms()
            emit(
                StageStarted(
                    turn_id, stage, getattr(backend, "name", None), getattr(backend, "version", None), round(s0, 3), inp
                )
            )
            try:
                out = fn()
            except AssistantError as err:
                code = err.code
                emit(StageEnded(turn_id, stage, ms(), error_code=code))
                rec.latency_ms[stage] = round(ms() - s0, 1)
                raise err if isinstance(err, StageError) else StageError(code, err.message, stage) from err
            except Exception as err:  # noqa: BLE001 - any backend crash becomes a coded, traced error
                emit(StageEnded(turn_id, stage, ms(), error_code=f"{stage}-failed"))
                rec.latency_ms[stage] = round(ms() - s0, 1)
                raise StageError(f"{stage}-failed", f"{stage} failed: {type(err).__name__}: {err}", stage) from err
            output, confidence = result(out)
            end = ms()
            emit(StageEnded(turn_id, stage, end, output=output, confidence=confidence))
            rec.latency_ms[stage] = round(end - s0, 1)
            return out

        emit(TurnStarted(turn_id, session.session_id, req.source, req.wake, now.isoformat()))
        self._record_pre_turn_stages(req, turn_id, emit)
        pending = None
        first_audio_ms: float | None = None
        try:
            if req.error is not None:
                raise req.error
            if req.text is None:
                if self.asr is None or req.samples is None:
                    raise StageError("asr-disabled", "Audio input needs the asr stage in pipeline.yaml.", "asr")
                samples, spec = req.samples, req.speculation
                enrolling = _enrolling(ctx)
                speaker_job = (
                    spec.speaker_job
                    if spec is not None and spec.speaker_job is not None and not enrolling
                    else self._start_speaker(req.samples, enrolling)
                )
                asr = run(
                    "asr",
                    (lambda: spec.asr)
                    if spec is not None
                    else (lambda: self.asr.transcribe(samples, self.settings.asr.language)),
                    {"audio_seconds": round(len(samples) / audio_io.PIPELINE_RATE, 3)}
                    | (
                        {
                            "speculative": {
                                "verdict": spec.verdict,
                                "reason": spec.reason,
                                "decode_ms": spec.decode_ms,
                                "pause_ms": spec.pause_ms,
                            }
                        }
                        if spec is not None
                        else {}
                    ),
                    lambda out: (jsonable(out), out.confidence),
                )
                if spec is not None:  # decoded during the pause, before the endpoint: what it cost, not 0 ms
                    rec.latency_ms["asr"] = spec.decode_ms
                if speaker_job is not None:
                    switched = self._finish_speaker(speaker_job, run, rec, ctx, context_snapshot, enrolling)
                    session = switched or session
                text = _WAKE_PREFIX.sub("", asr.text).strip()
                rec.transcript, rec.asr_confidence = text, asr.confidence
                if not re.search(r"\w", text):
                    raise AsrError("asr-no-text", "No words were recognised in the request.")
            text = rec.transcript or ""
            if not text.strip():
                raise StageError("nlu-empty-text", "There is no text to understand.", "nlu")
            feedback = self._feedback_reply(text, ctx)
            if feedback is not None:
                rec.intent, rec.intent_confidence = "feedback", 1.0
                rec.action, rec.response_text = feedback["action"], feedback["text"]
                raise _Handled()
            if self.rewriter is not None:
                said = text
                rw = run(
                    "rewrite",
                    lambda: self.rewriter.rewrite(said, _personal_user(ctx), ctx),
                    {"text": said},
                    lambda out: (out.to_dict(), out.score),
                )
                if rw.applied:
                    rec.rewrite = rw.to_dict()  # the transcript keeps what the user said
                    text = rw.text
            nlu = run(
                "nlu", lambda: self.nlu.parse(text, ctx), {"text": text}, lambda out: (jsonable(out), out.confidence)
            )
            rec.intent, rec.intent_confidence, rec.slots = nlu.intent, round(nlu.confidence, 4), nlu.slot_dict()
            if self.resolver is not None:
                resolved = run("resolve", lambda: self.resolver.resolve(nlu, ctx), {"slots": nlu.slot_dict()})
            else:
                resolved = ResolveResult()
            if self.reranker is not None:
                before = nlu
                nlu, resolved, _explanation = run(
                    "rerank",
                    lambda: self.reranker.rerank(before, resolved, ctx, user_history=self.user_history),
                    {"intent": before.intent, "nbest": [list(x) for x in before.nbest]},
                    lambda out: (out[2], out[0].confidence),
                )
                rec.intent, rec.intent_confidence, rec.slots = nlu.intent, round(nlu.confidence, 4), nlu.slot_dict()
                if nlu.intent != before.intent:
                    rec.nlu_intent = before.intent  # what NLU alone said, for learning
            rec.entities = [jsonable(e) for e in resolved.entities]
            response = run(
                "respond",
                lambda: self.responder.respond(nlu, resolved, ctx),
                {"intent": nlu.intent, "entities": len(resolved.entities)},
            )
            rec.action, rec.response_text = jsonable(response.action), response.text
            rec.expects_reply = response.expects_reply
            if response.answers_intent and response.answers_intent != rec.intent:
                # an answer to a clarifying question is a turn of the request it completed (history and learning)
                rec.nlu_intent = rec.nlu_intent or rec.intent
                rec.intent = response.answers_intent
            pending = response.pending
            if (
                response.action.status == "done"
                and not response.expects_reply
                and should_ask(turn_id, self.settings.feedback.ask_rate)
            ):
                rec.response_text = f"{response.text} {FEEDBACK_QUESTION}"
                rec.expects_reply = True
                pending = {"feedback_for": turn_id}
        except _Handled:
            pass
        except AssistantError as err:
            rec.error = err.to_dict() | {"stage": getattr(err, "stage", "pipeline")}
            rec.response_text = rec.response_text or (_apology(err) if req.speak else None)
            emit(TurnError(turn_id, err.code, err.message, rec.error["stage"]))
        # Speak whatever we have to say, error or not: the user must never be left in silence.
        if self.tts is not None and rec.response_text and req.speak:
            try:
                first_audio_ms, first_chunk_ms, rec.response_audio = self._speak(
                    rec.response_text, turn_id, run, emit, ms
                )
                rec.latency_ms["tts_first_audio"] = round(first_chunk_ms, 1)
            except AssistantError as err:
                rec.error = rec.error or (err.to_dict() | {"stage": "tts"})
        total_ms = ms()
        first = first_audio_ms if first_audio_ms is not None else total_ms
        rec.latency_ms["processing_to_first_audio"] = round(first, 1)
        rec.latency_ms["endpoint_wait"] = round(req.endpoint_wait_ms, 1)
        ready = req.endpoint_wait_ms
        if req.speculation is not None:  # the turn could not start before its speculative decode was done
            rec.latency_ms["speculation_ready"] = round(req.speculation.pause_ms + req.speculation.decode_ms, 1)
            ready = max(ready, rec.latency_ms["speculation_ready"])
        rec.latency_ms["end_to_end"] = round(ready + first, 1)
        rec.latency_ms["total"] = round(total_ms, 1)
        rec.pending = pending
        rec.speaker = ctx.speaker
        traced = not is_opted_out(self.data_dir, ctx.user_id)
        if traced and req.samples is not None and self.settings.traces.keep_request_audio:
            rec.request_audio = self._keep_request_audio(turn_id, req.samples)
        emit(
            TurnEnded(
                record=rec,
                traced=traced,
                context=context_snapshot,
                pipeline=self.versions(),
                device_id=device_id,
                user_id=ctx.user_id,
                started_at=now.timestamp(),
            )
        )
        self._home_state.save(self.home)
        sessions.end_turn(session, rec, now)
        if self.user_history is not None:
            from assistant.understanding.rerank.context import HISTORY_STATUSES, chosen_entities

            if (rec.action or {}).get("status") in HISTORY_STATUSES:
                self.user_history.add_turn(rec.intent, chosen_entities(rec), now)
        return rec

    def _finish_speaker(self, job, run, rec: TurnRecord, ctx: TurnContext, snapshot: dict[str, Any], enrolling: bool):
        """The speaker stage's span (its time is what the turn waited for it after ASR; `embed_ms` what it cost)
        and who the turn belongs to: an identified voice is the person; an unknown one gets the household's
        shared behaviour (the device's user, no person)."""
        spk, emb, noisy = run(
            "speaker",
            job.result,
            {"voices": len(self.speaker.store.voices()), "threshold": self.speaker.threshold},
            lambda out: (jsonable(out[0]), out[0].score),
        )
        rec.latency_ms["speaker_wait"] = rec.latency_ms.get("speaker", 0.0)
        rec.latency_ms["speaker"] = spk.embed_ms
        ctx.voice = (
            None
            if emb is None
            else {"embedding": emb, "noisy": noisy, "encoder": self.speaker.version, "seconds": spk.audio_seconds}
        )
        if spk.decision == "no-voices":  # embedded only to learn a voice: nobody to tell apart yet
            return None
        ctx.person = spk.person
        ctx.user_id = spk.person or self.user_id
        ctx.speaker = {
            "person": spk.person,
            "decision": spk.decision,
            "score": spk.score,
            "candidate": spk.candidate,
            "threshold": spk.threshold,
        }
        snapshot["user_id"] = ctx.user_id  # the person (exports turn it into a pseudonym)
        if spk.person is None or enrolling:  # learning a voice continues in the device's conversation
            return None
        # the person's own conversation on this device (history, follow-ups): returns that session
        session = self._sessions_of(ctx.device_id).session_for(ctx.now, spk.person)
        rec.session_id = ctx.session_id = session.session_id
        ctx.history = list(session.history)
        return session

    def _keep_request_audio(self, turn_id: str, samples: np.ndarray) -> str | None:
        """FLAC beside the trace store (lossless, about half of WAV); a full disk costs the file, never the turn."""
        path = self._trace_path().parent / "requests" / f"{turn_id}.flac"
        try:
            audio_io.write_flac(path, samples, audio_io.PIPELINE_RATE)
        except (OSError, RuntimeError) as err:  # soundfile raises RuntimeError for libsndfile failures
            _LOGGER.warning("request audio not kept: %s", err)
            return None
        return str(path)

    def _record_pre_turn_stages(self, req: Request, turn_id: str, emit: Listener) -> None:
        """Wake and endpointing happened before the turn began (audio time is in their outputs)."""
        if req.wake.get("detected") and self.wake is not None:
            emit(
                StageRecorded(
                    turn_id,
                    "wake",
                    self.wake.name,
                    self.wake.version,
                    input={"models": list(self.wake.models), "threshold": self.settings.wake.threshold},
                    output=req.wake,
                    confidence=req.wake.get("score"),
                )
            )
        if "endpoint" in req.source and self.vad is not None:
            emit(
                StageRecorded(
                    turn_id,
                    "vad",
                    self.vad.name,
                    self.vad.version,
                    input={
                        "threshold": self.settings.vad.threshold,
                        "end_silence_seconds": self.settings.vad.end_silence_seconds,
                    },
                    output={
                        k: req.source.get(k)
                        for k in (
                            "offset_seconds",
                            "speech_start_seconds",
                            "speech_end_seconds",
                            "end_seconds",
                            "endpoint",
                        )
                    },
                    error_code=req.error.code if req.error is not None else None,
                )
            )

    def _feedback_reply(self, text: str, ctx: TurnContext) -> dict[str, Any] | None:
        """If the last turn asked "Did I answer your question?", a yes/no reply is feedback, not a request."""
        prev = ctx.previous
        if prev is None or not prev.pending or "feedback_for" not in prev.pending:
            return None
        answer = classify_reply(text)
        if answer == "unclear":
            return None  # the user moved on: treat it as a new request
        record_feedback(self.store, prev.pending["feedback_for"], answer, text)
        reply = "Great, thanks." if answer == "yes" else "Sorry about that. Thanks for telling me."
        return {
            "text": reply,
            "action": {
                "name": "feedback.record",
                "status": "done",
                "target": prev.pending["feedback_for"],
                "params": {"answer": answer},
                "result": {},
            },
        }

    def _speak(self, text: str, turn_id: str, run, emit: Listener, ms) -> tuple[float, float, str | None]:
        """Synthesize, emitting every chunk as it is ready.

        Returns (first audio, ms into the turn; first audio, ms after synthesis began; the wav path)."""
        chunks: list[np.ndarray] = []
        first: list[float] = []
        rate = self.tts.sample_rate

        def synth():
            for chunk in self.tts.synthesize(text):
                if not first:
                    first.append(ms())
                chunks.append(chunk)
                emit(ResponseAudio(turn_id, chunk, rate))
            if not chunks:
                raise StageError("tts-no-audio", "The voice produced no audio.", "tts")
            return np.concatenate(chunks)

        start = ms()
        path: list[str | None] = [None]

        def result(audio: np.ndarray):
            if self.out_dir is not None:
                path[0] = str(self.out_dir / f"{turn_id}.wav")
                audio_io.write_wav(Path(path[0]), audio, rate)
            return {
                "audio_seconds": round(len(audio) / rate, 3),
                "sample_rate": rate,
                "path": path[0],
                "first_chunk_ms": round(first[0] - start, 1),
            }, None

        run("tts", synth, {"text": text}, result)
        return first[0], first[0] - start, path[0]


def _enrolling(ctx: TurnContext) -> bool:
    """The previous turn asked for a phrase of "learn my voice" (skills/voices.py)."""
    prev = ctx.previous
    pending = prev.pending if prev is not None else None
    return bool(pending and pending.get("skill") == "voices" and pending.get("step") != "name")


def _personal_user(ctx: TurnContext) -> str | None:
    """Whose personal rewrite layer applies: none for a voice the speaker stage could not name."""
    if ctx.speaker is not None and ctx.speaker.get("decision") == "unknown":
        return None
    return ctx.user_id


def _apology(err: AssistantError) -> str:
    if err.code in ("asr-no-text", "no-speech-after-wake"):
        return "Sorry, I didn't catch that."
    return "Sorry, something went wrong on my side."
