"""The runner: stage order, timing, tracing and error wrapping for every turn.

Backends do one thing each and never time or trace themselves; this module does it for all of them, so a new
backend is one file in backends/ and one line in a `_make_*` factory. A turn's trace is written in one
transaction in `finally`, so a failure anywhere still leaves a trace with its error code.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.config import Settings, default_data_dir
from assistant.core.context import PreviousTurn, TurnContext
from assistant.understanding.rerank.context import HISTORY_STATUSES, chosen_entities
from assistant.errors import AssistantError, AsrError, StageError
from assistant.learning.feedback import FEEDBACK_QUESTION, classify_reply, record_feedback, should_ask
from assistant.trace.privacy import is_opted_out
from assistant.trace.store import Span, TraceStore, TurnTrace

_LOGGER = logging.getLogger(__name__)
_FRAME_SECONDS = audio_io.FRAME_SAMPLES / audio_io.PIPELINE_RATE
_WAKE_PREFIX = re.compile(r"^\W*(?:(?:hey|ok|okay)[\s,]+)?(?:alexa|jarvis|mycroft|nabu|rhasspy)\b\W*", re.IGNORECASE)


# -- backend factories: the seams tests patch ------------------------------------------------------------
def _make_wake(settings: Settings):
    from assistant.backends.wake.openwakeword import OpenWakeWordBackend

    return OpenWakeWordBackend(settings.wake.models)


def _make_vad(settings: Settings):
    from assistant.backends.vad.silero import SileroVad

    return SileroVad()


def _make_asr(settings: Settings):
    from assistant.backends.asr.faster_whisper import FasterWhisperAsr

    a = settings.asr
    return FasterWhisperAsr(a.model, a.compute_type, a.beam_size, a.threads)


def _make_rewriter(settings: Settings, data_dir: Path):
    from assistant.understanding.rewrite import Rewriter

    return Rewriter.load(data_dir, settings)


def _make_nlu(settings: Settings):
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu

    return OnnxJointNlu(settings.resolve_path(settings.nlu.model_dir), threads=settings.nlu.threads)


def _make_resolver(settings: Settings, home):
    from assistant.understanding.resolve.catalog import CatalogResolver

    return CatalogResolver(home)


def _make_responder(settings: Settings, home, music=None):
    from assistant.skills.responder import SkillResponder

    return SkillResponder(min_confidence=settings.nlu.min_confidence, music=music)


def _make_reranker(settings: Settings, resolver):
    from assistant.understanding.rerank.context import ContextReranker

    return ContextReranker(resolver)


def _make_tts(settings: Settings):
    from assistant.backends.tts.piper import PiperTts

    return PiperTts(settings.tts.voice, settings.tts.length_scale)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value


@dataclass
class _Request:
    """Audio of one request cut out of a stream, or typed text."""

    source: dict[str, Any]
    wake: dict[str, Any]
    samples: np.ndarray | None = None
    text: str | None = None
    now: datetime | None = None
    endpoint_wait_ms: float = 0.0
    """Audio time between the last speech frame and the endpoint decision (the user waits for it)."""
    error: AssistantError | None = None
    speak: bool = True


@dataclass
class _Session:
    session_id: str
    last_at: datetime
    history: list[PreviousTurn] = field(default_factory=list)


class Pipeline:
    """Builds the configured backends once and runs turns through them."""

    def __init__(
        self,
        settings: Settings,
        home_path: Path,
        data_dir: Path | None = None,
        out_dir: Path | None = None,
        load_audio_stages: bool = True,
    ) -> None:
        from assistant.home.model import Home

        self.settings = settings
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = Path(out_dir) if out_dir else None
        self.home = Home.load(home_path)
        self.store = TraceStore(self._trace_path())
        stages = set(settings.stages)
        self.load_seconds: dict[str, float] = {}
        self.wake = self._load("wake", _make_wake) if load_audio_stages and "wake" in stages else None
        self.vad = self._load("vad", _make_vad) if load_audio_stages and "vad" in stages else None
        self.asr = self._load("asr", _make_asr) if load_audio_stages and "asr" in stages else None
        self.rewriter = self._load("rewrite", lambda s: _make_rewriter(s, self.data_dir)) if "rewrite" in stages else None
        self.nlu = self._load("nlu", _make_nlu)
        self.resolver = self._load("resolve", lambda s: _make_resolver(s, self.home)) if "resolve" in stages else None
        self.responder = self._load(
            "respond", lambda s: _make_responder(s, self.home, getattr(self.resolver, "music", None)))
        self.reranker = self._load("rerank", lambda s: _make_reranker(s, self.resolver)) \
            if "rerank" in stages and self.resolver is not None else None
        self.tts = self._load("tts", _make_tts) if "tts" in stages else None
        satellites = self.home.satellites()
        self.device_id = settings.session.device_id or (satellites[0].id if satellites else "default")
        self._restore_home_state()
        self.user_history = self._user_history()
        self.user_id = settings.session.user_id
        self._session: _Session | None = None

    # -- device states outlive the process (a light turned on by one `say` is on for the next) ----------------
    def _home_state_path(self) -> Path:
        return self.data_dir / "home_state.json"

    def _restore_home_state(self) -> None:
        path = self._home_state_path()
        if not path.exists():
            return
        try:
            saved = json.loads(path.read_text()).get(str(self.home.source), {})
        except (OSError, ValueError) as err:
            _LOGGER.warning("ignoring unreadable %s: %s", path, err)
            return
        for device_id, state in saved.items():
            if device_id in self.home.devices:
                try:
                    self.home.set_state(device_id, **state)
                except (KeyError, ValueError) as err:  # the home file changed since: keep its defaults
                    _LOGGER.info("not restoring %s: %s", device_id, err)

    def _save_home_state(self) -> None:
        path = self._home_state_path()
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            data = {}
        data[str(self.home.source)] = self.home.states()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(path)  # atomic: a crash never leaves half a file

    def _user_history(self):
        """What this device's users chose before (last 90 days of traces): a feature source for the reranker."""
        if self.reranker is None:
            return None
        from assistant.understanding.rerank.context import user_history_from_records

        since = time.time() - 90 * 86400
        return user_history_from_records(self.store.iter_records(since=since), user_id=None,
                                         music=getattr(self.resolver, "music", None))

    def _trace_path(self) -> Path:
        p = Path(self.settings.traces.db).expanduser()
        return p if p.is_absolute() else self.data_dir / p

    def _load(self, stage: str, factory):
        t0 = time.perf_counter()
        backend = factory(self.settings)
        self.load_seconds[stage] = round(time.perf_counter() - t0, 3)
        return backend

    def versions(self) -> dict[str, str]:
        out = {}
        for stage, b in (("wake", self.wake), ("vad", self.vad), ("asr", self.asr), ("rewrite", self.rewriter), ("nlu", self.nlu),
                         ("resolve", self.resolver), ("rerank", self.reranker), ("respond", self.responder), ("tts", self.tts)):
            if b is not None:
                out[stage] = f"{b.name} {getattr(b, 'version', '')}".strip()
        return out

    def close(self) -> None:
        self.store.close()

    # -- sessions ---------------------------------------------------------------------------------------
    def _session_for(self, now: datetime) -> _Session:
        gap = timedelta(seconds=self.settings.session.gap_seconds)
        s = self._session
        if s is not None and now - s.last_at <= gap:
            return s
        if s is None:
            # Continue a session an earlier process left open (e.g. `say` answering a clarifying question).
            last = self.store.last_session(self.device_id, self.user_id)
            if last is not None and now - datetime.fromtimestamp(last[1]) <= gap:
                self._session = _Session(last[0], datetime.fromtimestamp(last[1]), self._history_from_store(last[0]))
                return self._session
        self._session = _Session(uuid.uuid4().hex, now)
        return self._session

    def _history_from_store(self, session_id: str) -> list[PreviousTurn]:
        history = []
        for row in reversed(self.store.list_turns(limit=10, session_id=session_id)):
            rec = (self.store.get_turn(row["turn_id"]) or {}).get("record", {})
            history.append(_previous_turn(rec))
        return history

    # -- entry points -----------------------------------------------------------------------------------
    def run_text(self, text: str, now: datetime | None = None) -> dict[str, Any]:
        """`assistant say`: the same pipeline from NLU on."""
        req = _Request(source={"kind": "text"}, wake={"detected": False, "skipped": True}, text=text, now=now)
        return self._run_turn(req)

    def run_audio(self, samples: np.ndarray, source: dict[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
        """One request's audio (already endpointed) from ASR on."""
        req = _Request(source=source or {"kind": "audio"}, wake={"detected": False, "skipped": True},
                       samples=np.asarray(samples, dtype=np.int16), now=now)
        return self._run_turn(req)

    def replay(self, path: Path, no_wake: bool = False, start: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Treat a file as a microphone stream; yield one record per turn found in it."""
        start = start or datetime.now()
        try:
            frames = _checked(audio_io.stream_file(Path(path)))
        except audio_io.AudioInputError as err:
            # Nothing to listen to: trace the failed turn (its error code says why) and say nothing.
            yield self._run_turn(_Request(source={"kind": "file", "file": str(path), "offset_seconds": 0.0},
                                          wake={"detected": False}, now=start, error=err, speak=False))
            return
        requests = _segment_no_wake(self, frames, str(path)) if no_wake else _segment_with_wake(self, frames, str(path))
        for req in requests:
            req.now = start + timedelta(seconds=float(req.source.get("offset_seconds", 0.0)))
            yield self._run_turn(req)

    # -- one turn ---------------------------------------------------------------------------------------
    def _run_turn(self, req: _Request) -> dict[str, Any]:
        now = req.now or datetime.now()
        session = self._session_for(now)
        turn_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        wall0 = time.time()
        spans: list[Span] = []
        rec: dict[str, Any] = {
            "turn_id": turn_id, "session_id": session.session_id, "source": req.source, "wake": req.wake,
            "transcript": req.text, "asr_confidence": None, "intent": None, "intent_confidence": None, "slots": {},
            "entities": [], "action": None, "response_text": None, "response_audio": None, "expects_reply": False,
            "latency_ms": {}, "error": None,
        }
        ctx = TurnContext(home=self.home, device_id=self.device_id, user_id=self.user_id, now=now,
                          session_id=session.session_id, data_dir=self.data_dir, history=list(session.history))
        context_snapshot = {"device_id": self.device_id, "user_id": self.user_id, "now": now.isoformat(),
                            "home": {"name": self.home.name, "source": str(self.home.source),
                                     "states": self.home.states()}}
        pending = None

        def run(stage: str, backend, fn, inp: Any):
            s0 = time.perf_counter()
            span = Span(stage, getattr(backend, "name", None), getattr(backend, "version", None),
                        (s0 - t0) * 1000, 0.0, input=inp)
            spans.append(span)
            try:
                out = fn()
            except StageError as err:
                span.error_code = err.code
                raise
            except AssistantError as err:
                span.error_code = err.code
                raise StageError(err.code, err.message, stage) from err
            except Exception as err:  # noqa: BLE001 - any backend crash becomes a coded, traced error
                span.error_code = f"{stage}-failed"
                raise StageError(f"{stage}-failed", f"{stage} failed: {type(err).__name__}: {err}", stage) from err
            finally:
                span.end_ms = (time.perf_counter() - t0) * 1000
                rec["latency_ms"][stage] = round(span.duration_ms, 1)
            return out, span

        # Wake and endpointing happened before the turn began (audio time is in their outputs); trace them first.
        if req.wake.get("detected") and self.wake is not None:
            spans.append(Span("wake", self.wake.name, self.wake.version, 0.0, 0.0,
                              input={"models": list(self.wake.models), "threshold": self.settings.wake.threshold},
                              output=req.wake, confidence=req.wake.get("score")))
        if "endpoint" in req.source and self.vad is not None:
            spans.append(Span("vad", self.vad.name, self.vad.version, 0.0, 0.0,
                              input={"threshold": self.settings.vad.threshold,
                                     "end_silence_seconds": self.settings.vad.end_silence_seconds},
                              output={k: req.source.get(k) for k in ("offset_seconds", "speech_start_seconds",
                                                                      "speech_end_seconds", "end_seconds", "endpoint")},
                              error_code=req.error.code if req.error is not None else None))
        try:
            if req.error is not None:
                raise req.error
            if req.text is None:
                if self.asr is None or req.samples is None:
                    raise StageError("asr-disabled", "Audio input needs the asr stage in pipeline.yaml.", "asr")
                samples = req.samples
                asr, span = run("asr", self.asr, lambda: self.asr.transcribe(samples, self.settings.asr.language),
                                {"audio_seconds": round(len(samples) / audio_io.PIPELINE_RATE, 3)})
                span.output, span.confidence = asdict(asr), asr.confidence
                text = _WAKE_PREFIX.sub("", asr.text).strip()
                rec["transcript"], rec["asr_confidence"] = text, asr.confidence
                if not re.search(r"\w", text):
                    raise AsrError("asr-no-text", "No words were recognised in the request.")
            text = rec["transcript"] or ""
            if not text.strip():
                raise StageError("nlu-empty-text", "There is no text to understand.", "nlu")
            feedback = self._feedback_reply(text, ctx)
            if feedback is not None:
                rec.update(intent="feedback", intent_confidence=1.0, action=feedback["action"],
                           response_text=feedback["text"])
                raise _Handled()
            if self.rewriter is not None:
                said = text
                rw, span = run("rewrite", self.rewriter, lambda: self.rewriter.rewrite(said, self.user_id, ctx),
                               {"text": said})
                span.output, span.confidence = rw.to_dict(), rw.score
                if rw.applied:
                    rec["rewrite"] = rw.to_dict()  # the transcript keeps what the user said
                    text = rw.text
            nlu, span = run("nlu", self.nlu, lambda: self.nlu.parse(text, ctx), {"text": text})
            span.output, span.confidence = _jsonable(nlu), nlu.confidence
            rec.update(intent=nlu.intent, intent_confidence=round(nlu.confidence, 4), slots=nlu.slot_dict())
            if self.resolver is not None:
                resolved, span = run("resolve", self.resolver, lambda: self.resolver.resolve(nlu, ctx), {"slots": nlu.slot_dict()})
            else:
                from assistant.core.stages.resolve import ResolveResult

                resolved = ResolveResult()
            span.output = _jsonable(resolved)
            if self.reranker is not None:
                before = nlu
                (nlu, resolved, explanation), span = run(
                    "rerank", self.reranker,
                    lambda: self.reranker.rerank(before, resolved, ctx, user_history=self.user_history),
                    {"intent": before.intent, "nbest": [list(x) for x in before.nbest]})
                span.output, span.confidence = explanation, nlu.confidence
                rec.update(intent=nlu.intent, intent_confidence=round(nlu.confidence, 4), slots=nlu.slot_dict())
                if nlu.intent != before.intent:
                    rec["nlu_intent"] = before.intent  # what NLU alone said, for learning
            rec["entities"] = [_jsonable(e) for e in resolved.entities]
            response, span = run("respond", self.responder, lambda: self.responder.respond(nlu, resolved, ctx),
                                 {"intent": nlu.intent, "entities": len(resolved.entities)})
            span.output = _jsonable(response)
            rec.update(action=_jsonable(response.action), response_text=response.text, expects_reply=response.expects_reply)
            if response.answers_intent and response.answers_intent != rec["intent"]:
                # an answer to a clarifying question is a turn of the request it completed (for history and learning)
                rec.setdefault("nlu_intent", rec["intent"])
                rec["intent"] = response.answers_intent
            pending = response.pending
            if (response.action.status == "done" and not response.expects_reply
                    and should_ask(turn_id, self.settings.feedback.ask_rate)):
                rec["response_text"] = f"{response.text} {FEEDBACK_QUESTION}"
                rec["expects_reply"] = True
                pending = {"feedback_for": turn_id}
        except _Handled:
            pass
        except AssistantError as err:
            rec["error"] = err.to_dict() | {"stage": getattr(err, "stage", "pipeline")}
            rec["response_text"] = rec["response_text"] or (_apology(err) if req.speak else None)
        # Speak whatever we have to say, error or not: the user must never be left in silence.
        if self.tts is not None and rec["response_text"] and req.speak:
            try:
                first_ms, path = self._speak(rec["response_text"], turn_id, run)
                rec["response_audio"] = path
                rec["latency_ms"]["tts_first_audio"] = round(first_ms, 1)
            except AssistantError as err:
                rec["error"] = rec["error"] or (err.to_dict() | {"stage": "tts"})
        total_ms = (time.perf_counter() - t0) * 1000
        first_audio_ms = (spans[-1].start_ms + rec["latency_ms"]["tts_first_audio"]
                          if "tts_first_audio" in rec["latency_ms"] and spans else total_ms)
        rec["latency_ms"]["processing_to_first_audio"] = round(first_audio_ms, 1)
        rec["latency_ms"]["endpoint_wait"] = round(req.endpoint_wait_ms, 1)
        rec["latency_ms"]["end_to_end"] = round(req.endpoint_wait_ms + first_audio_ms, 1)
        rec["latency_ms"]["total"] = round(total_ms, 1)
        if pending is not None:
            rec["pending"] = pending
        if not is_opted_out(self.data_dir, self.user_id):  # an opted-out user leaves no trace at all
            self._write_trace(rec, spans, session, now, wall0, context_snapshot)
        self._save_home_state()
        session.history.append(_previous_turn(rec))
        if self.user_history is not None and (rec.get("action") or {}).get("status") in HISTORY_STATUSES:
            self.user_history.add_turn(rec.get("intent"), chosen_entities(rec), now)
        session.last_at = now
        return rec

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
        return {"text": reply, "action": {"name": "feedback.record", "status": "done",
                                          "target": prev.pending["feedback_for"], "params": {"answer": answer},
                                          "result": {}}}

    def _speak(self, text: str, turn_id: str, run) -> tuple[float, str | None]:
        chunks: list[np.ndarray] = []
        first: list[float] = []

        def synth():
            s0 = time.perf_counter()
            for chunk in self.tts.synthesize(text):
                if not first:
                    first.append((time.perf_counter() - s0) * 1000)
                chunks.append(chunk)
            if not chunks:
                raise StageError("tts-no-audio", "The voice produced no audio.", "tts")
            return np.concatenate(chunks)

        audio, span = run("tts", self.tts, synth, {"text": text})
        seconds = len(audio) / self.tts.sample_rate
        path = None
        if self.out_dir is not None:
            path = str(self.out_dir / f"{turn_id}.wav")
            audio_io.write_wav(Path(path), audio, self.tts.sample_rate)
        span.output = {"audio_seconds": round(seconds, 3), "sample_rate": self.tts.sample_rate, "path": path,
                       "first_chunk_ms": round(first[0], 1)}
        return first[0], path

    def _write_trace(self, rec, spans, session, now, wall0, context_snapshot) -> None:
        started = now.timestamp()
        trace = TurnTrace(
            turn_id=rec["turn_id"], session_id=session.session_id, device_id=self.device_id, user_id=self.user_id,
            started_at=started, ended_at=started + rec["latency_ms"]["total"] / 1000, source=rec["source"],
            pipeline=self.versions(), context=context_snapshot, record=rec, spans=spans,
            events=[{"type": "wake", "t_ms": 0.0, "data": rec["wake"]}] if rec["wake"].get("detected") else [],
        )
        self.store.write_turn(trace)


class _Handled(Exception):
    """Ends a turn early without an error (e.g. the reply to a feedback question)."""


def _previous_turn(rec: dict[str, Any]) -> PreviousTurn:
    return PreviousTurn(turn_id=rec.get("turn_id", ""), transcript=rec.get("transcript") or "", intent=rec.get("intent"),
                        response_text=rec.get("response_text") or "", expects_reply=bool(rec.get("expects_reply")),
                        pending=rec.get("pending"))


def _checked(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Decode the first frame now, so a bad file fails before any turn starts."""
    first = next(frames)
    def chained() -> Iterator[np.ndarray]:
        yield first
        yield from frames
    return chained()


def _apology(err: AssistantError) -> str:
    if err.code in ("asr-no-text", "no-speech-after-wake"):
        return "Sorry, I didn't catch that."
    return "Sorry, something went wrong on my side."


# -- stream segmentation: wake word -> endpoint, or VAD segments in no-wake mode --------------------------------
def _segment_with_wake(p: Pipeline, frames: Iterator[np.ndarray], path: str) -> Iterator[_Request]:
    """Listen for the wake word; after it, collect the request until the VAD says it ended."""
    if p.wake is None or p.vad is None:
        raise AssistantError("stage-disabled", "Replay with a wake word needs the wake and vad stages; use --no-wake.")
    w, v = p.settings.wake, p.settings.vad
    p.wake.reset()
    t = 0.0
    refractory_until = 0.0
    listening: dict[str, Any] | None = None
    for frame in frames:
        t += _FRAME_SECONDS
        if listening is None:
            scores = p.wake.process(frame)
            model, score = max(scores.items(), key=lambda kv: kv[1])
            if score >= w.threshold and t >= refractory_until:
                p.vad.reset()
                listening = {"wake": {"detected": True, "score": round(score, 4), "model": model,
                                      "offset_seconds": round(t, 2)},
                             "start": t, "frames": [], "speech_at": None, "last_speech": None}
            continue
        listening["frames"].append(frame)
        if p.vad.speech_probability(frame) >= v.threshold:
            listening["speech_at"] = listening["speech_at"] or t
            listening["last_speech"] = t
        done = None
        if listening["speech_at"] is None and t - listening["start"] >= v.start_timeout_seconds:
            done = "timeout"
        elif listening["last_speech"] is not None and t - listening["last_speech"] >= v.end_silence_seconds:
            done = "endpoint"
        elif t - listening["start"] >= v.max_request_seconds:
            done = "max-length"
        if done:
            yield _request_from(listening, path, t, done)
            listening = None
            p.wake.reset()
            refractory_until = t + w.refractory_seconds
    if listening is not None:
        yield _request_from(listening, path, t, "end-of-file")


def _request_from(listening: dict[str, Any], path: str, t: float, reason: str) -> _Request:
    source = {"kind": "file", "file": path, "offset_seconds": round(listening["start"], 2), "end_seconds": round(t, 2),
              "endpoint": reason}
    if listening["speech_at"] is not None:
        source["speech_start_seconds"] = round(listening["speech_at"] - _FRAME_SECONDS, 2)
        source["speech_end_seconds"] = round(listening["last_speech"], 2)
    if listening["speech_at"] is None:
        return _Request(source=source, wake=listening["wake"], error=StageError(
            "no-speech-after-wake", "The wake word was heard but no request followed.", "vad"))
    wait_ms = (t - listening["last_speech"]) * 1000 if reason == "endpoint" else 0.0
    return _Request(source=source, wake=listening["wake"], samples=np.concatenate(listening["frames"]),
                    endpoint_wait_ms=wait_ms)


def _segment_no_wake(p: Pipeline, frames: Iterator[np.ndarray], path: str) -> Iterator[_Request]:
    """Every speech segment is a request (recordings without a wake word)."""
    if p.vad is None:
        raise AssistantError("stage-disabled", "Replay needs the vad stage in pipeline.yaml.")
    v = p.settings.vad
    p.vad.reset()
    pre = deque(maxlen=max(1, int(v.pre_roll_seconds / _FRAME_SECONDS)))
    t = 0.0
    seg: dict[str, Any] | None = None
    for frame in frames:
        t += _FRAME_SECONDS
        speech = p.vad.speech_probability(frame) >= v.threshold
        if seg is None:
            if speech:
                seg = {"start": t - _FRAME_SECONDS - len(pre) * _FRAME_SECONDS, "frames": [*pre, frame],
                       "speech_at": t, "last_speech": t, "wake": {"detected": False, "skipped": True}}
                pre.clear()
            else:
                pre.append(frame)
            continue
        seg["frames"].append(frame)
        if speech:
            seg["last_speech"] = t
        ended = t - seg["last_speech"] >= v.end_silence_seconds
        if ended or t - seg["start"] >= v.max_request_seconds:
            if seg["last_speech"] - seg["speech_at"] + _FRAME_SECONDS >= v.min_speech_seconds:
                seg["start"] = max(0.0, seg["start"])
                yield _request_from(seg, path, t, "endpoint" if ended else "max-length")
            seg = None
    if seg is not None and seg["last_speech"] - seg["speech_at"] + _FRAME_SECONDS >= v.min_speech_seconds:
        seg["start"] = max(0.0, seg["start"])
        yield _request_from(seg, path, t, "end-of-file")
