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
    from assistant.backends.tts.piper import PiperTts

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
    wav = subprocess.run(
        [exe, "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", text], check=True, capture_output=True
    ).stdout
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


# -- added for the household simulator ------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _piper_at(length_scale: float):
    from assistant.backends.tts.piper import PiperTts

    return PiperTts(length_scale=length_scale)


def piper_speech_at(text: str, length_scale: float = 1.0) -> np.ndarray:
    """Like `piper_speech`, at a speaking rate (`length_scale` > 1 is slower)."""
    if abs(length_scale - 1.0) < 1e-6:
        return piper_speech(text)
    tts = _piper_at(round(float(length_scale), 3))
    return _resample(np.concatenate(list(tts.synthesize(text))), tts.sample_rate)


def add_colored_noise(samples: np.ndarray, snr_db: float, color: str = "white", seed: int = 0) -> np.ndarray:
    """Noise at a signal-to-noise ratio (dB): `white`, `pink` (1/f, like fans and traffic) or `brown` (1/f^2, a
    rumble like a dishwasher). The noise is shaped in the frequency domain and scaled to the clip's power."""
    if color == "white":
        return add_noise(samples, snr_db, seed)
    rng = np.random.default_rng(seed)
    x = samples.astype(np.float32)
    n = len(x)
    spec = np.fft.rfft(rng.normal(0, 1, size=n))
    f = np.fft.rfftfreq(n, 1 / PIPELINE_RATE)
    f[0] = f[1] if n > 2 else 1.0
    spec = spec / (np.sqrt(f) if color == "pink" else f)
    noise = np.fft.irfft(spec, n=n).astype(np.float32)
    power = float(np.mean(x**2)) or 1.0
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / (float(np.mean(noise**2)) or 1.0))
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


def spoken_words(text: str) -> str:
    """ "10 minutes." and "ten minutes" are the same words; punctuation and case aside."""
    import re

    digits = dict(zip("0123456789", "zero one two three four five six seven eight nine".split()))
    return " ".join(digits.get(w, w) for w in re.findall(r"[a-z']+|[0-9]", (text or "").lower()))


def piper_speech_heard(asr, text: str, tries: int = 5) -> tuple[np.ndarray | None, str]:
    """Piper speech of `text` that `asr` hears word for word (Piper samples its voice afresh on every call, and
    tiny.en mishears some takes): (speech, heard), or (None, the last hearing) after `tries` syntheses. For tests
    about what follows the ear (wake word, endpointer, satellites)."""
    heard = ""
    for _ in range(tries):
        speech = piper_speech(text)
        heard = asr.transcribe(compose([0.4, speech, 0.4]), "en").text
        if spoken_words(heard) == spoken_words(text):
            return speech, heard
    return None, heard
