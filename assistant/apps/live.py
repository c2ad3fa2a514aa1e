"""Live operation: microphone -> wake word -> VAD endpoint -> turn -> speaker, with barge-in and follow-ups.

One control thread (`LiveAssistant.run`) owns the state machine and every per-frame detector (wake, VAD); a worker
thread runs each turn (`Pipeline._run_turn`: ASR, NLU, resolve, respond, TTS) so the control thread keeps listening
while the assistant thinks and speaks. The TTS backend is wrapped (`_TeeTts`) so every synthesized chunk goes to the
speaker as soon as it exists: playback starts with the first sentence, not after the whole answer.

States: idle (wake word) -> listening (VAD endpoint) -> thinking (turn running) -> speaking (playback; wake word and
"stop" still watched for barge-in) -> idle, or -> listening again without the wake word when the answer asked a
question (follow-up).

Echo (the assistant hearing itself): the first line of defence is the platform's echo canceller, selected by the
profile as the input device (PulseAudio/PipeWire `module-echo-cancel` source, see hardware/README.md). On top of that,
and alone where there is none, three software gates apply while speaking and for `echo_tail_seconds` after:
1. the wake threshold is raised to `barge_in_threshold` and the wake model's window is reset when playback starts;
2. a detection is checked against the playback reference: the last `_ECHO_WINDOW_S` of microphone audio is
   cross-correlated (FFT) with everything played so far; if the best-aligned, optimally scaled reference explains
   at least `echo_explained` of the window's energy (normalised cross-correlation squared), the detection is the
   assistant's own voice and is ignored (a user talking over the echo leaves a residual the reference cannot explain);
3. "stop" without the wake word is only accepted from a speech segment that passes the same check, then ASR.
Why this and not a full adaptive echo canceller in Python: an NLMS/frequency-domain AEC per sample is expensive on
a Pi and the platform's WebRTC AEC does it better in C; the gates cost nothing while idle (they only run on a
candidate detection) and reject exactly the failure that matters: the assistant waking itself.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.errors import AssistantError, StageError

_LOGGER = logging.getLogger(__name__)

RATE = audio_io.PIPELINE_RATE
FRAME = audio_io.FRAME_SAMPLES
FRAME_S = FRAME / RATE
_ECHO_WINDOW_S = 1.2
_STOP_WORDS = re.compile(r"\b(stop|cancel|quiet|enough|shut up|be quiet|never mind|nevermind)\b", re.IGNORECASE)


class State(str, Enum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    NO_MIC = "no microphone"
    STOPPED = "stopped"


class AudioDeviceError(AssistantError):
    """A microphone or speaker is missing, unplugged or refuses the format."""


# -- options ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveOptions:
    """Live-mode settings. Read from `audio:` in pipeline.yaml / the profile when those keys exist there."""

    earcons: bool = True
    """Play a short tone when the wake word is heard and when a turn fails."""
    earcon_volume: float = 0.25
    follow_up_seconds: float = 5.0
    """After a question ("which light?"), listen this long for the answer without the wake word (0 = off)."""
    barge_in: bool = True
    """While speaking, the wake word (or "stop") interrupts."""
    barge_in_threshold: float = 0.6
    """Wake threshold while speaking (never below wake.threshold)."""
    stop_word: bool = True
    """While speaking, "stop"/"cancel" without the wake word interrupts too (one short ASR per candidate)."""
    echo_suppression: bool = True
    """Reject detections explained by the playback signal (see the module docstring)."""
    echo_explained: float = 0.5
    """Fraction of a detection window's energy that, if explained by the playback reference, makes it echo."""
    echo_max_delay_seconds: float = 2.5
    """Longest speaker-to-microphone delay searched (sound server buffers + room); bounds the echo check's cost."""
    echo_tail_seconds: float = 1.5
    """Echo gates stay on this long after playback ends (room echo + the wake model's 1.3 s window)."""
    playback_block_ms: int = 20
    retry_seconds: float = 3.0
    """Retry opening a missing or unplugged microphone this often."""
    mic_timeout_seconds: float = 2.0
    """No audio from an open microphone for this long means it was unplugged."""

    @classmethod
    def from_settings(cls, settings, **overrides) -> LiveOptions:
        audio = getattr(settings, "audio", None)
        values = {k: getattr(audio, k) for k in cls.__dataclass_fields__ if audio is not None and hasattr(audio, k)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# -- devices ---------------------------------------------------------------------------------------------
def _sd():
    try:
        import sounddevice as sd
    except OSError as err:  # libportaudio2 missing
        raise AudioDeviceError("audio-no-portaudio", f"PortAudio is not installed ({err}): apt-get install libportaudio2.") from err
    return sd


def refresh_devices() -> None:
    """Re-scan devices (PortAudio only enumerates at initialisation; a re-plugged USB mic needs this)."""
    sd = _sd()
    try:
        sd._terminate()
        sd._initialize()
    except Exception as err:  # noqa: BLE001
        _LOGGER.info("device rescan failed: %s", err)


def list_devices() -> list[dict[str, Any]]:
    sd = _sd()
    out = []
    try:
        default_in, default_out = sd.default.device
    except Exception:  # noqa: BLE001
        default_in = default_out = -1
    for i, d in enumerate(sd.query_devices()):
        out.append({"index": i, "name": d["name"], "hostapi": sd.query_hostapis(d["hostapi"])["name"],
                    "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
                    "default_rate": int(d["default_samplerate"]),
                    "default": ("in" if i == default_in else "") + ("out" if i == default_out else "")})
    return out


def find_device(name: str | None, kind: str) -> int | str | None:
    """A device by (part of) its name, case-insensitive; "pulse:SOURCE_OR_SINK" picks a PulseAudio/PipeWire node.

    None means the system default. Raises AudioDeviceError naming the devices that exist.
    """
    if name is None or str(name).strip() == "":
        return None
    name = str(name)
    if name.startswith("pulse:"):
        # The ALSA "pulse" PCM connects to the sound server's default source/sink; libpulse reads these variables.
        os.environ["PULSE_SOURCE" if kind == "input" else "PULSE_SINK"] = name.split(":", 1)[1]
        name = "pulse"
    devices = list_devices()
    key = "inputs" if kind == "input" else "outputs"
    if name.isdigit():
        idx = int(name)
        if idx < len(devices) and devices[idx][key] > 0:
            return idx
    matches = [d for d in devices if d[key] > 0 and name.lower() in d["name"].lower()]
    exact = [d for d in matches if d["name"].lower() == name.lower()]
    if exact or matches:
        return (exact or matches)[0]["index"]
    have = ", ".join(repr(d["name"]) for d in devices if d[key] > 0) or "none"
    raise AudioDeviceError(
        f"audio-{kind}-not-found",
        f"no {kind} device matches {name!r} (found: {have}). Plug it in, or set audio.{kind}_device in the profile "
        "to part of a name that `assistant devices` lists.")


# -- microphone ------------------------------------------------------------------------------------------
class Microphone:
    """An InputStream whose callback turns any rate/channel count into 80 ms 16 kHz mono int16 frames in a bounded
    queue (the oldest frame is dropped when the consumer falls behind)."""

    def __init__(self, audio_settings, max_frames: int = 64) -> None:
        self.settings = audio_settings
        self.frames: queue.Queue[tuple[np.ndarray, float]] = queue.Queue(maxsize=max_frames)
        self.stream = None
        self.device_name = "default"
        self.dropped = 0
        self.overflows = 0
        self.last_callback = 0.0
        self._pending = np.zeros(0, dtype=np.float32)
        self._resampler = None
        self._gain = float(10 ** (audio_settings.input_gain_db / 20))

    def open(self) -> None:
        sd = _sd()
        s = self.settings
        device = find_device(s.input_device, "input")
        self.device_name = sd.query_devices(device, "input")["name"] if device is not None else "default"
        if s.input_rate != RATE:
            import soxr

            self._resampler = soxr.ResampleStream(s.input_rate, RATE, 1, dtype="float32")
        self._pending = np.zeros(0, dtype=np.float32)
        try:
            self.stream = sd.InputStream(device=device, samplerate=s.input_rate, channels=s.input_channels,
                                         dtype="float32", blocksize=int(s.input_rate * 0.04), latency="low",
                                         callback=self._callback)
            self.stream.start()
        except Exception as err:  # noqa: BLE001 - PortAudioError, ValueError for a bad format
            self.close()
            raise AudioDeviceError(
                "audio-input-open-failed",
                f"cannot open microphone {self.device_name!r} at {s.input_rate} Hz, {s.input_channels} channel(s): "
                f"{err}. Check audio.input_rate/input_channels in the profile against `assistant devices`.") from err
        self.last_callback = time.monotonic()

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread: no locks, no logging
        now = time.monotonic()
        self.last_callback = now
        if status.input_overflow:
            self.overflows += 1
        x = indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0]
        if self._gain != 1.0:
            x = x * self._gain
        if self._resampler is not None:
            x = self._resampler.resample_chunk(np.ascontiguousarray(x, dtype=np.float32))
        pending = np.concatenate([self._pending, x]) if len(self._pending) else np.asarray(x, dtype=np.float32)
        n = len(pending) // FRAME
        for i in range(n):
            frame = audio_io.to_int16(pending[i * FRAME:(i + 1) * FRAME])
            t_end = now - (len(pending) - (i + 1) * FRAME) / RATE
            try:
                self.frames.put_nowait((frame, t_end))
            except queue.Full:
                try:
                    self.frames.get_nowait()
                except queue.Empty:
                    pass
                self.dropped += 1
                try:
                    self.frames.put_nowait((frame, t_end))
                except queue.Full:
                    pass
        self._pending = pending[n * FRAME:].copy()

    def healthy(self, timeout: float) -> bool:
        st = self.stream
        return st is not None and st.active and time.monotonic() - self.last_callback < timeout

    def close(self) -> None:
        st, self.stream = self.stream, None
        if st is not None:
            try:
                st.abort()
                st.close()
            except Exception:  # noqa: BLE001 - an unplugged device errors on close too
                pass


# -- speaker ---------------------------------------------------------------------------------------------
class Player:
    """Plays int16 chunks (fed while they are synthesized) through an OutputStream in `block_ms` blocks.

    `stop()` aborts the stream, dropping what is buffered: silence within one block plus the device latency.
    Keeps a 16 kHz copy of everything fed (`reference`) for the echo gate.
    """

    def __init__(self, device: int | str | None, src_rate: int, block_ms: int = 20, volume: float = 1.0) -> None:
        import soxr

        sd = _sd()
        self.src_rate = src_rate
        info = sd.query_devices(device, "output")
        self.out_rate = int(info["default_samplerate"]) or src_rate
        self.channels = 1 if info["max_output_channels"] >= 1 else 2
        self.volume = volume
        self._rs_out = soxr.ResampleStream(src_rate, self.out_rate, 1, dtype="float32") if self.out_rate != src_rate else None
        self._rs_ref = soxr.ResampleStream(src_rate, RATE, 1, dtype="float32") if src_rate != RATE else None
        self._buf: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._fed_all = False
        self.done = threading.Event()
        self.stopped = False
        self.played = 0          # output-rate samples handed to the device
        self.underruns = 0
        self.ref_chunks: list[np.ndarray] = []
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._device = device
        self.stream = sd.OutputStream(device=device, samplerate=self.out_rate, channels=self.channels, dtype="float32",
                                      blocksize=max(64, int(self.out_rate * block_ms / 1000)), latency=0.1,
                                      callback=self._callback, finished_callback=self._finished)
        self.latency_s = float(self.stream.latency)

    def feed(self, chunk: np.ndarray) -> None:
        if self.stopped:
            return
        x = np.asarray(chunk, dtype=np.float32) / 32768.0
        ref = self._rs_ref.resample_chunk(x) if self._rs_ref is not None else x
        self.ref_chunks.append(audio_io.to_int16(ref))
        out = self._rs_out.resample_chunk(x) if self._rs_out is not None else x
        with self._lock:
            self._buf.append((out * self.volume).astype(np.float32))
        if self.started_at is None:
            self.started_at = time.monotonic()
            self.stream.start()

    def finish(self) -> None:
        """No more chunks: the stream ends when the buffer is played."""
        if self._rs_out is not None:
            tail = self._rs_out.resample_chunk(np.zeros(0, np.float32), last=True)
            with self._lock:
                self._buf.append((tail * self.volume).astype(np.float32))
        self._fed_all = True
        if self.started_at is None:  # nothing was ever fed
            self.done.set()

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        out = np.zeros(frames, dtype=np.float32)
        filled = 0
        with self._lock:
            while filled < frames and self._buf:
                head = self._buf[0]
                take = min(frames - filled, len(head))
                out[filled:filled + take] = head[:take]
                filled += take
                if take == len(head):
                    self._buf.popleft()
                else:
                    self._buf[0] = head[take:]
            empty = not self._buf
        self.played += filled
        outdata[:] = out[:, None] if self.channels == 1 else np.repeat(out[:, None], self.channels, axis=1)
        if empty and self._fed_all:
            raise _sd().CallbackStop

    def _finished(self) -> None:
        self.ended_at = time.monotonic()
        self.done.set()

    @property
    def offset_ms(self) -> float:
        """How far into the response the listener is (samples played minus what is still in the device)."""
        return max(0.0, self.played / self.out_rate - self.latency_s) * 1000

    def reference(self) -> np.ndarray:
        return np.concatenate(self.ref_chunks) if self.ref_chunks else np.zeros(0, np.int16)

    def stop(self) -> float:
        """Silence now; returns the offset (ms) into the response where it stopped."""
        offset = self.offset_ms
        self.stopped = True
        with self._lock:
            self._buf.clear()
        try:
            self.stream.abort()
        except Exception:  # noqa: BLE001
            pass
        self.ended_at = self.ended_at or time.monotonic()
        self.done.set()
        return offset

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001
            pass


def earcon(kind: str, rate: int = RATE, volume: float = 0.25) -> np.ndarray:
    """A short tone pair: rising for "wake", falling for "error" (int16 at `rate`)."""
    freqs = (880.0, 1320.0) if kind == "wake" else (440.0, 294.0)
    parts = []
    for f in freqs:
        t = np.arange(int(rate * 0.09)) / rate
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps: no clicks
        parts.append(np.sin(2 * np.pi * f * t) * env)
    return audio_io.to_int16(np.concatenate(parts) * volume)


def echo_explained(mic: np.ndarray, reference: np.ndarray) -> float:
    """Largest fraction of `mic`'s energy that a scaled, time-shifted piece of `reference` explains (0..1).

    That is the normalised cross-correlation squared at the best lag: with the optimal gain g = <m,r>/<r,r>
    the residual m - g r has energy |m|^2 (1 - ncc^2).
    """
    m = np.asarray(mic, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    # zeros on both sides: the window may start before playback began or end after it stopped (the echo tail)
    r = np.concatenate([np.zeros(len(m)), r, np.zeros(len(m))])
    em = float(np.dot(m, m))
    if em <= 1e-3 * len(m) or not np.any(r):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(m) + len(r))))
    xc = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(m, n)), n)[: len(r) - len(m) + 1]
    c = np.concatenate([[0.0], np.cumsum(r * r)])
    er = c[len(m):] - c[: len(r) - len(m) + 1]
    ok = er > 1e-6 * len(m)
    if not np.any(ok):
        return 0.0
    ncc2 = np.zeros_like(xc)
    ncc2[ok] = xc[ok] ** 2 / (er[ok] * em)
    return float(min(1.0, ncc2.max()))


class _TeeTts:
    """Wraps the TTS backend: every chunk also goes to `sink` (the speaker) as soon as it is synthesized."""

    def __init__(self, tts) -> None:
        self.inner = tts
        self.name = getattr(tts, "name", "tts")
        self.version = getattr(tts, "version", "")
        self.sample_rate = tts.sample_rate
        self.sink: Callable[[np.ndarray], None] | None = None

    def synthesize(self, text: str):
        for chunk in self.inner.synthesize(text):
            sink = self.sink
            if sink is not None:
                try:
                    sink(chunk)
                except Exception as err:  # noqa: BLE001 - a speaker failure must not fail the turn
                    _LOGGER.warning("playback failed: %s", err)
                    self.sink = None
            yield chunk


# -- status line -------------------------------------------------------------------------------------------
class StatusLine:
    """One line in a terminal (rich), plain log lines otherwise (systemd journal)."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self._live = None
        self._last = None
        if enabled and self.console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(Text(""), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()

    _STYLE = {"idle": "dim", "listening": "bold green", "thinking": "bold yellow", "speaking": "bold cyan",
              "no microphone": "bold red"}

    def show(self, state: str, detail: str = "") -> None:
        if not self.enabled or (state, detail) == self._last:
            return
        self._last = (state, detail)
        if self._live is not None:
            self._live.update(self._text.assemble(("● ", self._STYLE.get(state, "")), (f"{state:<10}", self._STYLE.get(state, "")),
                                                  (f"  {detail}", "dim")))
        else:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {state}" + (f": {detail}" if detail else ""), highlight=False)

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


# -- the loop ----------------------------------------------------------------------------------------------
@dataclass
class _Listening:
    wake: dict[str, Any]
    started: float                      # monotonic capture time
    start_timeout: float
    frames: list[np.ndarray] = field(default_factory=list)
    speech_at: float | None = None
    last_speech: float | None = None
    follow_up: bool = False
    ignore_until: float = 0.0
    """VAD speech before this (the echo tail of the question just asked) does not start the request."""


@dataclass
class _Speaking:
    player: Player | None
    turn_future: dict[str, Any]          # {"rec": ..., "done": Event}
    barge_in: dict[str, Any] | None = None
    stop_seg: list[np.ndarray] | None = None
    stop_speech: float | None = None


class LiveAssistant:
    """The live loop over one Pipeline. `run()` blocks until `stop_event` is set, Ctrl-C, `max_turns` or `duration`."""

    def __init__(self, pipeline, options: LiveOptions | None = None, stop_event: threading.Event | None = None,
                 status: StatusLine | None = None, on_turn: Callable[[dict[str, Any]], None] | None = None,
                 max_turns: int | None = None, duration: float | None = None) -> None:
        if pipeline.wake is None or pipeline.vad is None or pipeline.asr is None:
            raise AssistantError("stage-disabled", "Live listening needs the wake, vad and asr stages in pipeline.yaml.")
        self.p = pipeline
        self.opts = options or LiveOptions.from_settings(pipeline.settings)
        self.stop_event = stop_event or threading.Event()
        self.status = status or StatusLine(enabled=False)
        self.on_turn = on_turn
        self.max_turns = max_turns
        self.duration = duration
        self.mic = Microphone(pipeline.settings.audio)
        self.state = State.IDLE
        self.turns: list[dict[str, Any]] = []
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)
        """Timeline for tests and the bench: {"type", "t" (monotonic), ...}."""
        self.frames_in = 0
        self._tee = None
        if pipeline.tts is not None:
            self._tee = pipeline.tts if isinstance(pipeline.tts, _TeeTts) else _TeeTts(pipeline.tts)
            pipeline.tts = self._tee
        self._recent: deque[np.ndarray] = deque(maxlen=int(np.ceil(_ECHO_WINDOW_S / FRAME_S)))
        self._out_device = None
        self._worker: threading.Thread | None = None
        self._gate_until = 0.0
        self._last_reference = np.zeros(0, np.int16)
        self._refractory_until = 0.0
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, int(pipeline.settings.vad.pre_roll_seconds / FRAME_S)))
        self._typed: queue.Queue[str] = queue.Queue(maxsize=8)

    def submit_text(self, text: str) -> None:
        """Handle typed text as the next request when idle (answered through the speaker like a spoken one)."""
        self._typed.put_nowait(text)

    # -- helpers --------------------------------------------------------------------------------------
    def _event(self, type_: str, **data) -> None:
        self.events.append({"type": type_, "t": time.monotonic(), **data})

    def _set_state(self, state: State, detail: str = "") -> None:
        if state != self.state:
            self._event("state", state=state.value)
        self.state = state
        self.status.show(state.value, detail)

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
        reference = reference[lo:hi]
        explained = echo_explained(mic, reference)
        return explained >= self.opts.echo_explained, round(explained, 3)

    # -- mic lifecycle ----------------------------------------------------------------------------------
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
        return self.max_turns is not None and len(self.turns) >= self.max_turns and self.state in (State.IDLE, State.NO_MIC)

    # -- turns ------------------------------------------------------------------------------------------
    def _start_turn(self, req) -> dict[str, Any]:
        """Run the turn in a worker thread; the returned dict fills in as it goes."""
        job: dict[str, Any] = {"rec": None, "done": threading.Event(), "player": None, "first_audio": threading.Event()}
        out_device = self._out_device

        def sink(chunk: np.ndarray) -> None:
            if job.get("cancelled"):
                return
            pl = job["player"]
            if pl is None:
                pl = job["player"] = Player(out_device, self._tee.sample_rate, self.opts.playback_block_ms)
                job["first_audio"].set()
            pl.feed(chunk)

        def work() -> None:
            try:
                if self._tee is not None:
                    self._tee.sink = sink
                job["rec"] = self.p._run_turn(req)
            except Exception as err:  # noqa: BLE001 - the service never dies on one turn
                _LOGGER.exception("turn failed")
                job["error"] = err
            finally:
                if self._tee is not None:
                    self._tee.sink = None
                if job["player"] is not None:
                    job["player"].finish()
                job["first_audio"].set()
                job["done"].set()

        self._worker = threading.Thread(target=work, name="turn", daemon=True)
        self._worker.start()
        return job

    def _finish_turn(self, job: dict[str, Any], barge: dict[str, Any] | None) -> None:
        rec = job.get("rec")
        if rec is None:
            self.status.print(f"turn failed: {job.get('error')}")
            self._play_earcon("error")
            return
        if barge is not None:
            self.p.store.add_event(rec["turn_id"], "barge-in", barge, t_ms=barge["offset_ms"])
            rec.setdefault("events", []).append({"type": "barge-in", **barge})
        for rej in job.get("echo_rejected", []):
            self.p.store.add_event(rec["turn_id"], "echo-rejected", rej, t_ms=rej.get("offset_ms"))
        self.turns.append(rec)
        self._event("turn", turn_id=rec["turn_id"], intent=rec.get("intent"), error=(rec.get("error") or {}).get("code"))
        if rec.get("error") and not rec.get("response_text"):
            self._play_earcon("error")
        if self.on_turn is not None:
            try:
                self.on_turn(rec)
            except Exception:  # noqa: BLE001
                _LOGGER.exception("on_turn callback failed")

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.duration if self.duration else None
        try:
            self._out_device = find_device(self.p.settings.audio.output_device, "output")
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
                    self._set_state(State.NO_MIC, f"microphone {self.mic.device_name!r} stopped delivering audio "
                                                  f"(unplugged?). Retrying every {self.opts.retry_seconds:g} s.")
                    self.stop_event.wait(self.opts.retry_seconds)
        except KeyboardInterrupt:
            pass
        finally:
            self.mic.close()
            if self._worker is not None:
                self._worker.join(timeout=30)
            self._set_state(State.STOPPED)
            self.status.close()
        return self.turns

    def _frames(self, deadline: float | None):
        """Frames from the mic until stop; returns (None) on a dead mic."""
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
        p, w, v = self.p, self.p.settings.wake, self.p.settings.vad
        p.wake.reset()
        listening: _Listening | None = None
        job: dict[str, Any] | None = None          # the turn being thought about or spoken
        speaking: _Speaking | None = None
        queued_request = None                      # a request endpointed while the previous turn still finishes
        barge_threshold = max(w.threshold, self.opts.barge_in_threshold)
        self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
        for frame, t in self._frames(deadline):
            # 1. a turn in progress: thinking -> speaking -> done
            if job is not None:
                player = job["player"]
                if speaking is None and player is not None and not player.stopped:
                    speaking = _Speaking(player, job)
                    p.wake.reset()
                    self._set_state(State.SPEAKING)
                    self._event("speaking", turn_started=job["t0"])
                done = job["done"].is_set() and (player is None or player.done.is_set())
                if done:
                    if player is not None:
                        self._last_reference = player.reference()
                        player.close()
                    self._gate_until = time.monotonic() + (self.opts.echo_tail_seconds if player else 0.0)
                    self._event("playback-done", stopped=bool(player and player.stopped))
                    barge = job.get("barge_in")
                    self._finish_turn(job, barge)
                    rec = job.get("rec") or {}
                    job, speaking = None, None
                    p.wake.reset()
                    self._refractory_until = t + (0.0 if barge else min(w.refractory_seconds, 0.5))
                    if queued_request is not None:
                        job = self._launch(queued_request)
                        queued_request = None
                        continue
                    if listening is None and barge is None and rec.get("expects_reply") and self.opts.follow_up_seconds > 0:
                        p.vad.reset()
                        listening = _Listening(wake={"detected": False, "follow_up": True, "after_turn": rec.get("turn_id")},
                                               started=t, start_timeout=self.opts.follow_up_seconds, follow_up=True,
                                               ignore_until=t + 0.3)
                        self._set_state(State.LISTENING, "follow-up: answer without the wake word")
                        self._event("listening", follow_up=True)
                        continue
                    if listening is None:
                        self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
                elif speaking is not None and listening is None and self.opts.barge_in:
                    self._watch_barge_in(frame, t, speaking, barge_threshold)
                    if job.get("barge_in") is not None and job["barge_in"]["reason"] == "wake":
                        p.vad.reset()
                        listening = _Listening(wake={"detected": True, **job["barge_in"]["wake"], "barge_in": True},
                                               started=t, start_timeout=v.start_timeout_seconds)
                        self._set_state(State.LISTENING, "barge-in")
                        self._event("listening", follow_up=False, barge_in=True)
                    continue
                elif listening is None:
                    if speaking is None:
                        self._set_state(State.THINKING)
                    continue
            # 2. collecting a request
            if listening is not None:
                req = self._collect(listening, frame, t)
                if req is not None:
                    listening = None
                    if req == "timeout":
                        if job is None:
                            self._set_state(State.IDLE, f"microphone: {self.mic.device_name}")
                        p.wake.reset()
                        self._refractory_until = t + 0.3
                        continue
                    if job is not None:
                        queued_request = req
                    else:
                        job = self._launch(req)
                continue
            if job is not None:
                continue
            if not self._typed.empty():
                from assistant.core.runner import _Request

                text = self._typed.get_nowait()
                job = self._launch(_Request(source={"kind": "typed"}, wake={"detected": False, "skipped": True},
                                            text=text, now=datetime.now()))
                continue
            # 3. idle: the wake word
            self._pre.append(frame)
            model, score = self._wake_score(frame)
            gated = time.monotonic() < self._gate_until
            threshold = barge_threshold if gated else w.threshold
            if score < threshold or t < self._refractory_until:
                continue
            if gated:
                echo, explained = self._is_echo(self._last_reference)
                if echo:
                    self._event("echo-rejected", score=round(score, 3), explained=explained, state="tail")
                    p.wake.reset()
                    continue
            self._event("wake", model=model, score=round(score, 4), capture_t=t)
            p.vad.reset()
            listening = _Listening(wake={"detected": True, "score": round(score, 4), "model": model,
                                         "at": datetime.now().isoformat(timespec="milliseconds")},
                                   started=t, start_timeout=v.start_timeout_seconds)
            self._set_state(State.LISTENING, f"{model} ({score:.2f})")
            self._event("listening", follow_up=False)
            self._play_earcon("wake")

    def _launch(self, req) -> dict[str, Any]:
        self._set_state(State.THINKING)
        job = self._start_turn(req)
        job["t0"] = time.monotonic()
        self._event("request", seconds=round(len(req.samples) / RATE, 2) if req.samples is not None else 0.0,
                    endpoint=req.source.get("endpoint"))
        return job

    def _collect(self, lst: _Listening, frame: np.ndarray, t: float):
        """Add one frame to the request; return a _Request at the endpoint, "timeout", or None."""
        from assistant.core.runner import _Request

        v = self.p.settings.vad
        lst.frames.append(frame)
        if self.p.vad.speech_probability(frame) >= v.threshold and t >= lst.ignore_until:
            lst.speech_at = lst.speech_at or t
            lst.last_speech = t
        reason = None
        if lst.speech_at is None and t - lst.started >= lst.start_timeout:
            reason = "timeout"
        elif lst.last_speech is not None and t - lst.last_speech >= v.end_silence_seconds:
            reason = "endpoint"
        elif t - lst.started >= v.max_request_seconds:
            reason = "max-length"
        if reason is None:
            return None
        if lst.speech_at is None:
            self._event("listen-timeout", follow_up=lst.follow_up)
            if not lst.follow_up and (self._worker is None or not self._worker.is_alive()):
                # The wake word with nothing after it: trace it like replay does (no-speech-after-wake), stay quiet.
                req = _Request(source=self._source(lst, t, reason), wake=lst.wake, now=datetime.now(), speak=False,
                               error=StageError("no-speech-after-wake", "The wake word was heard but no request followed.", "vad"))
                try:
                    self.p._run_turn(req)
                except Exception:  # noqa: BLE001
                    _LOGGER.exception("could not trace the empty request")
            return "timeout"
        wait_ms = (t - lst.last_speech) * 1000 if reason == "endpoint" else 0.0
        self._event("endpoint", reason=reason, capture_t=t)
        return _Request(source=self._source(lst, t, reason), wake=lst.wake, samples=np.concatenate(lst.frames),
                        now=datetime.now(), endpoint_wait_ms=wait_ms)

    def _source(self, lst: _Listening, t: float, reason: str) -> dict[str, Any]:
        """Times are seconds into the request audio (which starts right after the wake word, or at follow-up)."""
        src = {"kind": "microphone", "device": self.mic.device_name, "endpoint": reason, "offset_seconds": 0.0,
               "end_seconds": round(t - lst.started, 2), "follow_up": lst.follow_up}
        if lst.speech_at is not None:
            src["speech_start_seconds"] = round(max(0.0, lst.speech_at - lst.started - FRAME_S), 2)
            src["speech_end_seconds"] = round(lst.last_speech - lst.started, 2)
        return src

    def _watch_barge_in(self, frame: np.ndarray, t: float, sp: _Speaking, threshold: float) -> None:
        job = sp.turn_future
        player = sp.player
        model, score = self._wake_score(frame)
        if score >= 0.2:
            self._event("wake-score", score=round(score, 3), state="speaking")
        reason = None
        explained = None
        if score >= threshold:
            echo, explained = self._is_echo(player.reference(), player.played / player.out_rate)
            if echo:
                self._event("echo-rejected", score=round(score, 3), explained=explained, state="speaking")
                job.setdefault("echo_rejected", []).append({"score": round(score, 3), "explained": explained,
                                                            "offset_ms": round(player.offset_ms, 1)})
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
        barge = {"offset_ms": round(offset, 1), "reason": reason, "model": model, "score": round(score, 4),
                 "echo_explained": explained,
                 "capture_to_stop_ms": round((stopped - t) * 1000, 1), "decide_to_stop_ms": round((stopped - decided) * 1000, 1),
                 "wake": {"score": round(score, 4), "model": model} if reason == "wake" else {"stop_word": True}}
        job["barge_in"] = barge
        job["cancelled"] = True
        self._event("barge-in", capture_t=t, decided_t=decided, stopped_t=stopped, **{k: v for k, v in barge.items() if k != "wake"})
        self.p.wake.reset()
        self.p.vad.reset()

    def _watch_stop_word(self, frame: np.ndarray, t: float, sp: _Speaking) -> str | None:
        """A short speech segment that the playback does not explain, transcribed as "stop"/"cancel"."""
        v = self.p.settings.vad
        speech = self.p.vad.speech_probability(frame) >= v.threshold
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
            explained = echo_explained(seg, ref[lo:hi])
            if explained >= self.opts.echo_explained:
                return None
        try:
            text = self.p.asr.transcribe(seg, self.p.settings.asr.language).text
        except Exception:  # noqa: BLE001
            return None
        self._event("stop-candidate", text=text)
        return "stop" if _STOP_WORDS.search(text or "") else None


