"""Microphone and speaker through PortAudio (sounddevice): devices by name, 16 kHz frames in, streamed playback out.

The microphone callback turns any rate and channel count into 80 ms 16 kHz mono int16 frames (soxr resamples); the
player plays chunks as they are synthesized and can stop within one block (barge-in).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.errors import AssistantError

_LOGGER = logging.getLogger(__name__)

RATE = audio_io.PIPELINE_RATE
FRAME = audio_io.FRAME_SAMPLES
FRAME_S = FRAME / RATE


class AudioDeviceError(AssistantError):
    """A microphone or speaker is missing, unplugged or refuses the format."""


# -- devices ---------------------------------------------------------------------------------------------
def _sd():
    try:
        import sounddevice as sd
    except OSError as err:  # libportaudio2 missing
        raise AudioDeviceError(
            "audio-no-portaudio", f"PortAudio is not installed ({err}): apt-get install libportaudio2."
        ) from err
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
        out.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": sd.query_hostapis(d["hostapi"])["name"],
                "inputs": d["max_input_channels"],
                "outputs": d["max_output_channels"],
                "default_rate": int(d["default_samplerate"]),
                "default": ("in" if i == default_in else "") + ("out" if i == default_out else ""),
            }
        )
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
        "to part of a name that `assistant devices` lists.",
    )


def _weak(method, abort: bool = True):
    """`method` as a PortAudio callback that does not keep its object alive.

    A sounddevice stream is a reference cycle (its callback wrapper closes over the stream), so whatever its callbacks
    reference is freed only by the cyclic garbage collector, which in a process of ~3.5 M long-lived objects runs a
    full collection rarely: every answer's Player (its 16 kHz reference copy, resamplers, buffers) piled up, the
    `listen` idle floor crept ~0.5 MB a turn (issue 21, docs/reliability.md). With weak callbacks the owner goes by
    reference counting as soon as it is dropped; only the closed stream's small cycle waits for the collector.
    """
    ref = weakref.WeakMethod(method)

    def call(*args):
        bound = ref()
        if bound is None:  # the owner was dropped without closing the stream: stop it
            if abort:
                raise _sd().CallbackAbort
            return None
        return bound(*args)

    return call


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
            self.stream = sd.InputStream(
                device=device,
                samplerate=s.input_rate,
                channels=s.input_channels,
                dtype="float32",
                blocksize=int(s.input_rate * 0.04),
                latency="low",
                callback=_weak(self._callback),
            )
            self.stream.start()
        except Exception as err:  # noqa: BLE001 - PortAudioError, ValueError for a bad format
            self.close()
            raise AudioDeviceError(
                "audio-input-open-failed",
                f"cannot open microphone {self.device_name!r} at {s.input_rate} Hz, {s.input_channels} channel(s): "
                f"{err}. Check audio.input_rate/input_channels in the profile against `assistant devices`.",
            ) from err
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
            frame = audio_io.to_int16(pending[i * FRAME : (i + 1) * FRAME])
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
        self._pending = pending[n * FRAME :].copy()

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
        self._rs_out = (
            soxr.ResampleStream(src_rate, self.out_rate, 1, dtype="float32") if self.out_rate != src_rate else None
        )
        self._rs_ref = soxr.ResampleStream(src_rate, RATE, 1, dtype="float32") if src_rate != RATE else None
        self._buf: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._fed_all = False
        self.done = threading.Event()
        self.stopped = False
        self.played = 0  # output-rate samples handed to the device
        self.underruns = 0
        self.ref_chunks: list[np.ndarray] = []
        self.started_at: float | None = None
        self.last_progress: float | None = None
        """When the device last took samples (a stalled, busy or suspended device stops taking them)."""
        self.ended_at: float | None = None
        self._device = device
        self.stream = sd.OutputStream(
            device=device,
            samplerate=self.out_rate,
            channels=self.channels,
            dtype="float32",
            blocksize=max(64, int(self.out_rate * block_ms / 1000)),
            latency=0.1,
            callback=_weak(self._callback),
            finished_callback=_weak(self._finished, abort=False),
        )
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
                out[filled : filled + take] = head[:take]
                filled += take
                if take == len(head):
                    self._buf.popleft()
                else:
                    self._buf[0] = head[take:]
            empty = not self._buf
        self.played += filled
        if filled:
            self.last_progress = time.monotonic()
        outdata[:] = out[:, None] if self.channels == 1 else np.repeat(out[:, None], self.channels, axis=1)
        if empty and self._fed_all:
            raise _sd().CallbackStop

    def _finished(self) -> None:
        self.ended_at = time.monotonic()
        self.done.set()

    def stalled(self, seconds: float) -> bool:
        """Fed but not played for `seconds`: the device holds the stream without playing it."""
        if self.started_at is None or self.done.is_set():
            return False
        return time.monotonic() - max(self.started_at, self.last_progress or 0.0) > seconds

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
