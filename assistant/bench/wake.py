"""Wake word backends side by side (`assistant bench --wake`): idle CPU, detection rate, false wakes per hour.

- idle CPU: process CPU time per second of audio while a backend listens to a quiet room (pink noise at about
  -60 dBFS, 80 ms frames as the live loop feeds them, one thread), in % of one core; the same for speech.
- detection: each shared wake clip (../shared/data/speech, see PROVENANCE.md) between 1 s of silence, the backend
  reset before it; detected when the clip's own model reaches `wake.threshold`. A second set, synthesized here
  (Piper at three speeds, espeak-ng at two, clean and at 10 dB SNR), is reported apart: it is not real speech.
- false wakes: one long stream of speech without a wake word (the shared recordings that hold none, then SLURP test
  sentences spoken by Piper and espeak-ng at varied speeds, none naming a wake word), with the live loop's rules:
  a score >= threshold is a wake, then the backend is reset and scores are ignored for `wake.refractory_seconds`.

Every backend gets the same audio in one run. The synthesized stream is cached (cache_dir) so later runs compare on
the same audio without synthesizing it again.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio import FRAME_SAMPLES, PIPELINE_RATE

WAKE_WORDS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")
"""Wake words both shipped backends have a model for."""

# shared clip (relative to the speech folder) -> the wake word it holds
WAKE_CLIPS = {
    "wyoming_openwakeword/alexa.wav": "alexa",
    "wyoming_openwakeword/hey_jarvis.wav": "hey_jarvis",
    "wyoming_openwakeword/hey_mycroft.wav": "hey_mycroft",
    "wyoming_openwakeword/okay_nabu.wav": "okay_nabu",
    "openwakeword/tests/data/alexa_test.wav": "alexa",
    "openwakeword/tests/data/hey_mycroft_test.wav": "hey_mycroft",
    "voice2json/hey_mycroft.wav": "hey_mycroft",
}
# shared recordings that hold no wake word of WAKE_WORDS (other wake words, commands, talks, other languages)
NON_WAKE_GLOBS = (
    "wyoming_openwakeword/computer.wav",
    "wyoming_openwakeword/hey_rhasspy.wav",
    "wyoming_openwakeword/snowboy.wav",
    "snowboy/*.wav",
    "openwakeword/tests/data/hey_jane.wav",
    "openwakeword/training_tutorial_data/**/*.wav",
    "voice2json/[!h]*.wav",
    "wyoming_faster_whisper/*.wav",
    "faster_whisper/*.wav",
    "whisper/*.flac",
    "arm_ml_eval_kit/resources/asr/samples/*.wav",
    "arm_ml_eval_kit/resources/kws/samples/*.wav",
)
PHRASES = {"alexa": "Alexa", "hey_jarvis": "Hey Jarvis", "hey_mycroft": "Hey Mycroft", "okay_nabu": "Okay Nabu"}
_WAKE_RE = re.compile(r"\b(alexa|jarvis|mycroft|nabu)\b", re.I)


def quiet_room(seconds: float, dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    """Pink noise at `dbfs` RMS: what a microphone hears in a quiet room (digital silence would flatter a model)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * PIPELINE_RATE)
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / PIPELINE_RATE)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n=n)
    x *= 32768 * 10 ** (dbfs / 20) / (np.sqrt(np.mean(x**2)) or 1.0)
    return np.clip(x, -32768, 32767).astype(np.int16)


def frames(audio: np.ndarray):
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield audio[i : i + FRAME_SAMPLES]


def cpu_percent(backend, audio: np.ndarray) -> float:
    """CPU time the backend spends per second of `audio`, in % of one core."""
    backend.reset()
    c0 = time.process_time()
    for frame in frames(audio):
        backend.process(frame)
    return round(100 * (time.process_time() - c0) / (len(audio) / PIPELINE_RATE), 2)


def best_score(backend, audio: np.ndarray, model: str) -> float:
    backend.reset()
    return max((backend.process(f).get(model, 0.0) for f in frames(audio)), default=0.0)


def count_wakes(backend, audio: np.ndarray, threshold: float, refractory_s: float) -> list[tuple[float, str, float]]:
    """(seconds into the stream, model, score) of each wake, with the live loop's reset and refractory time."""
    backend.reset()
    wakes: list[tuple[float, str, float]] = []
    quiet_until = -1.0
    for i, frame in enumerate(frames(audio)):
        t = (i + 1) * FRAME_SAMPLES / PIPELINE_RATE
        scores = backend.process(frame)
        if t < quiet_until:
            continue
        model, score = max(scores.items(), key=lambda kv: kv[1])
        if score >= threshold:
            wakes.append((round(t, 2), model, round(score, 3)))
            backend.reset()
            quiet_until = t + refractory_s
    return wakes


def _padded(clip: np.ndarray) -> np.ndarray:
    pad = np.zeros(PIPELINE_RATE, np.int16)
    return np.concatenate([pad, clip, pad])


def real_wake_clips(speech_dir: Path) -> list[tuple[str, str, np.ndarray]]:
    from assistant.audio import read_file

    return [(name, model, read_file(speech_dir / name)) for name, model in WAKE_CLIPS.items()]


def synthetic_wake_clips() -> list[tuple[str, str, np.ndarray]]:
    from assistant.simulate.voices import add_noise, espeak_speech, piper_speech_at

    out = []
    for model, phrase in PHRASES.items():
        variants = [(f"piper x{s}", piper_speech_at(phrase, s)) for s in (0.85, 1.0, 1.2)]
        variants += [(f"espeak {r} wpm", espeak_speech(phrase, rate_wpm=r)) for r in (140, 175)]
        for name, clip in variants:
            out.append((f"{phrase} ({name})", model, clip))
            out.append((f"{phrase} ({name}, 10 dB)", model, add_noise(clip, 10.0, seed=len(out))))
    return out


def non_wake_stream(
    speech_dir: Path,
    slurp_test: Path,
    minutes: float,
    cache_dir: Path | None,
    progress: Callable[[str], None] = print,
) -> tuple[np.ndarray, dict[str, Any]]:
    """At least `minutes` of speech with no wake word in it (see the module docstring), and what it holds."""
    from assistant.audio import read_file
    from assistant.simulate.voices import espeak_speech, piper_speech_at

    key = hashlib.sha256(f"v1 {minutes} {slurp_test.stat().st_size}".encode()).hexdigest()[:12]
    cached = cache_dir / f"non-wake-{key}.npy" if cache_dir else None
    meta_path = cached.with_suffix(".json") if cached else None
    if cached is not None and cached.exists() and meta_path.exists():
        return np.load(cached), json.loads(meta_path.read_text())
    parts: list[np.ndarray] = []
    meta: dict[str, Any] = {"recordings": [], "piper_sentences": 0, "espeak_sentences": 0}
    for pattern in NON_WAKE_GLOBS:
        for path in sorted(speech_dir.glob(pattern)):
            if path.suffix.lower() not in (".wav", ".flac"):  # (the mp3s decode with libmpg123 warnings)
                continue
            parts += [read_file(path), np.zeros(PIPELINE_RATE // 2, np.int16)]
            meta["recordings"].append(str(path.relative_to(speech_dir)))
    sentences = [json.loads(line)["sentence"] for line in slurp_test.read_text().splitlines() if line.strip()]
    sentences = [s for s in dict.fromkeys(sentences) if not _WAKE_RE.search(s)]
    random.Random(18).shuffle(sentences)
    rng = random.Random(7)
    target = minutes * 60 * PIPELINE_RATE
    total = sum(len(p) for p in parts)
    for i, sentence in enumerate(sentences):
        if total >= target:
            break
        if i % 2 == 0:
            clip = piper_speech_at(sentence, rng.choice((0.9, 1.0, 1.15)))
            meta["piper_sentences"] += 1
        else:
            clip = espeak_speech(sentence, rate_wpm=rng.choice((130, 150, 175)), pitch=rng.choice((35, 50, 65)))
            meta["espeak_sentences"] += 1
        gap = np.zeros(int(rng.uniform(0.3, 1.2) * PIPELINE_RATE), np.int16)
        parts += [clip, gap]
        total += len(clip) + len(gap)
        if i % 200 == 0:
            progress(f"  synthesized {total / PIPELINE_RATE / 60:.1f} of {minutes:g} min of non-wake speech")
    if total < target:
        progress(f"  only {total / PIPELINE_RATE / 60:.1f} min of non-wake speech (ran out of sentences)")
    audio = np.concatenate(parts)
    meta["minutes"] = round(len(audio) / PIPELINE_RATE / 60, 2)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, audio)
        meta_path.write_text(json.dumps(meta))
    return audio, meta


def compare(
    backends: dict[str, Callable[[list[str]], Any]],
    speech_dir: Path,
    slurp_test: Path,
    *,
    models: list[str],
    threshold: float,
    refractory_s: float,
    negative_minutes: float = 60.0,
    idle_seconds: float = 60.0,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Figures per backend; `backends` maps a name to a factory taking the wake word model names."""
    real = real_wake_clips(speech_dir)
    progress("synthesizing wake words ...")
    synth = synthetic_wake_clips()
    progress("assembling non-wake speech ...")
    negatives, neg_meta = non_wake_stream(speech_dir, slurp_test, negative_minutes, cache_dir, progress)
    idle = quiet_room(idle_seconds)
    hours = len(negatives) / PIPELINE_RATE / 3600
    out: dict[str, Any] = {
        "threshold": threshold,
        "refractory_seconds": refractory_s,
        "idle_models": models,
        "non_wake": {**neg_meta, "hours": round(hours, 3)},
        "backends": {},
    }
    for name, make in backends.items():
        progress(f"{name}: idle CPU ...")
        live = make(models)
        every = make(list(WAKE_WORDS))
        row: dict[str, Any] = {"version": getattr(live, "version", "")}
        row["idle_cpu_percent_of_one_core"] = cpu_percent(live, idle)
        row["idle_cpu_percent_all_four_models"] = cpu_percent(every, idle)
        for label, clips in (("real", real), ("synthetic", synth)):
            progress(f"{name}: detection on {len(clips)} {label} wake clips ...")
            scores = {clip: round(best_score(every, _padded(audio), model), 3) for clip, model, audio in clips}
            hits = [c for c, s in scores.items() if s >= threshold]
            row[f"detection_{label}"] = {
                "clips": len(clips),
                "detected": len(hits),
                "rate": round(len(hits) / len(clips), 3),
                "missed": {c: s for c, s in scores.items() if s < threshold},
            }
        progress(f"{name}: false wakes on {hours * 60:.0f} min of non-wake speech ...")
        c0, w0 = time.process_time(), time.monotonic()
        verified0 = getattr(every, "verified_frames", None)
        wakes = count_wakes(every, negatives, threshold, refractory_s)
        if verified0 is not None:  # a cascade: how much of the speech its second detector had to hear
            row["verifier_share_of_speech"] = round((every.verified_frames - verified0) / (hours * 3600 / 0.08), 4)
        row["speech_cpu_percent_all_four_models"] = round(100 * (time.process_time() - c0) / (hours * 3600), 2)
        row["false_wakes"] = len(wakes)
        row["false_wakes_per_hour"] = round(len(wakes) / hours, 2)
        row["false_wakes_by_model"] = {m: sum(1 for w in wakes if w[1] == m) for m in WAKE_WORDS}
        row["false_wake_times"] = wakes[:50]
        row["wall_seconds"] = round(time.monotonic() - w0, 1)
        out["backends"][name] = row
    return out
