"""The endpointer: when a request starts and ends, from (time, wake score, speech probability) alone.

Pure: no audio, no clock, no models. The caller (replay, the live loop, the simulator) runs the wake and VAD
backends on each 80 ms frame, feeds their scores with the frame's end time in seconds of stream time, and cuts the
request audio out of its own buffer (`FrameBuffer`) at the times the `SpeechEnded` event gives. Because it is pure,
every endpointing rule is tested on plain sequences of numbers (tests/unit/test_endpointer.py).

Two modes:
- wake word: idle until a wake score crosses the threshold (outside the refractory period), then collect the request
  from the end of that frame until `end_silence` of silence after speech, `max_request` or no speech for
  `start_timeout` (a `ListenTimeout`);
- semantic end of turn (both modes, when `pause_seconds` is set): after `pause_seconds` of silence a SpeechPaused
  event lets the caller decode what was said so far; a complete request ends at once (`end_now`), an unfinished one
  waits up to `incomplete_silence` (`wait_longer`), anything else ends at `end_silence` as usual;
- no wake word (recordings, the simulator): every stretch of speech of at least `min_speech` is a request, with up to
  `pre_roll` of the audio before it so the first phoneme is not clipped.
Listening can also start without a wake word (`listen`): the answer to a follow-up question, or after a barge-in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from assistant.core.events import (
    Event,
    ListeningStarted,
    ListenTimeout,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    WakeDetected,
)

AFTER_SPEECH_WINDOW_S = 1.5
"""Speech this soon after an endpoint is recorded on the ended turn (`speech-after-endpoint`, by replay and listen):
the rest of a sentence cut at a pause comes within about a second; the failure point labeller reads it."""


@dataclass(frozen=True)
class EndpointConfig:
    frame_seconds: float = 0.08
    wake_threshold: float = 0.5
    refractory_seconds: float = 2.0
    speech_threshold: float = 0.5
    start_timeout_seconds: float = 4.0
    end_silence_seconds: float = 0.5
    max_request_seconds: float = 12.0
    min_speech_seconds: float = 0.25
    pre_roll_seconds: float = 0.3
    pause_seconds: float | None = None
    """Silence after which a SpeechPaused event invites a speculative decode (None: endpoint on silence only)."""
    incomplete_silence_seconds: float = 1.2
    """How long `wait_longer` waits by default (an unfinished request: "turn on the ...")."""

    @classmethod
    def from_settings(cls, settings, frame_seconds: float) -> EndpointConfig:
        w, v = settings.wake, settings.vad
        return cls(
            frame_seconds=frame_seconds,
            wake_threshold=w.threshold,
            refractory_seconds=w.refractory_seconds,
            speech_threshold=v.threshold,
            start_timeout_seconds=v.start_timeout_seconds,
            end_silence_seconds=v.end_silence_seconds,
            max_request_seconds=v.max_request_seconds,
            min_speech_seconds=v.min_speech_seconds,
            pre_roll_seconds=v.pre_roll_seconds,
            pause_seconds=v.speculative_pause_seconds or None,
            incomplete_silence_seconds=v.incomplete_silence_seconds,
        )


@dataclass
class _Listening:
    start: float
    start_timeout: float
    follow_up: bool
    ignore_until: float
    speech_at: float | None = None
    """End time of the first speech frame."""
    last_speech: float | None = None
    end_silence: float | None = None
    """Silence that ends this request now (None: the configured end_silence; `wait_longer` raises it)."""
    paused: bool = False
    """A SpeechPaused was emitted for the current silence."""


class Endpointer:
    def __init__(self, config: EndpointConfig, wake_word: bool = True) -> None:
        self.cfg = config
        self.wake_word = wake_word
        self._listening: _Listening | None = None
        self._refractory_until = 0.0
        self._idle_frames = 0
        self._pre_frames = max(1, int(config.pre_roll_seconds / config.frame_seconds))

    # -- what the caller needs to compute for the next frame -------------------------------------------------
    @property
    def listening(self) -> bool:
        return self._listening is not None

    @property
    def wants_wake(self) -> bool:
        """A wake score is needed (idle, wake-word mode); otherwise the caller may skip the wake model."""
        return self.wake_word and self._listening is None

    @property
    def wants_speech(self) -> bool:
        return self._listening is not None or not self.wake_word

    # -- control ---------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._listening = None
        self._refractory_until = 0.0
        self._idle_frames = 0

    def listen(
        self, t: float, follow_up: bool = False, start_timeout: float | None = None, ignore_until: float = 0.0
    ) -> ListeningStarted:
        """Collect a request from `t` on without a wake word (a follow-up answer, a barge-in).

        Speech before `ignore_until` does not start the request (the echo tail of the question just asked)."""
        self._listening = _Listening(
            start=t,
            follow_up=follow_up,
            ignore_until=ignore_until,
            start_timeout=self.cfg.start_timeout_seconds if start_timeout is None else start_timeout,
        )
        return ListeningStarted(t=t, follow_up=follow_up)

    def cancel(self, t: float, refractory_seconds: float = 0.0) -> None:
        """Stop listening without a request (e.g. the wake word was the assistant's own echo)."""
        self._listening = None
        self._idle_frames = 0
        self._refractory_until = max(self._refractory_until, t + refractory_seconds)

    def refractory(self, until: float) -> None:
        """Ignore wake scores until `until` (after a turn)."""
        self._refractory_until = until

    def end_now(self, t: float, reason: str = "complete") -> list[Event]:
        """End the request at `t` (after a SpeechPaused whose speculative decode is a complete request)."""
        lst = self._listening
        if lst is None or lst.last_speech is None:
            return []
        return self._end(t, reason)

    def wait_longer(self, seconds: float | None = None) -> None:
        """For the current pause, end only after `seconds` of silence (default `incomplete_silence_seconds`)."""
        if self._listening is not None:
            self._listening.end_silence = self.cfg.incomplete_silence_seconds if seconds is None else seconds

    # -- one frame --------------------------------------------------------------------------------------------
    def feed(
        self,
        t: float,
        wake_score: float | None = None,
        wake_model: str = "",
        speech_prob: float | None = None,
        wake_threshold: float | None = None,
    ) -> list[Event]:
        """The frame that ends at `t`: its best wake score (and model) and its speech probability.

        `wake_threshold` overrides the configured one for this frame (the live loop raises it while it speaks)."""
        lst = self._listening
        if lst is None:
            if self.wake_word:
                threshold = self.cfg.wake_threshold if wake_threshold is None else wake_threshold
                if wake_score is not None and wake_score >= threshold and t >= self._refractory_until:
                    return [WakeDetected(t=t, model=wake_model, score=float(wake_score)), self.listen(t)]
                return []
            return self._idle_vad(t, speech_prob)
        speech = speech_prob is not None and speech_prob >= self.cfg.speech_threshold and t >= lst.ignore_until
        events: list[Event] = []
        if speech:
            if lst.speech_at is None:
                lst.speech_at = t
                events.append(SpeechStarted(t=round(t - self.cfg.frame_seconds, 3)))
            if lst.paused:
                events.append(SpeechResumed(t=t))
            lst.last_speech, lst.paused, lst.end_silence = t, False, None
        silence = t - lst.last_speech if lst.last_speech is not None else 0.0
        end_silence = self.cfg.end_silence_seconds if lst.end_silence is None else lst.end_silence
        if lst.speech_at is None and t - lst.start >= lst.start_timeout:
            events.append(self._timeout(t))
        elif lst.last_speech is not None and silence >= end_silence - 1e-9:
            events.extend(self._end(t, "endpoint"))
        elif t - lst.start >= self.cfg.max_request_seconds:
            events.extend(self._end(t, "max-length"))
        elif (
            self.cfg.pause_seconds
            and lst.last_speech is not None
            and not lst.paused
            and silence >= self.cfg.pause_seconds - 1e-9
        ):
            lst.paused = True
            f = self.cfg.frame_seconds
            events.append(
                SpeechPaused(
                    t=t, start=max(0.0, lst.start), speech_start=max(0.0, lst.speech_at - f), speech_end=lst.last_speech
                )
            )
        return events

    def finish(self, t: float) -> list[Event]:
        """The stream ended at `t`: a request in progress ends here."""
        lst = self._listening
        if lst is None:
            return []
        if lst.speech_at is None:
            return [self._timeout(t, reason_eof=True)] if self.wake_word or lst.follow_up else []
        return self._end(t, "end-of-file")

    # -- internals ----------------------------------------------------------------------------------------------
    def _idle_vad(self, t: float, speech_prob: float | None) -> list[Event]:
        """No-wake mode, not in a segment: speech starts one, with the pre-roll frames before it."""
        if speech_prob is None or speech_prob < self.cfg.speech_threshold:
            self._idle_frames += 1
            return []
        f = self.cfg.frame_seconds
        pre = min(self._pre_frames, self._idle_frames)
        self._listening = _Listening(
            start=t - f - pre * f,
            start_timeout=float("inf"),
            follow_up=False,
            ignore_until=0.0,
            speech_at=t,
            last_speech=t,
        )
        self._idle_frames = 0
        return [SpeechStarted(t=round(t - f, 3))]

    def _timeout(self, t: float, reason_eof: bool = False) -> ListenTimeout:
        lst = self._listening
        self._listening = None
        self._refractory_until = t + self.cfg.refractory_seconds
        self._idle_frames = 0
        return ListenTimeout(
            t=t, start=lst.start, follow_up=lst.follow_up, reason="end-of-file" if reason_eof else "timeout"
        )

    def _end(self, t: float, reason: str) -> list[Event]:
        lst = self._listening
        self._listening = None
        self._idle_frames = 0
        f = self.cfg.frame_seconds
        if not self.wake_word and lst.last_speech - lst.speech_at + f < self.cfg.min_speech_seconds - 1e-9:
            return []  # too short to be a request: noise
        if self.wake_word:
            self._refractory_until = t + self.cfg.refractory_seconds
        return [
            SpeechEnded(
                t=t,
                reason=reason,
                start=max(0.0, lst.start),
                end=t,
                speech_start=max(0.0, lst.speech_at - f),
                speech_end=lst.last_speech,
                endpoint_wait=(t - lst.last_speech) if reason in ("endpoint", "complete") else 0.0,
            )
        ]


class FrameBuffer:
    """The audio side of endpointing: recent frames with their end times, so a request can be cut out at the
    times an event gives. Bounded to `max_seconds` (a request is never longer than `max_request` + pre-roll)."""

    def __init__(self, frame_seconds: float, max_seconds: float) -> None:
        self.f = frame_seconds
        self._frames: deque[tuple[float, np.ndarray]] = deque(
            maxlen=max(1, int(np.ceil(max_seconds / frame_seconds)) + 2)
        )

    def append(self, t: float, frame: np.ndarray) -> None:
        self._frames.append((t, frame))

    def clear(self) -> None:
        self._frames.clear()

    def cut(self, start: float, end: float) -> np.ndarray:
        """The frames that end in (start, end] (half a frame of tolerance for float times)."""
        half = self.f / 2
        parts = [fr for t, fr in self._frames if start + half < t <= end + half]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
