"""A microphone and a speaker without a sound card: a private PulseAudio daemon with two null sinks.

    paplay --device=vmic_sink  ->  [vmic_sink] --monitor--> source "vmic"   -> the assistant's microphone
    the assistant's speaker    ->  [vspk]      --monitor--> "vspk.monitor"  -> parec (what came out)
                                                  optional module-loopback (the room's echo) -> vmic_sink

With `echo_cancel=True` (or `set_echo_cancel(True)`), PulseAudio's module-echo-cancel sits on top, as on a device:
the assistant records "vmic_aec" (vmic minus what was played) and plays to "vspk_aec" (-> vspk, and the canceller's
reference). The room's echo stays outside the canceller: vspk.monitor -> vmic_sink, as sound through the air.

Used by tests/integration/test_live.py and `assistant bench-live`. Needs the Debian packages pulseaudio,
pulseaudio-utils and
libasound2-plugins (the ALSA "pulse" device PortAudio opens). The daemon's environment (PULSE_SERVER) is set in
this process so sounddevice reaches it; `stop()` restores it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

RATE = 16000


class VirtualAudioError(RuntimeError):
    pass


def available() -> str | None:
    """None if a virtual sound server can be started here, else the reason it cannot."""
    for exe in ("pulseaudio", "pactl", "paplay", "parec"):
        if shutil.which(exe) is None:
            return f"{exe} not found: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
    if not any(
        Path(p).exists()
        for p in (
            "/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so",
            "/usr/lib/aarch64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so",
            "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so",
        )
    ):
        return "the ALSA pulse plugin is missing: apt-get install libasound2-plugins"
    return None


class SpeakerRecorder:
    """Records the virtual speaker (vspk.monitor) with the arrival time of every 20 ms chunk."""

    def __init__(self, env: dict[str, str], device: str = "vspk.monitor") -> None:
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={device}",
                "--raw",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=20",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.chunks: list[tuple[float, np.ndarray]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        out = self._proc.stdout
        while True:
            data = out.read(640)
            if not data:
                return
            now = time.monotonic()
            with self._lock:
                self.chunks.append((now, np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)))

    def audio(self, since: float | None = None) -> np.ndarray:
        with self._lock:
            parts = [c for t, c in self.chunks if since is None or t >= since]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def loud_times(self, threshold: int = 300, since: float | None = None) -> list[float]:
        """Arrival times of chunks whose peak exceeds `threshold`."""
        with self._lock:
            return [
                t for t, c in self.chunks if (since is None or t >= since) and len(c) and np.abs(c).max() > threshold
            ]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()


class VirtualAudio:
    """Start with `with VirtualAudio(tmpdir) as va:`; the assistant's devices are `va.MIC` and `va.SPEAKER`
    ("pulse:vmic" and "pulse:vspk", or the echo-cancelled "pulse:vmic_aec" and "pulse:vspk_aec")."""

    # module-echo-cancel's WebRTC canceller without its gain controls and noise suppressor: the analog AGC sets the
    # master source's (vmic's) volume, which would carry over between tests, and the tests measure the canceller alone
    AEC_ARGS = "analog_gain_control=0 digital_gain_control=0 noise_suppression=0"

    def __init__(self, root: Path | None = None, echo_cancel: bool = False, aec_method: str = "webrtc") -> None:
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vaudio-")
            root = Path(self._tmp.name)
        self.root = Path(root)
        self.proc: subprocess.Popen | None = None
        self._saved: dict[str, str | None] = {}
        self._loopback: str | None = None
        self._aec: str | None = None
        self._echo_cancel = echo_cancel
        self.aec_method = aec_method
        self.env: dict[str, str] = {}

    @property
    def MIC(self) -> str:  # noqa: N802 - was a class constant
        return "pulse:vmic_aec" if self._aec else "pulse:vmic"

    @property
    def SPEAKER(self) -> str:  # noqa: N802
        return "pulse:vspk_aec" if self._aec else "pulse:vspk"

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> VirtualAudio:
        reason = available()
        if reason:
            raise VirtualAudioError(reason)
        run = self.root / "run"
        home = self.root / "home"
        for d in (run, home):
            d.mkdir(parents=True, exist_ok=True)
        run.chmod(0o700)
        socket = run / "pulse" / "native"
        self.env = dict(
            os.environ,
            XDG_RUNTIME_DIR=str(run),
            PULSE_RUNTIME_PATH=str(run / "pulse"),
            HOME=str(home),
            PULSE_SERVER=f"unix:{socket}",
        )
        self.env.pop("PULSE_SOURCE", None)
        self.env.pop("PULSE_SINK", None)
        args = [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--log-target=file:" + str(self.root / "pulse.log"),
            "--load=module-native-protocol-unix auth-anonymous=1",
            f"--load=module-null-sink sink_name=vmic_sink rate={RATE} channels=1 format=s16le",
            "--load=module-remap-source master=vmic_sink.monitor source_name=vmic",
            f"--load=module-null-sink sink_name=vspk rate={RATE} channels=1 format=s16le",
        ]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise VirtualAudioError(f"pulseaudio exited ({self.proc.returncode}); see {self.root / 'pulse.log'}")
            if socket.exists() and self.pactl("info", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise VirtualAudioError("pulseaudio did not start within 10 s")
        self.set_echo_cancel(self._echo_cancel)
        for key in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK"):
            self._saved[key] = os.environ.get(key)
        os.environ["PULSE_SERVER"] = self.env["PULSE_SERVER"]
        os.environ.pop("PULSE_SOURCE", None)
        os.environ.pop("PULSE_SINK", None)
        import sys

        if "sounddevice" in sys.modules:  # PortAudio probed devices before the server existed: rescan
            from assistant.apps.sound import refresh_devices

            refresh_devices()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        self._loopback = self._aec = None
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> VirtualAudio:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- tools -----------------------------------------------------------------------------------------
    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10)

    def set_echo_cancel(self, on: bool) -> None:
        """Load (or unload) module-echo-cancel over vmic/vspk and make its source and sink the defaults."""
        if self._aec is not None:
            self.pactl("unload-module", self._aec, check=False)
            self._aec = None
        if on:
            # adjust_time=0: both null sinks run on the same clock, so there is no drift to correct, and the module's
            # once-a-second re-alignment (fed by the null sinks' jittery latency reports) dropped reference audio
            # every time, making the canceller re-converge (echo only ~5-10 dB down instead of 20-30 dB)
            args = [
                f"aec_method={self.aec_method}",
                "source_master=vmic",
                "sink_master=vspk",
                "source_name=vmic_aec",
                "sink_name=vspk_aec",
                f"rate={RATE}",
                "channels=1",
                "adjust_time=0",
            ]
            if self.aec_method == "webrtc":
                args.append(f'aec_args="{self.AEC_ARGS}"')
            r = self.pactl("load-module", "module-echo-cancel", *args, check=False)
            if r.returncode != 0:
                raise VirtualAudioError(
                    f"module-echo-cancel aec_method={self.aec_method} did not load: "
                    f"{r.stderr.strip()}; see {self.root / 'pulse.log'}"
                )
            self._aec = r.stdout.strip()
        self.pactl("set-default-source", self.MIC.split(":", 1)[1])
        self.pactl("set-default-sink", self.SPEAKER.split(":", 1)[1])

    def set_echo(self, gain: float | None, latency_ms: int = 60) -> None:
        """Route the speaker back into the microphone at amplitude `gain` (0..1), like a room; None removes the path."""
        if self._loopback is not None:
            self.pactl("unload-module", self._loopback, check=False)
            self._loopback = None
        if gain is None:
            return
        self._loopback = self.pactl(
            "load-module",
            "module-loopback",
            "source=vspk.monitor",
            "sink=vmic_sink",
            f"latency_msec={latency_ms}",
            "source_dont_move=true",
            "sink_dont_move=true",
            "remix=false",
        ).stdout.strip()
        # the loopback's sink input: set its volume (PulseAudio volumes are cubic: 65536 * gain**(1/3) = amplitude gain)
        current = None
        for line in self.pactl("list", "sink-inputs").stdout.splitlines():
            line = line.strip()
            if line.startswith("Sink Input #"):
                current = line.split("#", 1)[1]
            elif line.startswith("Owner Module:") and line.split(":", 1)[1].strip() == self._loopback and current:
                self.pactl("set-sink-input-volume", current, str(int(65536 * gain ** (1 / 3))))

    def write_wav(self, samples: np.ndarray, name: str = "clip.wav") -> Path:
        path = self.root / name
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
        return path

    def play(self, samples: np.ndarray, name: str = "clip.wav") -> tuple[subprocess.Popen, float]:
        """Start playing 16 kHz int16 `samples` into the virtual microphone; returns (process, start time)."""
        path = self.write_wav(samples, name)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["paplay", "--latency-msec=30", "--device=vmic_sink", str(path)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return proc, t0

    def record_speaker(self) -> SpeakerRecorder:
        return SpeakerRecorder(self.env)
