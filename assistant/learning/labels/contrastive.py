"""Self-supervised pretraining on synthetic contrastive data from the traces (issue 23).

No truth and no annotation: every turn of the store is a positive pair (the request's words, what the assistant made
of them); the same words with what it made of *another* dialogue's request are a synthetic defect. Two small models
learn which pairs are real:

- `intent`: request words x intent (does this intent go with these words?);
- `answer`: request words x (action name, response words) (does this answer go with these words?).

Most turns are understood right, so a real pair the models find unlikely is a sign of a misunderstanding, and a
generated label's intent that fits the words better than the parse did is a sign the label is right. Their scores
are features of the turn-label confidence model (`turn_labels.TurnLabelModel`).

Logistic regression over hashed feature pairs (2^18 buckets), full-batch AdaGrad in numpy (`np.bincount` does the
sparse sums): a few seconds for tens of thousands of turns.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DIM = 1 << 18
_STOP = frozenset(
    {"the", "a", "an", "to", "of", "please", "can", "you", "me", "my", "i", "is", "it", "for", "on", "in"}
)


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9']+", (text or "").lower()) if w not in _STOP][:16]


def _h(s: str) -> int:
    return zlib.crc32(s.encode()) & (DIM - 1)


def intent_features(text: str, intent: str | None) -> list[int]:
    ws = _words(text)
    i = intent or "-"
    return [_h(f"i|{i}")] + [_h(f"wi|{w}|{i}") for w in ws]


def answer_features(text: str, action: str, response: str) -> list[int]:
    ws = _words(text)
    rs = _words(response)[:10]
    out = [_h(f"a|{action}")] + [_h(f"wa|{w}|{action}") for w in ws]
    out += [_h(f"wr|{w}|{r}") for w in ws for r in rs]
    return out


@dataclass
class PairModel:
    weights: np.ndarray = field(default_factory=lambda: np.zeros(DIM, dtype=np.float32))
    bias: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, feats: list[list[int]]) -> np.ndarray:
        if not feats:
            return np.zeros(0)
        ex = np.repeat(np.arange(len(feats)), [len(f) for f in feats])
        flat = np.fromiter((i for f in feats for i in f), dtype=np.int64, count=len(ex))
        z = np.bincount(ex, weights=self.weights[flat], minlength=len(feats)) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    @classmethod
    def fit(cls, pos: list[list[int]], neg: list[list[int]], iters: int = 150, lr: float = 0.5, l2: float = 1e-4):
        feats = pos + neg
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        ex = np.repeat(np.arange(len(feats)), [len(f) for f in feats])
        flat = np.fromiter((i for f in feats for i in f), dtype=np.int64, count=len(ex))
        w = np.zeros(DIM)
        b = 0.0
        g2 = np.full(DIM, 1e-8)
        n = len(feats)
        for _ in range(iters):
            z = np.bincount(ex, weights=w[flat], minlength=n) + b
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
            r = p - y
            grad = np.bincount(flat, weights=r[ex], minlength=DIM) / n + l2 * w
            g2 += grad * grad
            w -= lr * grad / np.sqrt(g2)
            b -= lr * float(r.mean())
        m = cls(w.astype(np.float32), b)
        p = m.score(feats)
        m.meta = {"pairs": len(pos), "synthetic_defects": len(neg), "train_accuracy": float(((p >= 0.5) == y).mean())}
        return m


@dataclass
class Contrastive:
    """The two pair models and what they say about one turn and its candidate label."""

    intent: PairModel
    answer: PairModel

    def features(self, text: str, parsed: str | None, label: str, action: str, response: str) -> dict[str, float]:
        p_parse, p_label = self.intent.score([intent_features(text, parsed), intent_features(text, label)])
        (p_ans,) = self.answer.score([answer_features(text, action, response)])
        return {
            "cx_parse_fit": float(p_parse),
            "cx_label_fit": float(p_label),
            "cx_label_gain": float(p_label - p_parse),
            "cx_answer_fit": float(p_ans),
        }

    def save(self, path: Path) -> None:
        """Sparse (non-zero buckets only) so the file stays small."""
        out = {}
        for name, m in (("intent", self.intent), ("answer", self.answer)):
            nz = np.flatnonzero(np.abs(m.weights) > 1e-4)
            out[name] = {"idx": nz.tolist(), "w": np.round(m.weights[nz], 4).tolist(), "bias": m.bias, "meta": m.meta}
        Path(path).write_text(json.dumps(out), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Contrastive:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        ms = []
        for name in ("intent", "answer"):
            w = np.zeros(DIM, dtype=np.float32)
            w[np.array(d[name]["idx"], dtype=np.int64)] = np.array(d[name]["w"], dtype=np.float32)
            ms.append(PairModel(w, float(d[name]["bias"]), d[name].get("meta", {})))
        return cls(*ms)


def pretrain(turns: list[dict[str, Any]], negatives: int = 2, seed: int = 0) -> Contrastive:
    """`turns`: dicts with transcript, intent, action, response, session (any turns of the store; no labels).
    Each real pair gets `negatives` synthetic defects: the same words with another session's intent / answer."""
    rng = np.random.default_rng(seed)
    turns = [t for t in turns if t.get("transcript") and t.get("intent")]
    n = len(turns)
    if n < 2:
        raise ValueError("pretraining needs at least two turns with a transcript and an intent")
    pos_i = [intent_features(t["transcript"], t["intent"]) for t in turns]
    pos_a = [answer_features(t["transcript"], t["action"], t["response"]) for t in turns]
    neg_i, neg_a = [], []
    for t in turns:
        for _ in range(negatives):
            j = int(rng.integers(n))
            for _try in range(5):  # another dialogue's turn that did something else
                o = turns[j]
                if o["session"] != t["session"] and o["intent"] != t["intent"]:
                    break
                j = int(rng.integers(n))
            o = turns[j]
            neg_i.append(intent_features(t["transcript"], o["intent"]))
            neg_a.append(answer_features(t["transcript"], o["action"], o["response"]))
    return Contrastive(PairModel.fit(pos_i, neg_i), PairModel.fit(pos_a, neg_a))
