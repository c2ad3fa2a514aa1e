"""The speaker stage: embed the request's audio and score it against the household's enrolled voices.

Runs beside ASR (the runner starts it in a thread before decoding), so it adds little to the end-to-end latency.
The best cosine similarity must reach `speaker.threshold` (pipeline.yaml; calibrated with `assistant bench --speakers`,
see docs/speakers.md), else the answer is "unknown" and the turn gets the household's shared behaviour. With nobody
enrolled the stage embeds nothing and says `no-voices`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from assistant.core.stages.speaker import SpeakerEncoder, SpeakerResult
from assistant.speakers.voices import VoiceStore

RATE = 16000
AUGMENT = ((15.0, "white"), (15.0, "pink"))
"""Noisy copies of every enrollment utterance (SNR dB, colour) averaged into the voiceprint: a clean-only voiceprint
scores the same voice ~0.25 lower through 10 dB of noise, below any usable threshold (docs/speakers.md)."""


def with_noise(samples: np.ndarray, snr_db: float, color: str, seed: int = 0) -> np.ndarray:
    """White or pink (1/f) noise at `snr_db` over the clip (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    x = samples.astype(np.float32)
    spec = np.fft.rfft(rng.normal(0, 1, size=len(x)))
    if color == "pink":
        f = np.fft.rfftfreq(len(x), 1 / RATE)
        f[0] = f[1] if len(f) > 1 else 1.0
        spec = spec / np.sqrt(f)
    noise = np.fft.irfft(spec, n=len(x)).astype(np.float32)
    power = float(np.mean(x**2)) or 1.0
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / (float(np.mean(noise**2)) or 1.0))
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


class SpeakerIdentifier:
    name = "speaker-id"

    def __init__(
        self,
        encoder: SpeakerEncoder,
        store: VoiceStore,
        threshold: float,
        min_seconds: float = 0.5,
        augment: bool = True,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.threshold = threshold
        self.min_seconds = min_seconds
        self.augment = augment
        self.version = f"{encoder.name} ({encoder.version})"

    def has_voices(self) -> bool:
        return bool(self.store.voices())

    def embed(self, samples: np.ndarray) -> np.ndarray:
        return self.encoder.embed(samples)

    def enrollment_embeddings(self, samples: np.ndarray, clean: np.ndarray | None = None) -> list[np.ndarray]:
        """The utterance's embedding (`clean`, when already computed) and, with `augment`, those of its noisy
        copies (AUGMENT)."""
        x = np.asarray(samples, dtype=np.int16)
        out = [self.embed(x) if clean is None else clean]
        if self.augment:
            out += [self.embed(with_noise(x, snr, color, seed=i)) for i, (snr, color) in enumerate(AUGMENT)]
        return out

    def score(self, embedding: np.ndarray) -> dict[str, float]:
        return {n: float(np.dot(v.voiceprint, embedding)) for n, v in self.store.voices().items()}

    def decide(self, scores: dict[str, float], audio_seconds: float = 0.0, embed_ms: float = 0.0) -> SpeakerResult:
        if not scores:
            return SpeakerResult(None, "no-voices", threshold=self.threshold, audio_seconds=audio_seconds)
        best = max(scores, key=scores.__getitem__)
        ok = scores[best] >= self.threshold
        return SpeakerResult(
            person=best if ok else None,
            decision="identified" if ok else "unknown",
            score=round(scores[best], 4),
            candidate=best,
            threshold=self.threshold,
            scores={k: round(v, 4) for k, v in sorted(scores.items())},
            audio_seconds=audio_seconds,
            embed_ms=embed_ms,
        )

    def identify(self, samples: np.ndarray, enrolling: bool = False) -> tuple[SpeakerResult, np.ndarray | None]:
        """(the decision, the request's embedding or None when nothing was embedded). `enrolling`: a voice is being
        learnt, so the request is embedded even when nobody is enrolled yet."""
        seconds = round(len(samples) / RATE, 3)
        if not self.has_voices() and not enrolling:
            return SpeakerResult(None, "no-voices", threshold=self.threshold, audio_seconds=seconds), None
        if seconds < self.min_seconds:
            return SpeakerResult(None, "unknown", threshold=self.threshold, audio_seconds=seconds), None
        t0 = time.perf_counter()
        emb = self.embed(samples)
        ms = round((time.perf_counter() - t0) * 1000, 1)
        return self.decide(self.score(emb), seconds, ms), emb


def create(build) -> SpeakerIdentifier:
    """Registry factory (`speaker.backend: resemblyzer-onnx`)."""
    from assistant.backends.speaker.resemblyzer_onnx import ResemblyzerOnnx

    s = build.settings.speaker
    encoder = ResemblyzerOnnx(build.settings.resolve_path(s.model_dir), threads=s.threads)
    from assistant.config import default_data_dir

    store = VoiceStore(Path(build.data_dir) if build.data_dir is not None else default_data_dir())
    return SpeakerIdentifier(encoder, store, s.threshold, s.min_seconds, s.augment_enrollment)
