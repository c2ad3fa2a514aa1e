"""Training sentences as the ASR hears them (issue 18): the NLU corpora spoken by several synthetic voices, at
several speeds and noise levels, transcribed by the pipeline's recogniser, and kept with the label of the sentence
that was said.

The NLU is trained on clean, lower-case text but at run time reads Whisper's output: capitals, punctuation, digits,
and the recogniser's mistakes ("turn of the lights", "what's the whether"). Rows made here teach it the second
kind of input. A row keeps the intent of the sentence that was said (a gold label, or the teacher's soft distribution
for SLURP's unlabelled lm.txt lines), and its slots only when every slot value was heard as said (otherwise the row
is intent-only: the misheard value has no right place to tag).

Voices: Piper's joe voice at speeds other than 1.0 and espeak-ng voices other than plain `en` (the two voices of
`eval nlu --spoken piper|espeak` stay out of training). Noise: pink, white or brown at 5-20 dB SNR on half the rows.
SLURP devel and test sentences are never spoken here (`build_datasets` drops them from every corpus).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

PIPER_SPEEDS = (0.8, 0.9, 1.1, 1.25)
"""Piper length scales (> 1 is slower); 1.0 is the `--spoken piper` evaluation voice, so it is left out."""
ESPEAK_VOICES = ("en-us", "en-gb-scotland", "en-us+f3", "en+m3", "en-gb-x-rp", "en-029", "en-us+f2", "en-gb-x-gbclan")
"""espeak-ng voices; plain `en` (= `en-gb`) at 140 wpm is the `--spoken espeak` evaluation voice, so it is left out."""
NOISES = ("pink", "white", "brown")


def condition(text: str, seed: int = 0) -> dict[str, Any]:
    """The voice, speed and noise a sentence is spoken with: seeded by the sentence, so a rerun makes the same."""
    rng = random.Random(int.from_bytes(hashlib.sha1(f"{seed}:{text}".encode()).digest()[:8], "big"))
    if rng.random() < 0.5:
        cond: dict[str, Any] = {"voice": "piper", "length_scale": rng.choice(PIPER_SPEEDS)}
    else:
        cond = {
            "voice": "espeak",
            "espeak_voice": rng.choice(ESPEAK_VOICES),
            "rate_wpm": rng.randrange(120, 186, 5),
            "pitch": rng.randrange(30, 71, 5),
        }
    if rng.random() < 0.5:
        cond |= {
            "noise": rng.choice(NOISES),
            "snr_db": float(rng.choice((5, 10, 15, 20))),
            "noise_seed": rng.getrandbits(31),
        }
    return cond


def speak(text: str, cond: dict[str, Any]):
    """int16 16 kHz speech of `text` under `cond` (see `condition`)."""
    from assistant.simulate import voices

    if cond["voice"] == "piper":
        audio = voices.piper_speech_at(text, cond["length_scale"])
    else:
        audio = voices.espeak_speech(text, cond["espeak_voice"], cond["rate_wpm"], cond["pitch"])
    if "noise" in cond:
        audio = voices.add_colored_noise(audio, cond["snr_db"], cond["noise"], cond["noise_seed"])
    return voices.compose([0.3, audio, 0.3])


def align_spans(text: str, spans: list[tuple[int, int, str]] | None, heard: str) -> list[tuple[int, int, str]] | None:
    """The slots of `text` found in `heard` (case and punctuation aside), in `heard`'s offsets; None when a slot value
    was not heard as said (the row is then intent-only) or the row had no slots to begin with (pseudo-labels)."""
    if spans is None:
        return None
    out: list[tuple[int, int, str]] = []
    taken = 0
    for s, e, tag in sorted(spans):
        words = re.findall(r"[a-z0-9']+", text[s:e].lower())
        if not words:
            continue
        pattern = r"(?<![A-Za-z0-9'])" + r"[^A-Za-z0-9']+".join(map(re.escape, words)) + r"(?![A-Za-z0-9'])"
        m = re.compile(pattern, re.IGNORECASE).search(heard, taken)
        if m is None:
            return None
        out.append((m.start(), m.end(), tag))
        taken = m.end()
    return out


_ASR = None


def _init_worker(window_seconds: float | None) -> None:
    global _ASR
    from assistant.config import load_settings
    from assistant.core import registry

    settings = load_settings()
    # one thread per worker process: the workers are the parallelism
    asr = settings.asr.model_copy(update={"threads": 1, "window_seconds": window_seconds})
    settings = settings.model_copy(update={"asr": asr})
    _ASR = registry.create("asr", settings.asr.backend, registry.Build(settings=settings))


def _hear(job: tuple[int, str, dict[str, Any]]) -> tuple[int, str, str]:
    index, text, cond = job
    return index, _ASR.transcribe(speak(text, cond), "en").text, _ASR.version


def sample_sentences(count: int, seed: int = 0, teacher: Path | None = None) -> list[dict[str, Any]]:
    """`count` rows of the NLU's training corpora (HWU64, the templates, and lm.txt lines soft-labelled by `teacher`),
    sampled with a seed; the same rows `train nlu` learns from, so SLURP devel/test are out."""
    from assistant.training.nlu import build_datasets

    data = build_datasets(seed=0, teacher_dirs=[teacher] if teacher else None, min_conf=0.0, soft=True)
    rows = data["train"]
    rng = random.Random(seed)
    # in sampled order, not corpus order: a run stopped early is still a sample of every corpus
    return [rows[i] for i in rng.sample(range(len(rows)), min(count, len(rows)))]


def make_heard_rows(
    out: Path,
    count: int,
    seed: int = 0,
    workers: int = 2,
    window_seconds: float | None = 10.0,
    teacher: Path | None = None,
    progress: bool = True,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Speak `count` corpus sentences (or the given `rows`: text, intent, spans[, probs, source]) and append what the
    ASR heard to `out` (JSONL; resumable: sentences already in the file are skipped). Returns counts and the mean
    WER."""
    import jiwer

    from assistant.text import normalize_dataset as clean

    out = Path(out)
    done: set[str] = set()
    if out.exists():
        done = {json.loads(line)["source_text"] for line in out.read_text(encoding="utf-8").splitlines() if line}
    rows = rows if rows is not None else sample_sentences(count, seed, teacher)
    todo = [(i, r) for i, r in enumerate(rows) if r["text"] not in done]
    jobs = [(i, r["text"], condition(r["text"], seed)) for i, r in todo]
    conds = {i: c for i, _, c in jobs}
    t0 = time.time()
    n = 0
    with (
        out.open("a", encoding="utf-8") as f,
        ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(window_seconds,)) as pool,
    ):
        for index, heard, asr_version in pool.map(_hear, jobs, chunksize=8):
            row = rows[index]
            rec = {
                "text": heard,
                "source_text": row["text"],
                "intent": row["intent"],
                "spans": align_spans(row["text"], row.get("spans"), heard),
                "source": f"heard-{row.get('source', 'corpus')}",
                "wer": round(jiwer.wer(clean(row["text"]) or "-", clean(heard) or "-"), 4),
                "asr": asr_version,
                "window_seconds": window_seconds,
                "condition": conds[index],
            }
            if row.get("probs"):
                rec["probs"] = row["probs"]
            f.write(json.dumps(rec) + "\n")
            f.flush()
            n += 1
            if progress and n % 200 == 0:
                rate = n / (time.time() - t0)
                print(f"[heard] {n}/{len(jobs)} ({rate:.2f} sentences/s)", flush=True)
    return summarize(out)


def summarize(path: Path) -> dict[str, Any]:
    recs = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    if not recs:
        return {"rows": 0}
    by_voice: dict[str, list[float]] = {}
    for r in recs:
        by_voice.setdefault(r["condition"]["voice"] + ("+noise" if "noise" in r["condition"] else ""), []).append(
            r["wer"]
        )
    return {
        "rows": len(recs),
        "mean_wer": round(sum(r["wer"] for r in recs) / len(recs), 4),
        "heard_exactly": sum(1 for r in recs if r["wer"] == 0),
        "with_slots": sum(1 for r in recs if r["spans"]),
        "by_condition": {
            k: {"rows": len(v), "mean_wer": round(sum(v) / len(v), 4)} for k, v in sorted(by_voice.items())
        },
        "by_source": dict(Counter(r["source"] for r in recs)),
    }


def load_heard_rows(path: Path, max_wer: float = 0.6) -> list[dict[str, Any]]:
    """Rows for `train nlu --heard`: what was heard, with the said sentence's label. Rows heard exactly (the clean
    corpus row already teaches them) and rows heard too badly to carry the label (WER above `max_wer`, or nothing
    heard) are left out."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line:
            continue
        r = json.loads(line)
        if not r["text"].strip() or r["wer"] == 0 or r["wer"] > max_wer:
            continue
        row = {"text": r["text"].strip(), "intent": r["intent"], "spans": r["spans"], "source": r["source"]}
        if r.get("probs"):
            row["probs"] = r["probs"]
        rows.append(row)
    return rows
