"""Endpointing side by side: end on silence only (today's default) vs semantic end of turn (a speculative decode at
a pause; a complete request ends there, an unfinished one waits longer).

Measured on what the machine cannot flatter: audio time. For each request the endpoint wait (silence after the last
speech before the decision) and, with speculation, when the speculative decode was ready (pause + decode time, the
only figure that depends on this CPU). A *false cut-off* is a request the semantic endpointer ended while the
speaker went on: the silence-only endpointer, on the same audio, kept speech after that point in the same request.

Audio: the shared recordings (../shared/data/speech, no wake word: every speech segment is a request) and requests
synthesized here with a pause in the middle (Piper), some of which are complete before the pause ("set a timer for
ten minutes ... and thirty seconds"), which is where a semantic endpointer can go wrong.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.apps.replay import FRAME_SECONDS, segment
from assistant.core.endpointer import EndpointConfig

# (first part, pause seconds, second part): pauses people make inside one request
MID_PAUSES: list[tuple[str, float, str]] = [
    ("turn on the", 0.4, "kitchen light"),
    ("set a timer for", 0.45, "five minutes"),
    ("play some music by", 0.4, "the beatles"),
    ("what's the weather like in", 0.4, "paris"),
    ("add eggs and", 0.35, "milk to my shopping list"),
    ("remind me to", 0.45, "call mom tomorrow"),
    ("turn off all the lights", 0.4, "in the bedroom"),
    ("set a timer for ten minutes", 0.35, "and thirty seconds"),
    ("what's the weather", 0.4, "tomorrow in london"),
    ("play some jazz", 0.4, "in the living room"),
    ("dim the lights", 0.35, "to forty percent"),
    ("um", 0.45, "what time is it"),
    ("open the", 0.4, "garage door"),
    ("lock the front door", 0.35, "and turn off the porch light"),
    ("turn the heating up to", 0.4, "twenty one degrees"),
    ("what is the temperature", 0.35, "in the living room"),
    ("wake me up at", 0.45, "seven thirty"),
    ("call", 0.4, "john"),
]


def _files(speech_dir: Path) -> list[Path]:
    return sorted(p for p in speech_dir.rglob("*") if p.suffix.lower() in (".wav", ".flac"))


def _segments(runner, samples: np.ndarray, name: str, cfg: EndpointConfig) -> list[dict[str, Any]]:
    frames = (
        samples[i : i + audio_io.FRAME_SAMPLES]
        for i in range(0, len(samples) - audio_io.FRAME_SAMPLES + 1, audio_io.FRAME_SAMPLES)
    )
    out = []
    for req in segment(runner, frames, name, no_wake=True, config=cfg):
        s = req.source
        spec = req.speculation
        out.append(
            {
                "start": s["offset_seconds"],
                "end": s["end_seconds"],
                "speech_end": s["speech_end_seconds"],
                "reason": s["endpoint"],
                "wait_ms": req.endpoint_wait_ms,
                "ready_ms": spec.pause_ms + spec.decode_ms if spec is not None else None,
                "text": spec.text if spec is not None else None,
            }
        )
    return out


def _cutoffs(base: list[dict[str, Any]], sem: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Semantic requests ended at a pause while the same silence-only request had speech after that point."""
    cut = []
    for s in sem:
        if s["reason"] != "complete":
            continue
        for b in base:
            if b["start"] - FRAME_SECONDS <= s["speech_end"] <= b["end"] and b["speech_end"] > s["end"] + FRAME_SECONDS:
                cut.append({**s, "full_speech_end": b["speech_end"]})
                break
    return cut


def compare(
    runner, speech_dir: Path | None = None, synthesized: bool = True, pause_seconds: float = 0.24, progress=None
) -> dict[str, Any]:
    """Both endpointers on the same audio; figures per source and overall."""
    base_cfg = replace(EndpointConfig.from_settings(runner.settings, FRAME_SECONDS), pause_seconds=None)
    sem_cfg = replace(base_cfg, pause_seconds=pause_seconds)
    sources: list[tuple[str, np.ndarray]] = []
    if speech_dir is not None and speech_dir.exists():
        for path in _files(speech_dir):
            try:
                sources.append((str(path.relative_to(speech_dir)), audio_io.read_file(path)))
            except audio_io.AudioInputError:
                continue
    if synthesized:
        from assistant.simulate.voices import compose, piper_speech

        for a, gap, b in MID_PAUSES:
            sources.append(
                (f"synth: {a} ({gap:.2f} s) {b}", compose([0.5, piper_speech(a), gap, piper_speech(b), 1.5]))
            )
    rows, base_all, sem_all, cut_all = [], [], [], []
    for name, samples in sources:
        base = _segments(runner, samples, name, base_cfg)
        sem = _segments(runner, samples, name, sem_cfg)
        cut = _cutoffs(base, sem)
        base_all += base
        sem_all += sem
        cut_all += [{**c, "source": name} for c in cut]
        rows.append(
            {
                "source": name,
                "requests_silence": len(base),
                "requests_semantic": len(sem),
                "ended_at_pause": sum(s["reason"] == "complete" for s in sem),
                "false_cutoffs": len(cut),
            }
        )
        if progress:
            progress(f"{name}: {len(base)} / {len(sem)} requests, {len(cut)} cut off")

    def waits(segs):
        return [s["wait_ms"] for s in segs if s["reason"] in ("endpoint", "complete")]

    def ready(segs):  # when the transcript is known: max(endpoint decision, speculative decode ready)
        return [max(s["wait_ms"], s["ready_ms"] or 0.0) for s in segs if s["reason"] in ("endpoint", "complete")]

    def med(xs):
        return round(statistics.median(xs), 1) if xs else None

    def p90(xs):
        return round(sorted(xs)[int(0.9 * (len(xs) - 1))], 1) if xs else None

    n_sem = len([s for s in sem_all if s["reason"] in ("endpoint", "complete")])
    return {
        "pause_seconds": pause_seconds,
        "sources": len(sources),
        "silence_only": {
            "requests": len(base_all),
            "endpoint_wait_ms_median": med(waits(base_all)),
            "endpoint_wait_ms_p90": p90(waits(base_all)),
        },
        "semantic": {
            "requests": len(sem_all),
            "ended_at_pause": sum(s["reason"] == "complete" for s in sem_all),
            "endpoint_wait_ms_median": med(waits(sem_all)),
            "endpoint_wait_ms_p90": p90(waits(sem_all)),
            "transcript_ready_ms_median": med(ready(sem_all)),
            "transcript_ready_ms_p90": p90(ready(sem_all)),
            "false_cutoffs": len(cut_all),
            "false_cutoff_rate": round(len(cut_all) / n_sem, 4) if n_sem else None,
        },
        "cutoffs": [
            {
                "source": c["source"],
                "heard": c["text"],
                "ended_s": c["end"],
                "speech_went_on_to_s": c["full_speech_end"],
            }
            for c in cut_all
        ],
        "by_source": rows,
    }
