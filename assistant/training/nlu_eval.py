"""Evaluate an NLU backend on SLURP-style JSONL (or HWU64 CSV): intent accuracy, slot span F1, confusions.

Slot scoring follows SLURP's text-level span F1: a predicted slot counts when its type and its
normalised value match a gold slot (multiset match per utterance). No torch needed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from assistant.text import normalize_dataset

_ANNOT_RE = re.compile(r"\[\s*([^:\]\[]+?)\s*:\s*([^\]\[]*?)\s*\]")


def parse_annotation(annotated: str) -> tuple[str, list[tuple[int, int, str]]]:
    """`set an alarm for [time : nine am]` -> ("set an alarm for nine am", [(17, 24, "time")])."""
    out: list[str] = []
    spans: list[tuple[int, int, str]] = []
    pos = 0
    length = 0
    for m in _ANNOT_RE.finditer(annotated):
        before = annotated[pos : m.start()]
        out.append(before)
        length += len(before)
        value = m.group(2).strip()
        slot_type = m.group(1).strip().replace(" ", "_")
        if value:
            spans.append((length, length + len(value), slot_type))
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(annotated[pos:])
    raw = "".join(out)
    # collapse whitespace while keeping the span offsets valid
    text_chars: list[str] = []
    mapping: list[int] = []  # raw index -> new index
    prev_space = True
    for ch in raw:
        if ch.isspace():
            if prev_space:
                mapping.append(len(text_chars))
                continue
            text_chars.append(" ")
            prev_space = True
        else:
            text_chars.append(ch)
            prev_space = False
        mapping.append(len(text_chars) - 1)
    mapping.append(len(text_chars))
    text = "".join(text_chars).rstrip()
    new_spans = []
    for s, e, t in spans:
        ns = mapping[s]
        ne = mapping[e - 1] + 1 if e > s else ns
        if ne > ns:
            new_spans.append((ns, ne, t))
    return text, new_spans


def load_slurp(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            text, spans = parse_annotation(d["sentence_annotation"])
            rows.append(
                {
                    "text": text,
                    "intent": f"{d['scenario']}_{d['action']}",
                    "spans": spans,
                    "id": d.get("slurp_id"),
                }
            )
    return rows


def load_hwu_csv(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter=";"):
            text, spans = parse_annotation(r["answer_annotation"])
            if not text:
                continue
            rows.append({"text": text, "intent": f"{r['scenario']}_{r['intent']}", "spans": spans})
    return rows


def load_rows(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        rows: list[dict[str, Any]] = []
        for p in sorted(path.rglob("*.csv")):
            rows.extend(load_hwu_csv(p))
        return rows
    if path.suffix == ".csv":
        return load_hwu_csv(path)
    return load_slurp(path)


def _pairs(text: str, spans: Iterable[tuple[int, int, str]]) -> Counter:
    return Counter((t, normalize_dataset(text[s:e])) for s, e, t in spans)


def evaluate(data_path: Path | list[dict[str, Any]], backend: Any, limit: int | None = None) -> dict[str, Any]:
    """Run `backend.parse` over every row; return intent accuracy, slot F1 (overall and per type), confusions."""
    rows = load_rows(Path(data_path)) if not isinstance(data_path, list) else data_path
    if limit is not None:
        rows = rows[:limit]
    correct = 0
    confusions: Counter = Counter()
    per_intent: dict[str, list[int]] = {}
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    latencies = []
    for row in rows:
        t0 = time.perf_counter()
        res = backend.parse(row["text"])
        latencies.append(time.perf_counter() - t0)
        gold_int = row["intent"]
        stats = per_intent.setdefault(gold_int, [0, 0])
        stats[1] += 1
        if res.intent == gold_int:
            correct += 1
            stats[0] += 1
        else:
            confusions[(gold_int, res.intent)] += 1
        gold = _pairs(row["text"], row["spans"])
        pred = Counter((s.name, normalize_dataset(s.value)) for s in res.slots)
        inter = gold & pred
        for (t, _), n in inter.items():
            tp[t] += n
        for (t, _), n in (pred - gold).items():
            fp[t] += n
        for (t, _), n in (gold - pred).items():
            fn[t] += n

    def prf(a: int, b: int, c: int) -> dict[str, float]:
        p = a / (a + b) if a + b else 0.0
        r = a / (a + c) if a + c else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": p, "recall": r, "f1": f, "support": a + c}

    types = sorted(set(tp) | set(fp) | set(fn))
    n = len(rows)
    lat_sorted = sorted(latencies)
    return {
        "n": n,
        "intent_accuracy": correct / n if n else 0.0,
        "slot": prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "slot_per_type": {t: prf(tp[t], fp[t], fn[t]) for t in types},
        "intent_per_label": {k: {"accuracy": v[0] / v[1], "n": v[1]} for k, v in sorted(per_intent.items())},
        "top_confusions": [{"gold": g, "pred": p, "count": c} for (g, p), c in confusions.most_common(15)],
        "latency_ms_median": 1000 * lat_sorted[n // 2] if n else 0.0,
        "backend": getattr(backend, "name", "?"),
        "backend_version": getattr(backend, "version", "?"),
    }


def format_report(metrics: dict[str, Any]) -> str:
    lines = [
        f"NLU evaluation: {metrics['n']} utterances, backend {metrics.get('backend')} {metrics.get('backend_version')}",
        f"  intent accuracy : {metrics['intent_accuracy']:.4f}",
        f"  slot span F1    : {metrics['slot']['f1']:.4f} (P {metrics['slot']['precision']:.4f}, "
        f"R {metrics['slot']['recall']:.4f}, {metrics['slot']['support']} gold slots)",
        f"  median latency  : {metrics.get('latency_ms_median', 0.0):.2f} ms",
    ]
    if sp := metrics.get("spoken"):
        lines.append(
            f"  spoken          : {sp['voice']} voice, {sp.get('noise', 'clean')}, heard by {sp['asr']}; "
            f"mean WER {sp['mean_wer']}"
        )
    lines += [
        "",
        f"  {'slot type':<22} {'P':>6} {'R':>6} {'F1':>6} {'n':>5}",
    ]
    per_type = sorted(metrics["slot_per_type"].items(), key=lambda kv: -kv[1]["support"])
    for t, m in per_type:
        lines.append(f"  {t:<22} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['support']:5d}")
    lines += ["", f"  {'top confusions (gold -> predicted)':<52} {'n':>4}"]
    for c in metrics["top_confusions"]:
        lines.append(f"  {c['gold'] + ' -> ' + c['pred']:<52} {c['count']:4d}")
    return "\n".join(lines)


class SpokenNlu:
    """NLU on what the ASR hears: each gold sentence is synthesized (Piper or espeak-ng), transcribed by the
    pipeline's faster-whisper backend, and the transcript is parsed. Slots are then scored by value."""

    def __init__(
        self,
        nlu,
        voice: str,
        transcripts: Path | None = None,
        asr_model: str | None = None,
        snr_db: float | None = None,
        noise: str = "pink",
    ) -> None:
        from assistant.config import load_settings
        from assistant.core import registry

        settings = load_settings()
        if asr_model:  # another recogniser than pipeline.yaml's (`eval nlu --asr-model base`)
            settings = settings.model_copy(update={"asr": settings.asr.model_copy(update={"model": asr_model})})
        self.nlu, self.voice = nlu, voice
        self.name = f"{getattr(nlu, 'name', '?')} on speech"
        self.version = getattr(nlu, "version", "?")
        # noise added at this SNR; each sentence's noise is seeded by the sentence, so every model (and every run)
        # hears the same noisy audio; the transcripts file keys rows on it
        self.snr_db, self.noise = snr_db, noise
        self.condition = "clean" if snr_db is None else f"{noise}@{snr_db:g}dB"
        self.asr = registry.create("asr", settings.asr.backend, registry.Build(settings=settings))
        self.wers: list[float] = []
        self.transcripts, self.heard = transcripts, {}
        if transcripts is not None and transcripts.exists():
            for line in transcripts.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                same = row.get("voice") == voice and row.get("asr") == self.asr.version
                if same and row.get("noise", "clean") == self.condition:
                    self.heard[row["text"]] = row["heard"]

    def parse(self, text: str, context=None):
        import jiwer

        from assistant.simulate.voices import espeak_speech, piper_speech
        from assistant.text import normalize_dataset as clean

        heard = self.heard.get(text)
        if heard is None:
            audio = piper_speech(text) if self.voice == "piper" else espeak_speech(text)
            if self.snr_db is not None:
                from assistant.simulate.voices import add_colored_noise

                seed = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "big")
                audio = add_colored_noise(audio, self.snr_db, self.noise, seed)
            heard = self.heard[text] = self.asr.transcribe(audio, "en").text
            if self.transcripts is not None:
                row = {"voice": self.voice, "asr": self.asr.version, "noise": self.condition, "text": text}
                with self.transcripts.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row | {"heard": heard}) + "\n")
        if clean(text):
            self.wers.append(jiwer.wer(clean(text), clean(heard) or "-"))
        return self.nlu.parse(heard or " ", context)
