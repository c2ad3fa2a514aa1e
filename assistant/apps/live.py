"""Live operation: microphone -> wake word -> endpoint -> turn -> speaker, with barge-in and follow-ups.

One control thread (`LiveAssistant.run`) owns the state machine and every per-frame detector (wake, VAD); the pure
endpointer (assistant/core/endpointer.py) decides where a request starts and ends, exactly as in replay. A worker
thread runs each turn (`Runner.run`: ASR, NLU, resolve, respond, TTS) so the control thread keeps listening while the
assistant thinks and speaks. The turn's ResponseAudio events go to the speaker as soon as they exist: playback starts
with the first sentence, not after the whole answer. What happens after the turn (a barge-in, a rejected echo) is
emitted as an event too, and the trace recorder adds it to that turn.

States: idle (wake word) -> listening (endpointer) -> thinking (turn running) -> speaking (playback; wake word and
"stop" still watched for barge-in) -> idle, or -> listening again without the wake word when the answer asked a
question (follow-up).

Echo (the assistant hearing itself): the first line of defence is the platform's echo canceller, selected by the
profile as the input device (PulseAudio/PipeWire `module-echo-cancel` source, see hardware/README.md). On top of that,
and alone where there is none, three software gates apply while speaking and for `echo_tail_seconds` after:
1. the wake threshold is raised to `barge_in_threshold` and the wake model's window is reset when playback starts;
2. a detection is checked against the playback reference (assistant/apps/echo.py): if the best-aligned, optimally
   scaled reference explains at least `echo_explained` of the last `_ECHO_WINDOW_S` of microphone energy, the
   detection is the assistant's own voice and is ignored (a user talking over the echo leaves a residual);
3. "stop" without the wake word is only accepted from a speech segment that passes the same check, then ASR.
Why this and not a full adaptive echo canceller in Python: an NLMS/frequency-domain AEC per sample is expensive on
a Pi and the platform's WebRTC AEC does it better in C; the gates cost nothing while idle (they only run on a
candidate detection) and reject exactly the failure that matters: the assistant waking itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np

from assistant.apps.echo import echo_explained
from assistant.apps.sound import (
    FRAME_S,
    RATE,
    AudioDeviceError,
    Microphone,
    Player,
    earcon,
    find_device,
    refresh_devices,
)
from assistant.apps.status import StatusLine
from assistant.config import AudioSettings
from assistant.core.endpointer import AFTER_SPEECH_WINDOW_S, EndpointConfig, Endpointer, FrameBuffer
from assistant.core.events import (
    BargeIn,
    EchoRejected,
    Event,
    ListenTimeout,
    ResponseAudio,
    ResponsePlayed,
    SpeechAfterEndpoint,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    StateChanged,
    WakeDetected,
)
from assistant.core.record import TurnRecord
from assistant.core.request import Request
from assistant.errors import AssistantError, StageError
from assistant.text import is_stop_command

_LOGGER = logging.getLogger(__name__)
_ECHO_WINDOW_S = 1.2
KEEP_TURNS = 200
"""Turn records the live loop keeps in memory (`turns`): a loop that runs for weeks must not grow with them."""
_PLAYBACK_STALL_S = 3.0
"""A speaker that takes no samples for this long is stalled."""

__all__ = ["LiveAssistant", "State", "StatusLine"]


class State(str, Enum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    NO_MIC = "no microphone"
    STOPPED = "stopped"


@dataclass
class _Turn:
    """A request being thought about (worker thread) and spoken (the player)."""

    request: Request
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    record: TurnRecord | None = None
    error: Exception | None = None
    player: Player | None = None
    cancelled: bool = False
    speaker_failed: bool = False
    barge_in: dict[str, Any] | None = None
    echo_rejected: list[dict[str, Any]] = field(default_factory=list)
    ended_t: float | None = None
    """Stream time of the request's endpoint, watched for speech right after it."""
    after_speech: dict[str, Any] | None = None


@dataclass
class _Listening:
    """What the request being collected will carry: its wake info, and times relative to where listening began."""

    wake: dict[str, Any]
    started: float
    follow_up: bool = False


@dataclass
class _Speaking:
    player: Player
    turn: _Turn
    stop_seg: list[np.ndarray] | None = None
    stop_speech: float | None = None


class LiveAssistant:
    """The live loop over one Runner. `run()` blocks until `stop_event` is set, Ctrl-C, `max_turns` or `duration`.

    Options are the runner's `audio:` settings unless `options` (an AudioSettings) is given."""

    def __init__(
        self,
        runner,
        options: AudioSettings | None = None,
        stop_event: threading.Event | None = None,
        status: StatusLine | None = None,
        on_turn: Callable[[TurnRecord], None] | None = None,
        max_turns: int | None = None,
        duration: float | None = None,
    ) -> None:
        if runner.wake is None or runner.vad is None or runner.asr is None:
            raise AssistantError(
                "stage-disabled", "Live listening needs the wake, vad and asr stages in pipeline.yaml."
            )
        self.p = runner
        self.opts = options or runner.settings.audio
        self.stop_event = stop_event or threading.Event()
        self.status = status or StatusLine(enabled=False)
        self._detail = ""
        self._unsubscribe_status = runner.subscribe(self.status)
        self.on_turn = on_turn
        self.max_turns = max_turns
        self.duration = duration
        self.mic = Microphone(self.opts)
        self.state = State.IDLE
        self.turns: deque[TurnRecord] = deque(maxlen=KEEP_TURNS)  # the latest; the trace store keeps them all
        self.turn_count = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)
        """The loop's own timeline (states, detections, playback) with monotonic times: for tests and bench-live."""
        self.frames_in = 0
        self._recent: deque[np.ndarray] = deque(maxlen=int(np.ceil(_ECHO_WINDOW_S / FRAME_S)))
        self._out_device = None
        self._worker: threading.Thread | None = None
        self._gate_until = 0.0
        self._last_reference = np.zeros(0, np.int16)
        self._typed: queue.Queue[str] = queue.Queue(maxsize=8)
        self._speculation = None
        cfg = EndpointConfig.from_settings(runner.settings, FRAME_S)
        self._cfg = cfg
        self._endpointer = Endpointer(cfg, wake_word=True)
        self._buffer = FrameBuffer(
            FRAME_S, max(cfg.max_request_seconds, cfg.start_timeout_seconds, self.opts.follow_up_seconds) + 1.0
        )

    def submit_text(self, text: str) -> None:
        """Handle typed text as the next request when idle (answered through the speaker like a spoken one)."""
        self._typed.put_nowait(text)

    # -- helpers --------------------------------------------------------------------------------------------
    def _event(self, type_: str, **data) -> None:
        self.events.append({"type": type_, "t": time.monotonic(), **data})

    def _set_state(self, state: State, detail: str = "") -> None:
        if state != self.state:
            self._event("state", state=state.value)
        changed = (state, detail) != (self.state, self._detail)
        self.state, self._detail = state, detail
        if changed:
            self.p.emit(StateChanged(state.value, detail))  # the status line is a subscriber

    def _wake_attend(self, on: bool) -> None:
        # A cascade (backends/wake/cascade.py) runs its full detector on every frame while the answer plays, so a
        # barge-in is heard at once; other backends always do and have no `attend`.
        attend = getattr(self.p.wake, "attend", None)
        if attend is not None:
            attend(on)

    def _wake_score(self, frame: np.ndarray) -> tuple[str, float]:
        scores = self.p.wake.process(frame)
        return max(scores.items(), key=lambda kv: kv[1])

    def _play_earcon(self, kind: str) -> None:
        if not self.opts.earcons:
            return
        try:
            pl = Player(self._out_device, RATE, self.opts.playback_block_ms)
            pl.feed(earcon(kind, RATE, self.opts.earcon_volume))
            pl.finish()
            self._last_reference = pl.reference()
            self._gate_until = time.monotonic() + 0.5
            threading.Thread(target=lambda: (pl.done.wait(2.0), pl.close()), daemon=True).start()
        except Exception as err:  # noqa: BLE001 - an earcon is never worth a crash
            _LOGGER.info("earcon failed: %s", err)

    def _is_echo(self, reference: np.ndarray, played_s: float | None = None) -> tuple[bool, float]:
        """Is the recent microphone audio the assistant's own voice? `played_s`: how far playback is (None = all)."""
        if not self.opts.echo_suppression or not len(reference) or not self._recent:
            return False, 0.0
        mic = np.concatenate(list(self._recent))
        # Only the part of the reference that can be in the microphone now: keeps the FFT small on long answers.
        hi = len(reference) if played_s is None else min(len(reference), int((played_s + 0.5) * RATE))
        lo = max(0, hi - int((self.opts.echo_max_delay_seconds + _ECHO_WINDOW_S + 0.5) * RATE))
        explained = echo_explained(mic, reference[lo:hi])
        return explained >= self.opts.echo_explained, round(explained, 3)

    # -- mic lifecycle --------------------------------------------------------------------------------------
    def _open_mic(self) -> bool:
        try:
            self.mic.open()
        except AssistantError as err:
            self._set_state(State.NO_MIC, f"{err.message} Retrying every {self.opts.retry_seconds:g} s.")
            self._event("mic-error", code=err.code, message=err.message)
            return False
        self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
        self._event("mic-open", device=self.mic.device_name)
        return True

    def _wait_for_mic(self, deadline: float | None) -> bool:
        attempt = 0
        while not self._should_stop(deadline):
            if attempt:
                refresh_devices()
            if self._open_mic():
                return True
            attempt += 1
            self.stop_event.wait(self.opts.retry_seconds)
        return False

    def _should_stop(self, deadline: float | None) -> bool:
        if self.stop_event.is_set():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return True
        return (
            self.max_turns is not None
            and self.turn_count >= self.max_turns
            and self.state in (State.IDLE, State.NO_MIC)
        )

    def _speaker_problem(self, kind: str, message: str) -> None:
        """Tell the user (status line) and the timeline; the answer is still printed and traced."""
        self._event(kind, message=message)
        self.status.print(f"speaker: {message}")

    # -- turns ----------------------------------------------------------------------------------------------
    def _start_turn(self, req: Request) -> _Turn:
        """Run the turn in a worker thread; its ResponseAudio goes to the speaker as it is synthesized."""
        turn = _Turn(request=req, started=time.monotonic())
        out_device = self._out_device

        def to_speaker(event: Event) -> None:
            if not isinstance(event, ResponseAudio) or turn.cancelled or turn.speaker_failed:
                return
            if turn.player is None:
                try:
                    turn.player = Player(out_device, event.sample_rate, self.opts.playback_block_ms)
                except Exception as err:  # noqa: BLE001 - no speaker: answer in text, say why once
                    turn.speaker_failed = True
                    self._speaker_problem("speaker-error", f"cannot play the answer: {err}")
                    return
            turn.player.feed(event.samples)

        def work() -> None:
            try:
                turn.record = self.p.run(req, listener=to_speaker)
            except Exception as err:  # noqa: BLE001 - the service never dies on one turn
                _LOGGER.exception("turn failed")
                turn.error = err
            finally:
                if turn.player is not None:
                    turn.player.finish()
                turn.done.set()

        self._worker = threading.Thread(target=work, name="turn", daemon=True)
        self._worker.start()
        return turn

    def _finish_turn(self, turn: _Turn) -> None:
        rec = turn.record
        if rec is None:
            self.status.print(f"turn failed: {turn.error}")
            self._play_earcon("error")
            return
        barge = turn.barge_in
        if barge is not None:
            data = {k: v for k, v in barge.items() if k not in ("offset_ms", "reason")}
            self.p.emit(BargeIn(rec.turn_id, barge["offset_ms"], barge["reason"], data))
            rec.events = [*(rec.events or []), {"type": "barge-in", **barge}]
        for rej in turn.echo_rejected:
            self.p.emit(EchoRejected(rec.turn_id, rej.get("offset_ms"), rej))
        if turn.after_speech is not None:
            after = turn.after_speech
            self.p.emit(SpeechAfterEndpoint(rec.turn_id, after["offset_ms"], after))
        self.turns.append(rec)
        self.turn_count += 1
        self._event("turn", turn_id=rec.turn_id, intent=rec.intent, error=(rec.error or {}).get("code"))
        if rec.error and not rec.response_text:
            self._play_earcon("error")
        if self.on_turn is not None:
            try:
                self.on_turn(rec)
            except Exception:  # noqa: BLE001
                _LOGGER.exception("on_turn callback failed")

    # -- the loop -------------------------------------------------------------------------------------------
    def run(self) -> list[TurnRecord]:  # the latest KEEP_TURNS
        deadline = time.monotonic() + self.duration if self.duration else None
        try:
            self._out_device = find_device(self.opts.output_device, "output")
        except AssistantError as err:
            self.status.print(f"speaker: {err.message} Answers will only be printed.")
            self._out_device = None
        try:
            while not self._should_stop(deadline):
                if not self._wait_for_mic(deadline):
                    break
                try:
                    self._listen(deadline)
                except AudioDeviceError as err:
                    self._set_state(State.NO_MIC, err.message)
                finally:
                    self.mic.close()
                if not self._should_stop(deadline):
                    self._event("mic-lost")
                    self._set_state(
                        State.NO_MIC,
                        f"microphone {self.mic.device_name!r} stopped delivering audio "
                        f"(unplugged?). Retrying every {self.opts.retry_seconds:g} s.",
                    )
                    self.stop_event.wait(self.opts.retry_seconds)
        except KeyboardInterrupt:
            pass
        finally:
            self.mic.close()
            if self._worker is not None:
                self._worker.join(timeout=30)
            self._set_state(State.STOPPED)
            self._unsubscribe_status()
            self.status.close()
        return list(self.turns)

    def _frames(self, deadline: float | None):
        """Frames from the mic until stop; returns on a dead mic."""
        while not self._should_stop(deadline):
            try:
                frame, t = self.mic.frames.get(timeout=0.25)
            except queue.Empty:
                if not self.mic.healthy(self.opts.mic_timeout_seconds):
                    return
                continue
            self.frames_in += 1
            self._recent.append(frame)
            yield frame, t

    def _listen(self, deadline: float | None) -> None:
        p, w = self.p, self.p.settings.wake
        ep = self._endpointer
        ep.reset()
        p.wake.reset()
        listening: _Listening | None = None
        turn: _Turn | None = None  # the turn being thought about or spoken
        speaking: _Speaking | None = None
        queued: Request | None = None  # a request endpointed while the previous turn still finishes
        barge_threshold = max(w.threshold, self.opts.barge_in_threshold)
        self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
        due_checked = 0.0
        for frame, t in self._frames(deadline):
            self._buffer.append(t, frame)
            if turn is None and listening is None and t - due_checked >= 1.0:
                due_checked = t  # scheduled commands ("in ten minutes turn off the lights"), while nobody talks
                for rec in p.run_due(datetime.now()):
                    self._event("scheduled", turn_id=rec.turn_id, description=rec.source.get("description"))
            # 1. a turn in progress: thinking -> speaking -> done
            if turn is not None:
                player = turn.player
                if speaking is None and player is not None and not player.stopped:
                    speaking = _Speaking(player, turn)
                    p.wake.reset()
                    self._wake_attend(True)
                    self._set_state(State.SPEAKING)
                    self._event("speaking", turn_started=turn.started)
                if turn.done.is_set() and player is not None and player.stalled(_PLAYBACK_STALL_S):
                    # a busy or suspended device took the stream but plays nothing: give up on this answer
                    player.stop()
                    self._speaker_problem(
                        "speaker-stalled",
                        f"the speaker played nothing for {_PLAYBACK_STALL_S:g} s "
                        "(busy or suspended?); answers are printed meanwhile",
                    )
                if turn.done.is_set() and (player is None or player.done.is_set()):
                    if player is not None:
                        self._last_reference = player.reference()
                        player.close()
                    self._gate_until = time.monotonic() + (self.opts.echo_tail_seconds if player else 0.0)
                    self._event("playback-done", stopped=bool(player and player.stopped))
                    if turn.record is not None and player is not None:
                        self.p.emit(ResponsePlayed(turn.record.turn_id, stopped=bool(player.stopped)))
                    self._finish_turn(turn)
                    barge, rec = turn.barge_in, turn.record
                    turn, speaking = None, None
                    p.wake.reset()
                    self._wake_attend(False)
                    ep.refractory(t + (0.0 if barge else min(w.refractory_seconds, 0.5)))
                    if queued is not None:
                        turn, queued = self._launch(queued), None
                        continue
                    if (
                        listening is None
                        and barge is None
                        and rec is not None
                        and rec.expects_reply
                        and self.opts.follow_up_seconds > 0
                    ):
                        p.vad.reset()
                        ep.listen(t, follow_up=True, start_timeout=self.opts.follow_up_seconds, ignore_until=t + 0.3)
                        listening = _Listening(
                            wake={"detected": False, "follow_up": True, "after_turn": rec.turn_id},
                            started=t,
                            follow_up=True,
                        )
                        self._set_state(State.LISTENING, "follow-up: answer without the wake word")
                        self._event("listening", follow_up=True)
                        continue
                    if listening is None:
                        self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
                elif speaking is not None and listening is None and self.opts.barge_in:
                    self._watch_barge_in(frame, t, speaking, barge_threshold)
                    if turn.barge_in is not None and turn.barge_in["reason"] == "wake":
                        p.vad.reset()
                        ep.listen(t)
                        listening = _Listening(
                            wake={"detected": True, **turn.barge_in["wake"], "barge_in": True}, started=t
                        )
                        self._set_state(State.LISTENING, "barge-in")
                        self._event("listening", follow_up=False, barge_in=True)
                    continue
                elif listening is None:
                    if speaking is None:
                        self._set_state(State.THINKING)
                        if self._after_window(turn, t):  # the VAD goes on with the frames right after the request
                            self._after_speech(turn, t, self.p.vad.speech_probability(frame), during_answer=False)
                    continue
            # 2. collecting a request
            if listening is not None:
                req = self._collect(listening, frame, t, turn_running=turn is not None)
                if req is not None:
                    listening = None
                    if req == "timeout":
                        if turn is None:
                            self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
                        p.wake.reset()
                        ep.refractory(t + 0.3)
                        continue
                    if turn is not None:
                        queued = req
                    else:
                        turn = self._launch(req)
                        turn.ended_t = t
                continue
            if turn is not None:
                continue
            if not self._typed.empty():
                turn = self._launch(Request.typed(self._typed.get_nowait(), now=datetime.now(), kind="typed"))
                continue
            # 3. idle: the wake word
            model, score = self._wake_score(frame)
            gated = time.monotonic() < self._gate_until
            events = ep.feed(t, wake_score=score, wake_model=model, wake_threshold=barge_threshold if gated else None)
            woke = next((e for e in events if isinstance(e, WakeDetected)), None)
            if woke is None:
                continue
            if gated:
                echo, explained = self._is_echo(self._last_reference)
                if echo:
                    self._event("echo-rejected", score=round(score, 3), explained=explained, state="tail")
                    ep.cancel(t)
                    p.wake.reset()
                    continue
            self._event("wake", model=model, score=round(score, 4), capture_t=t)
            p.vad.reset()
            listening = _Listening(
                wake={
                    "detected": True,
                    "score": round(score, 4),
                    "model": model,
                    "at": datetime.now().isoformat(timespec="milliseconds"),
                },
                started=t,
            )
            self._set_state(State.LISTENING, f"{model} ({score:.2f})")
            self._event("listening", follow_up=False)
            self._play_earcon("wake")

    def _launch(self, req: Request) -> _Turn:
        self._set_state(State.THINKING)
        turn = self._start_turn(req)
        self._event(
            "request",
            seconds=round(len(req.samples) / RATE, 2) if req.samples is not None else 0.0,
            endpoint=req.source.get("endpoint"),
        )
        return turn

    def _collect(self, lst: _Listening, frame: np.ndarray, t: float, turn_running: bool):
        """Feed one frame's speech probability to the endpointer; a Request at the endpoint, "timeout", or None."""
        prob = self.p.vad.speech_probability(frame)
        events = self._endpointer.feed(t, speech_prob=prob)
        while events:
            ev = events.pop(0)
            if isinstance(ev, SpeechPaused):  # semantic end of turn: decode what was said so far (the mic queues)
                spec = self.p.speculate(self._buffer.cut(ev.start, ev.t), pause_ms=(ev.t - ev.speech_end) * 1000)
                self._speculation = spec
                self._event("speculation", verdict=spec.verdict, text=spec.text, decode_ms=spec.decode_ms)
                if spec.verdict == "complete":
                    events[:0] = self._endpointer.end_now(ev.t)
                elif spec.verdict == "incomplete":
                    self._endpointer.wait_longer()
                continue
            if isinstance(ev, SpeechResumed):
                self._speculation = None
                continue
            if isinstance(ev, ListenTimeout):
                self._speculation = None
                self._event("listen-timeout", follow_up=lst.follow_up)
                if not lst.follow_up and not turn_running and (self._worker is None or not self._worker.is_alive()):
                    # The wake word with nothing after it: trace it like replay does (no-speech-after-wake), quietly.
                    req = Request(
                        source=self._source(lst, t, ev.reason),
                        wake=lst.wake,
                        now=datetime.now(),
                        speak=False,
                        error=StageError(
                            "no-speech-after-wake", "The wake word was heard but no request followed.", "vad"
                        ),
                    )
                    try:
                        self.p.run(req)
                    except Exception:  # noqa: BLE001
                        _LOGGER.exception("could not trace the empty request")
                return "timeout"
            if isinstance(ev, SpeechEnded):
                self._event("endpoint", reason=ev.reason, capture_t=t)
                source = self._source(lst, t, ev.reason, ev)
                spec, self._speculation = self._speculation, None
                return Request(
                    source=source,
                    wake=lst.wake,
                    samples=self._buffer.cut(ev.start, ev.end),
                    now=datetime.now(),
                    # live time: the decision came after the speculative decode, which the wait then includes
                    endpoint_wait_ms=(ev.endpoint_wait * 1000 + (spec.decode_ms if ev.reason == "complete" else 0.0))
                    if spec is not None
                    else ev.endpoint_wait * 1000,
                    speculation=spec,
                )
        return None

    def _source(self, lst: _Listening, t: float, reason: str, ev: SpeechEnded | None = None) -> dict[str, Any]:
        """Times are seconds into the request audio (which starts right after the wake word, or at follow-up)."""
        src = {
            "kind": "microphone",
            "device": self.mic.device_name,
            "endpoint": reason,
            "offset_seconds": 0.0,
            "end_seconds": round(t - lst.started, 2),
            "follow_up": lst.follow_up,
        }
        if ev is not None:
            src["speech_start_seconds"] = round(max(0.0, ev.speech_start - lst.started), 2)
            src["speech_end_seconds"] = round(ev.speech_end - lst.started, 2)
        return src

    def _watch_barge_in(self, frame: np.ndarray, t: float, sp: _Speaking, threshold: float) -> None:
        turn, player = sp.turn, sp.player
        model, score = self._wake_score(frame)
        if score >= 0.2:
            self._event("wake-score", score=round(score, 3), state="speaking")
        reason = None
        explained = None
        if score >= threshold:
            echo, explained = self._is_echo(player.reference(), player.played / player.out_rate)
            if echo:
                self._event("echo-rejected", score=round(score, 3), explained=explained, state="speaking")
                turn.echo_rejected.append(
                    {"score": round(score, 3), "explained": explained, "offset_ms": round(player.offset_ms, 1)}
                )
                self.p.wake.reset()
                return
            reason = "wake"
        elif self.opts.stop_word:
            reason = self._watch_stop_word(frame, t, sp)
        if reason is None:
            return
        decided = time.monotonic()
        offset = player.stop()
        stopped = time.monotonic()
        barge = {
            "offset_ms": round(offset, 1),
            "reason": reason,
            "model": model,
            "score": round(score, 4),
            "echo_explained": explained,
            "capture_to_stop_ms": round((stopped - t) * 1000, 1),
            "decide_to_stop_ms": round((stopped - decided) * 1000, 1),
            "wake": {"score": round(score, 4), "model": model} if reason == "wake" else {"stop_word": True},
        }
        turn.barge_in = barge
        turn.cancelled = True
        self._event(
            "barge-in",
            capture_t=t,
            decided_t=decided,
            stopped_t=stopped,
            **{k: v for k, v in barge.items() if k != "wake"},
        )
        self.p.wake.reset()
        self.p.vad.reset()

    @staticmethod
    def _after_window(turn: _Turn, t: float) -> bool:
        return turn.ended_t is not None and turn.after_speech is None and t - turn.ended_t <= AFTER_SPEECH_WINDOW_S

    def _after_speech(self, turn: _Turn, t: float, prob: float, during_answer: bool) -> None:
        """Speech within AFTER_SPEECH_WINDOW_S of the endpoint: the rest of a sentence cut at a pause, or an
        afterthought; recorded on the turn (`speech-after-endpoint`) for failure point isolation."""
        if prob >= self._cfg.speech_threshold:
            offset_ms = round((t - FRAME_S - turn.ended_t) * 1000, 1)
            turn.after_speech = {"offset_ms": offset_ms, "source": "microphone", "during_answer": during_answer}

    def _watch_stop_word(self, frame: np.ndarray, t: float, sp: _Speaking) -> str | None:
        """A short speech segment that the playback does not explain, transcribed as "stop"/"cancel"."""
        prob = self.p.vad.speech_probability(frame)
        speech = prob >= self._cfg.speech_threshold
        if self._after_window(sp.turn, t):
            self._after_speech(sp.turn, t, prob, during_answer=True)
        if sp.stop_seg is None:
            if speech:
                sp.stop_seg, sp.stop_speech = [frame], t
            return None
        sp.stop_seg.append(frame)
        if speech:
            sp.stop_speech = t
        seg_s = len(sp.stop_seg) * FRAME_S
        if t - sp.stop_speech < 0.3 and seg_s < 2.0:
            return None
        seg, sp.stop_seg = np.concatenate(sp.stop_seg), None
        if seg_s >= 2.0 or seg_s < 0.3:
            return None
        if self.opts.echo_suppression:
            ref = sp.player.reference()
            hi = min(len(ref), int((sp.player.played / sp.player.out_rate + 0.5) * RATE))
            lo = max(0, hi - int((self.opts.echo_max_delay_seconds + 2.0 + 0.5) * RATE))
            if echo_explained(seg, ref[lo:hi]) >= self.opts.echo_explained:
                return None
        try:
            text = self.p.asr.transcribe(seg, self.p.settings.asr.language).text
        except Exception:  # noqa: BLE001
            return None
        self._event("stop-candidate", text=text)
        return "stop" if is_stop_command(text or "") else None
