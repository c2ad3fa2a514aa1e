"""Speech synthesized on this machine (Piper and espeak-ng), at the pipeline's 16 kHz, for tests and simulation.

Piper's voice is recognised almost perfectly by Whisper; espeak-ng's robotic voice gives realistic ASR errors,
so the two together exercise both the happy path and recovery.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence

import numpy as np

from assistant.audio import PIPELINE_RATE


@functools.lru_cache(maxsize=1)
def _piper():
    from assistant.backends.piper import PiperTts

    return PiperTts()


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    if rate == PIPELINE_RATE:
        return samples.astype(np.int16)
    out = soxr.resample(samples.astype(np.float32) / 32768.0, rate, PIPELINE_RATE)
    return (np.clip(out, -1, 1) * 32767).astype(np.int16)


def piper_speech(text: str) -> np.ndarray:
    """int16 mono 16 kHz speech of `text` in Piper's en_US-joe-medium voice."""
    tts = _piper()
    return _resample(np.concatenate(list(tts.synthesize(text))), tts.sample_rate)


def espeak_speech(text: str, voice: str = "en", rate_wpm: int = 140, pitch: int = 50) -> np.ndarray:
    """int16 mono 16 kHz speech from espeak-ng (Debian package espeak-ng)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: run scripts/setup.sh (apt-get install espeak-ng).")
    wav = subprocess.run([exe, "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    import io

    import soundfile as sf

    data, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return _resample(data, rate)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * PIPELINE_RATE), dtype=np.int16)


def compose(parts: Sequence[np.ndarray | float]) -> np.ndarray:
    """Concatenate speech arrays and pauses (a float is seconds of silence)."""
    return np.concatenate([silence(p) if isinstance(p, (int, float)) else p for p in parts])


def add_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at a signal-to-noise ratio (dB) measured over the whole clip."""
    rng = np.random.default_rng(seed)
    x = samples.astype(np.float32)
    power = float(np.mean(x**2)) or 1.0
    noise = rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), size=x.shape)
    return np.clip(x + noise, -32768, 32767).astype(np.int16)
