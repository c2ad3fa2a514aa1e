"""Recognisers side by side (`assistant bench --asr-models tiny.en,base`): WER and decode latency per request.

The audio: the shared recordings whose words are known (../shared/data/speech, PROVENANCE.md: home commands,
LibriSpeech sentences, JFK) and SLURP test sentences spoken by Piper and by espeak-ng (synthesized once, for every
model). Each clip is decoded by every model in turn (interleaved, so a busy machine slows them alike); latency is
the wall time of one `transcribe` call, as the pipeline's ASR stage spends it on a request. For the SLURP sets the
NLU (models/nlu) parses what each model heard: intent accuracy against SLURP's gold intent. The recordings are
decoded a second time with 3 s of silence after them (set `recorded+silence`), as a request whose endpoint came late.

A model name may carry options after `@`: `tiny.en@window=5` encodes a 5 s window at least (asr.window_seconds),
`tiny.en@window=3@margin=2` keeps 2 s after the audio (asr.window_margin_seconds), `tiny.en@window=0` forces the 30 s
path whatever pipeline.yaml says (docs/asr-base.md, "Shorter encoder window").
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REFERENCES = {
    "voice2json/turn_on_living_room_lamp.wav": "turn on the living room lamp",
    "voice2json/would_you_please_turn_on_living_room_lamp.wav": "would you please turn on the living room lamp",
    "voice2json/what_time_is_it.wav": "what time is it",
    "wyoming_faster_whisper/turn_on_the_living_room_lamp.wav": "turn on the living room lamp",
    "wyoming_faster_whisper/living_room_light_en.wav": "turn on the living room light",
    "arm_ml_eval_kit/resources/asr/samples/testing_routine.wav": "this isn't part of your testing routine is it",
    "arm_ml_eval_kit/resources/asr/samples/another_engineer.wav": (
        "another engineer rushed toward the door to see what was happening outside"
    ),
    "arm_ml_eval_kit/resources/asr/samples/another_door.wav": (
        "and he walked immediately out of the apartment by another door"
    ),
    "arm_ml_eval_kit/resources/asr/samples/i_tell_you.wav": "i tell you it is not poison she cried",
    "whisper/jfk.flac": (
        "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
    ),
}


def _wer(ref: str, hyp: str) -> float:
    import jiwer

    from assistant.text import normalize_dataset as clean

    return float(jiwer.wer(clean(ref), clean(hyp) or "-"))


SETS = ("recorded", "recorded+silence", "slurp-piper", "slurp-espeak")
TRAILING_SILENCE_SECONDS = 3.0
VARIANT_OPTIONS = {"window": "window_seconds", "margin": "window_margin_seconds"}


def parse_variant(spec: str) -> tuple[str, dict[str, float]]:
    """`tiny.en@window=5@margin=1` -> ("tiny.en", {"window_seconds": 5.0, "window_margin_seconds": 1.0}): the model
    and the ASR settings to change."""
    model, *options = spec.split("@")
    update: dict[str, float] = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if key not in VARIANT_OPTIONS or not sep:
            raise ValueError(f"{spec!r}: unknown option {opt!r}; use {', '.join(k + '=N' for k in VARIANT_OPTIONS)}")
        update[VARIANT_OPTIONS[key]] = float(value)
    return model, update


def clips(
    speech_dir: Path, slurp_test: Path, sentences: int, voices: tuple[str, ...] = ("piper", "espeak")
) -> list[tuple[str, str, str, str, np.ndarray]]:
    """(set, name, reference, gold intent, audio): the recordings, then the first `sentences` SLURP test sentences
    spoken by each voice."""
    from assistant.audio import read_file
    from assistant.simulate.voices import espeak_speech, piper_speech

    out = [("recorded", name, ref, "", read_file(speech_dir / name)) for name, ref in REFERENCES.items()]
    pad = np.zeros(int(TRAILING_SILENCE_SECONDS * 16000), dtype=np.int16)
    out += [("recorded+silence", name, ref, gold, np.concatenate([a, pad])) for _, name, ref, gold, a in out]
    rows = [json.loads(line) for line in slurp_test.read_text().splitlines() if line.strip()][:sentences]
    speak = {"piper": piper_speech, "espeak": espeak_speech}
    for voice in voices:
        out += [
            (f"slurp-{voice}", str(r["slurp_id"]), r["sentence"], r["intent"], speak[voice](r["sentence"]))
            for r in rows
        ]
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"n": 0}
    lat = sorted(r["ms"] for r in rows)
    gold = [r for r in rows if r["gold"]]
    return {
        "n": len(rows),
        "intent_accuracy": round(sum(r["intent"] == r["gold"] for r in gold) / len(gold), 4) if gold else None,
        "mean_wer": round(statistics.fmean(r["wer"] for r in rows), 4),
        "latency_ms_median": round(statistics.median(lat), 1),
        "latency_ms_p90": round(lat[min(len(lat) - 1, int(0.9 * len(lat)))], 1),
        "audio_seconds_mean": round(statistics.fmean(r["audio_s"] for r in rows), 2),
        "window_seconds_mean": (
            round(statistics.fmean(r["window_s"] for r in rows), 2) if all(r["window_s"] for r in rows) else None
        ),
    }


def compare(
    make: Callable[[str], Any],
    models: list[str],
    speech_dir: Path,
    slurp_test: Path,
    sentences: int = 100,
    progress: Callable[[str], None] = print,
    nlu: Any = None,
    voices: tuple[str, ...] = ("piper", "espeak"),
) -> dict[str, Any]:
    """WER, latency (and intent accuracy with `nlu`) per model and set; `make(model)` builds the ASR backend."""
    from assistant.audio import PIPELINE_RATE

    progress("synthesizing ...")
    data = clips(speech_dir, slurp_test, sentences, voices)
    asrs = {}
    for m in models:
        t0 = time.perf_counter()
        asrs[m] = make(m)
        asrs[m].transcribe(data[0][4], "en")  # warm-up (first call allocates)
        progress(f"{m}: loaded in {time.perf_counter() - t0:.1f} s ({asrs[m].version})")
    per: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    for i, (kind, name, ref, gold, audio) in enumerate(data):
        for m, asr in asrs.items():
            t0 = time.perf_counter()
            res = asr.transcribe(audio, "en")
            ms = (time.perf_counter() - t0) * 1000
            text = res.text
            intent = nlu.parse(text or " ").intent if (nlu is not None and gold) else ""
            per[m].append(
                {
                    "set": kind,
                    "clip": name,
                    "ref": ref,
                    "heard": text,
                    "wer": _wer(ref, text),
                    "ms": ms,
                    "audio_s": len(audio) / PIPELINE_RATE,
                    "window_s": getattr(res, "window_seconds", None),
                    "gold": gold if nlu is not None else "",
                    "intent": intent,
                }
            )
        if i % 25 == 0:
            progress(f"  {i + 1}/{len(data)}")
    out: dict[str, Any] = {"models": {}}
    for m, rows in per.items():
        out["models"][m] = {
            "version": asrs[m].version,
            **{kind: _summary([r for r in rows if r["set"] == kind]) for kind in SETS},
            "recorded_heard": {r["clip"]: r["heard"] for r in rows if r["set"] == "recorded"},
            "recorded_silence_heard": {r["clip"]: r["heard"] for r in rows if r["set"] == "recorded+silence"},
            "slurp_heard": {f"{r['set']}/{r['clip']}": r["heard"] for r in rows if r["gold"]},
        }
    return out
