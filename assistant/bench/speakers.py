"""Speaker identification, measured (`assistant bench --speakers`): accuracy, false accepts, equal error rate, cost.

Real voices: the recordings in ../shared/data/speech (see each PROVENANCE.md). Six speakers have two or more
utterances (or a recording long enough to cut into 2.75 s pieces) and can be enrolled: LibriSpeech 251, JFK, the
English half of faster-whisper's multilingual.mp3, the left channel of stereo_diarization.wav, VCTK p232 (noisy) and
the voice of hotwords.mp3. Single clips of other people (LibriSpeech 3536, VCTK p257, the right channel, the
voice2json and wyoming clips, hey_jane) are only ever impostors. Synthetic voices (espeak-ng variants, Piper's
joe) are reported separately: they are easier to tell apart in some pairs and much harder in others.

Protocol: for every set of K enrolled speakers (K = 2..6; every combination), each enrolls on its first utterance
(two for long recordings); the others' utterances are genuine trials, every utterance of a speaker not enrolled is an
impostor trial. Trials alternate between a calibration half (the threshold: equal error rate there) and a test half
(the figures). Test audio clean and with white noise at 10 dB SNR; enrollment stays clean (people enroll at home,
in quiet). Identification accuracy: a genuine trial named as its speaker; false accept: an impostor trial named
as anyone; misidentification: a genuine trial named as someone else.
"""

from __future__ import annotations

import itertools
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant import audio as audio_io

RATE = 16000
CHUNK = int(2.75 * RATE)


@dataclass
class Speaker:
    name: str
    enroll: list[np.ndarray]
    trials: list[np.ndarray]


def _chunks(x: np.ndarray, n: int | None = None) -> list[np.ndarray]:
    out = [x[i : i + CHUNK] for i in range(0, len(x) - CHUNK + 1, CHUNK)]
    return out[:n] if n else out


def _channel(path: Path, ch: int) -> np.ndarray:
    import soundfile as sf
    import soxr

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    x = soxr.resample(data[:, ch], rate, RATE) if rate != RATE else data[:, ch]
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def real_voices(speech_dir: Path) -> tuple[list[Speaker], list[tuple[str, np.ndarray]]]:
    """(enrollable speakers, impostor-only clips) from ../shared/data/speech."""
    d = Path(speech_dir)
    asr = d / "arm_ml_eval_kit/resources/asr/samples"
    nr = d / "arm_ml_eval_kit/resources/noise_reduction/samples"
    read = audio_io.read_file
    jfk = _chunks(read(d / "whisper/jfk.flac"))
    mit = _chunks(read(d / "faster_whisper/multilingual.mp3")[: 28 * RATE])  # the English reading only
    stereo_left = _channel(d / "faster_whisper/stereo_diarization.wav", 0)
    left = [stereo_left[: len(stereo_left) // 2], stereo_left[len(stereo_left) // 2 :]]
    hot = read(d / "faster_whisper/hotwords.mp3")
    speakers = [
        Speaker(
            "librispeech-251",
            [read(asr / "testing_routine.wav")],
            [read(asr / f) for f in ("another_engineer.wav", "i_tell_you.wav")],
        ),
        Speaker("jfk", jfk[:1], jfk[1:]),
        Speaker("mit-licence-reader", mit[:2], mit[2:8]),
        Speaker("stereo-left", left[:1], left[1:]),
        Speaker("vctk-p232", [read(nr / "p232_113.wav")], [read(nr / "p232_208.wav")]),
        Speaker("hotwords-voice", [hot[: len(hot) // 2]], [hot[len(hot) // 2 :]]),
    ]
    impostors = [
        ("librispeech-3536", read(asr / "another_door.wav")),
        ("vctk-p257", read(nr / "p257_031.wav")),
        ("stereo-right", _channel(d / "faster_whisper/stereo_diarization.wav", 1)[: int(2.6 * RATE)]),
        ("hey_jane", read(d / "openwakeword/tests/data/hey_jane.wav")),
        ("wyoming-lamp", read(d / "wyoming_faster_whisper/turn_on_the_living_room_lamp.wav")),
        ("wyoming-french", read(d / "wyoming_faster_whisper/whats_your_name_french.wav")),
    ] + [(f"voice2json-{p.stem}", read(p)) for p in sorted((d / "voice2json").glob("*.wav"))]
    return speakers, impostors


SYNTH_SENTENCES = [
    "turn on the kitchen light please",
    "what is the weather like tomorrow morning",
    "set a timer for ten minutes",
    "add milk to my shopping list",
    "play some jazz in the living room",
    "what's on my calendar today",
    "turn off all the lights downstairs",
    "remind me to call the dentist at noon",
]
SYNTH_VOICES = {
    "espeak-en+m1": ("espeak", "en+m1"),
    "espeak-en+f2": ("espeak", "en+f2"),
    "espeak-en-us+f4": ("espeak", "en-us+f4"),
    "espeak-en+klatt2": ("espeak", "en+klatt2"),
    "espeak-en-us+m3": ("espeak", "en-us+m3"),
    "piper-joe": ("piper", ""),
}
SYNTH_IMPOSTORS = {"espeak-en+m7": ("espeak", "en+m7"), "espeak-en+f5": ("espeak", "en+f5")}


def _say(kind: str, voice: str, text: str) -> np.ndarray:
    from assistant.simulate.voices import espeak_speech, piper_speech

    return piper_speech(text) if kind == "piper" else espeak_speech(text, voice)


def synthetic_voices() -> tuple[list[Speaker], list[tuple[str, np.ndarray]]]:
    speakers = []
    for name, (kind, v) in SYNTH_VOICES.items():
        audio = [_say(kind, v, s) for s in SYNTH_SENTENCES]
        speakers.append(Speaker(name, audio[:3], audio[3:]))
    impostors = [(n, _say(k, v, s)) for n, (k, v) in SYNTH_IMPOSTORS.items() for s in SYNTH_SENTENCES[3:]]
    return speakers, impostors


def _eer(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """(equal error rate, its threshold): over a 0.001 grid, the smallest max(false reject, false accept); the
    threshold is the middle of the grid points that reach it (the middle of the gap when the scores separate)."""
    grid = np.arange(-0.2, 1.0005, 0.001)
    frr = (target[None, :] < grid[:, None]).mean(axis=1)
    far = (nontarget[None, :] >= grid[:, None]).mean(axis=1)
    worst = np.maximum(frr, far)
    best = worst.min()
    at = grid[np.isclose(worst, best)]
    return float(best), float((at.min() + at.max()) / 2)


def evaluate(
    encoder,
    speakers: list[Speaker],
    impostors: list[tuple[str, np.ndarray]],
    snr_db: float | None,
    threshold: float | None = None,
    max_sets: int = 20,
    color: str = "white",
    augment: bool = True,
) -> dict[str, Any]:
    """Every K-of-N enrolled set; the threshold is calibrated on the calibration half unless given. Enrollment is
    the stage's own (`SpeakerIdentifier.enrollment_embeddings`: with `augment`, noisy copies too)."""
    from assistant.speakers.identify import SpeakerIdentifier, with_noise

    def noisy(x: np.ndarray, seed: int) -> np.ndarray:
        return x if snr_db is None else with_noise(x, snr_db, color, seed=1000 + seed)

    ident = SpeakerIdentifier(encoder, None, 0.0, augment=augment)  # only its enrollment recipe
    prints = {}
    for s in speakers:
        e = np.stack([v for x in s.enroll for v in ident.enrollment_embeddings(x)]).mean(axis=0)
        prints[s.name] = e / np.linalg.norm(e)
    # every utterance's embedding once: (speaker, is enrollment audio, embedding, half)
    trials: list[tuple[str, bool, np.ndarray, int]] = []
    seed = 0
    for s in speakers:
        for x in s.trials:
            trials.append((s.name, False, encoder.embed(noisy(x, seed)), seed % 2))
            seed += 1
        for x in s.enroll:  # an enrolled speaker's enrollment audio is an impostor trial when they are not enrolled
            trials.append((s.name, True, encoder.embed(noisy(x, seed)), seed % 2))
            seed += 1
    for name, x in impostors:
        trials.append((name, True, encoder.embed(noisy(x, seed)), seed % 2))
        seed += 1
    names = [s.name for s in speakers]
    rows: dict[int, list[tuple[str | None, float, str, bool]]] = {}
    target, nontarget = {0: [], 1: []}, {0: [], 1: []}
    for k in range(2, len(names) + 1):
        combos = list(itertools.combinations(names, k))[:max_sets]
        for enrolled in combos:
            P = np.stack([prints[n] for n in enrolled])
            for who, is_enroll_audio, emb, half in trials:
                genuine = who in enrolled and not is_enroll_audio
                if who in enrolled and is_enroll_audio:
                    continue  # never test on the enrollment audio
                sims = P @ emb
                i = int(np.argmax(sims))
                rows.setdefault(k, []).append((enrolled[i], float(sims[i]), who if genuine else "", half))
                for n, sc in zip(enrolled, sims):
                    (target if (genuine and n == who) else nontarget)[half].append(float(sc))
    eer_cal, thr_cal = _eer(np.array(target[0]), np.array(nontarget[0]))
    eer_test, _ = _eer(np.array(target[1]), np.array(nontarget[1]))
    thr = thr_cal if threshold is None else threshold
    per_k = {}
    for k, rs in rows.items():
        test = [r for r in rs if r[3] == 1]
        gen = [r for r in test if r[2]]
        imp = [r for r in test if not r[2]]
        per_k[k] = {
            "sets": min(max_sets, len(list(itertools.combinations(names, k)))),
            "genuine_trials": len(gen),
            "impostor_trials": len(imp),
            "id_accuracy": round(sum(r[0] == r[2] and r[1] >= thr for r in gen) / max(1, len(gen)), 3),
            "misidentified": round(sum(r[0] != r[2] and r[1] >= thr for r in gen) / max(1, len(gen)), 3),
            "false_accept": round(sum(r[1] >= thr for r in imp) / max(1, len(imp)), 3),
            "closed_set_top1": round(sum(r[0] == r[2] for r in gen) / max(1, len(gen)), 3),
        }
    return {
        "snr_db": snr_db,
        "noise": color if snr_db is not None else None,
        "augmented_enrollment": augment,
        "_cal": (target[0], nontarget[0]),
        "threshold": round(thr, 4),
        "threshold_calibrated": round(thr_cal, 4),
        "eer_calibration_half": round(eer_cal, 3),
        "eer_test_half": round(eer_test, 3),
        "speakers": names,
        "impostor_voices": sorted({n for n, _ in impostors}),
        "by_enrolled": per_k,
    }


def cost(encoder, seconds: list[float] = (2.0, 3.0, 5.0), repeats: int = 10) -> dict[str, Any]:
    """Embedding time per request of each length (median ms, real-time factor) and the process's peak memory."""
    rng = np.random.default_rng(0)
    out = {}
    for s in seconds:
        x = (rng.normal(0, 3000, int(s * RATE))).astype(np.int16)
        encoder.embed(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            encoder.embed(x)
            times.append((time.perf_counter() - t0) * 1000)
        med = statistics.median(times)
        out[f"{s:g}s"] = {"median_ms": round(med, 1), "rtf": round(med / 1000 / s, 4)}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


CONDITIONS = {"clean": (None, "white"), "10db_white": (10.0, "white"), "10db_pink": (10.0, "pink")}


def run_all(speech_dir: Path, encoder=None, threshold: float | None = None, augment: bool = True) -> dict[str, Any]:
    """Real and synthetic voices, clean and at 10 dB SNR (white, pink), and the cost. The threshold used for every
    figure is `threshold`; `calibrated_threshold` is the equal-error point of the real voices' calibration halves of
    all three conditions pooled (what `speaker.threshold` was set from)."""
    if encoder is None:
        from assistant.backends.speaker.resemblyzer_onnx import ResemblyzerOnnx

        encoder = ResemblyzerOnnx()
    real = real_voices(speech_dir)
    first = {c: evaluate(encoder, *real, snr, None, color=col, augment=augment) for c, (snr, col) in CONDITIONS.items()}
    target = np.concatenate([np.array(r["_cal"][0]) for r in first.values()])
    nontarget = np.concatenate([np.array(r["_cal"][1]) for r in first.values()])
    eer, calibrated = _eer(target, nontarget)
    thr = calibrated if threshold is None else threshold
    out: dict[str, Any] = {
        "calibrated_threshold": round(calibrated, 4),
        "pooled_calibration_eer": round(eer, 3),
        "threshold": thr,
        "augmented_enrollment": augment,
    }
    synth = synthetic_voices()
    for c, (snr, col) in CONDITIONS.items():
        out[f"real_{c}"] = evaluate(encoder, *real, snr, thr, color=col, augment=augment)
        out[f"synthetic_{c}"] = evaluate(encoder, *synth, snr, thr, color=col, augment=augment)
    for v in out.values():
        if isinstance(v, dict):
            v.pop("_cal", None)
    out["cost"] = cost(encoder)
    return out


LATENCY_REQUESTS = [
    "please add milk to my shopping list",
    "turn on the kitchen light",
    "what's on my shopping list",
    "set a timer for ten minutes",
    "what time is it",
    "turn off the living room lights",
]


def pipeline_latency(settings, home: Path, rounds: int = 2) -> dict[str, Any]:
    """The same spoken requests through the real pipeline (ASR, NLU, skills; no TTS) with two voices enrolled (the
    speaker stage runs beside ASR) and with none (it does nothing): what identification adds end to end."""
    import tempfile

    from assistant.core.request import Request
    from assistant.core.runner import Runner
    from assistant.simulate.voices import compose, espeak_speech

    stages = [s for s in settings.stages if s not in ("wake", "vad", "tts")]
    s = settings.model_copy(update={"stages": stages})
    audio = [compose([0.3, espeak_speech(t, "en+f2"), 0.5]) for t in LATENCY_REQUESTS]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as with_dir, tempfile.TemporaryDirectory() as without_dir:
        with_voices = Runner(s, home, data_dir=Path(with_dir))
        without = Runner(s, home, data_dir=Path(without_dir), backends={"asr": with_voices.asr, "nlu": with_voices.nlu})
        ident = with_voices.speaker
        for name, v in (("alice", "en+f2"), ("bob", "en+m1")):
            embs = [e for t in SYNTH_SENTENCES[:3] for e in ident.enrollment_embeddings(espeak_speech(t, v))]
            ident.store.enroll(name, embs, 6.0, ident.version, utterances=3)
        samples: dict[str, list[dict[str, float]]] = {"with_voices": [], "without": []}
        for _ in range(rounds):
            for x in audio:
                for key, runner in (("with_voices", with_voices), ("without", without)):
                    rec = runner.run(Request.audio(x))
                    samples[key].append(rec.latency_ms)
        for key, lats in samples.items():
            out[key] = {
                k: round(statistics.median(lat.get(k, 0.0) for lat in lats), 1)
                for k in ("asr", "speaker", "speaker_wait", "processing_to_first_audio")
            }
        with_voices.close()
        without.close()
    w, wo = out["with_voices"], out["without"]
    out["added_ms"] = round(w["processing_to_first_audio"] - wo["processing_to_first_audio"], 1)
    out["if_run_after_asr_ms"] = w["speaker"]  # what a sequential stage would add instead
    out["requests"] = len(audio) * rounds
    return out
