"""Disk cache of synthesized requests and of their ASR results, so repeated utterances cost almost nothing.

- Audio: keyed by (text, voice, noise condition); stored as .npy under `root/audio/`, indexed in `root/index.sqlite`.
  The noise seed is derived from the key, so the same key always gives the same samples.
- ASR: `CachingAsr` wraps the pipeline's real ASR backend; a result is keyed by the SHA-1 of the samples (and the
  language), so the turn still goes through the pipeline's ASR stage and its trace carries the real transcript,
  only the decoding is skipped when the very same audio was decoded before (by this or an earlier run).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.simulate import voices
from assistant.simulate.household import VoiceSpec


@dataclass(frozen=True)
class NoiseSpec:
    snr_db: float | None = None
    color: str = "white"

    def key(self) -> str:
        return "clean" if self.snr_db is None else f"{self.color}@{self.snr_db:g}dB"


class SpeechCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "audio").mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.sqlite")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS audio (key TEXT PRIMARY KEY, file TEXT, text TEXT, voice TEXT, "
            "noise TEXT, seconds REAL, created REAL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS asr (hash TEXT PRIMARY KEY, result TEXT, created REAL)")
        self.db.commit()
        self.stats = {
            "synth_hits": 0,
            "synth_misses": 0,
            "synth_seconds": 0.0,
            "asr_hits": 0,
            "asr_misses": 0,
            "asr_seconds": 0.0,
        }

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    @staticmethod
    def key(text: str, voice: VoiceSpec, noise: NoiseSpec) -> str:
        return SpeechCache.key_of(text, voice.key(), noise.key())

    @staticmethod
    def key_of(text: str, voice_key: str, noise_key: str) -> str:
        """The cache key from the voice's and noise's keys (as `sim_truth.jsonl` records them)."""
        return hashlib.sha1(f"{text}|{voice_key}|{noise_key}".encode()).hexdigest()

    def speech(self, text: str, voice: VoiceSpec, noise: NoiseSpec) -> tuple[np.ndarray, bool]:
        """int16 16 kHz samples of `text` spoken in `voice` with `noise`; (samples, cache_hit)."""
        key = self.key(text, voice, noise)
        row = self.db.execute("SELECT file FROM audio WHERE key = ?", (key,)).fetchone()
        if row is not None:
            path = self.root / "audio" / row[0]
            if path.exists():
                self.stats["synth_hits"] += 1
                return np.load(path), True
        t0 = time.perf_counter()
        samples = synthesize(text, voice, noise, seed=int(key[:8], 16))
        self.stats["synth_seconds"] += time.perf_counter() - t0
        self.stats["synth_misses"] += 1
        name = f"{key[:2]}/{key}.npy"
        (self.root / "audio" / key[:2]).mkdir(exist_ok=True)
        np.save(self.root / "audio" / name, samples)
        self.db.execute(
            "INSERT OR REPLACE INTO audio VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, name, text, voice.key(), noise.key(), len(samples) / 16000, time.time()),
        )
        self.db.commit()
        return samples, False

    # -- ASR results ---------------------------------------------------------------------------------------------
    def get_asr(self, h: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT result FROM asr WHERE hash = ?", (h,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_asr(self, h: str, result: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO asr VALUES (?, ?, ?)", (h, json.dumps(result), time.time()))
        self.db.commit()

    def counts(self) -> dict[str, int]:
        return {
            "audio": self.db.execute("SELECT COUNT(*) FROM audio").fetchone()[0],
            "asr": self.db.execute("SELECT COUNT(*) FROM asr").fetchone()[0],
        }


def synthesize(text: str, voice: VoiceSpec, noise: NoiseSpec, seed: int = 0) -> np.ndarray:
    if voice.engine == "piper":
        samples = voices.piper_speech_at(text, voice.length_scale)
    else:
        samples = voices.espeak_speech(text, voice.voice or "en", voice.rate_wpm, voice.pitch)
    samples = voices.compose([0.25, samples, 0.3])  # a little room before and after, as an endpointer leaves
    if noise.snr_db is not None:
        samples = voices.add_colored_noise(samples, noise.snr_db, noise.color, seed)
    return samples


class CachingAsr:
    """The pipeline's ASR backend with a results cache keyed by the audio's hash (see the module docstring)."""

    def __init__(self, inner: Any, cache: SpeechCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = getattr(inner, "name", "asr")
        self.version = getattr(inner, "version", "")
        self.last_hit = False

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)

    def transcribe(self, samples: np.ndarray, language: str = "en"):
        from assistant.core.stages.asr import AsrResult

        arr = np.ascontiguousarray(samples, dtype=np.int16)
        h = hashlib.sha1(arr.tobytes() + f"|{language}|{self.name}|{self.version}".encode()).hexdigest()
        hit = self.cache.get_asr(h)
        if hit is not None:
            self.cache.stats["asr_hits"] += 1
            self.last_hit = True
            return AsrResult(**hit)
        t0 = time.perf_counter()
        res = self.inner.transcribe(arr, language)
        self.cache.stats["asr_seconds"] += time.perf_counter() - t0
        self.cache.stats["asr_misses"] += 1
        self.last_hit = False
        self.cache.put_asr(h, asdict(res))
        return res
