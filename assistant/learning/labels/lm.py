"""A small word bigram language model of voice-assistant requests: how plausible a transcript is as something a
person says to an assistant. Misrecognised requests ("Right to the side and tap us in.") score low; a request said
right but misunderstood by the NLU scores like any request. The failure point model reads its per-word log
probability, its worst word and the share of words it has never seen.

Interpolated absolute discounting (D = 0.75) over Kneser-Ney continuation unigrams; numbers (digits and number
words) are one token. Built from SLURP's LM text (`slurp/lm.txt`, CC BY 4.0) *minus every SLURP devel/test sentence*
(the simulator speaks those), saved as gzipped JSON in models/labels/lm.json.gz.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

_NUMBER_WORDS = frozenset(
    (
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen "
        "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand first second third "
        "fourth fifth"
    ).split()
)
D = 0.75


def tokens(text: str) -> list[str]:
    words = re.sub(r"[^\w' ]+", " ", (text or "").lower().replace("’", "'")).split()
    return [
        "<num>" if (w.isdigit() or w in _NUMBER_WORDS or re.fullmatch(r"\d+(st|nd|rd|th|s)", w)) else w for w in words
    ]


class BigramLM:
    def __init__(self, bigrams: dict[str, int], context: dict[str, list[int]], continuation: dict[str, int]) -> None:
        self.bigrams = bigrams
        """"v w" -> count"""
        self.context = context
        """v -> [count of v as a context, distinct words after v]"""
        self.continuation = continuation
        """w -> distinct words before w"""
        self.total_cont = sum(continuation.values())
        self.vocab = len(continuation)

    @classmethod
    def build(cls, sentences: list[str]) -> BigramLM:
        big: Counter[str] = Counter()
        for s in sentences:
            toks = ["<s>", *tokens(s), "</s>"]
            for a, b in itertools.pairwise(toks):
                big[f"{a} {b}"] += 1
        context: dict[str, list[int]] = {}
        cont: Counter[str] = Counter()
        for key, c in big.items():
            a, b = key.split(" ")
            e = context.setdefault(a, [0, 0])
            e[0] += c
            e[1] += 1
            cont[b] += 1
        return cls(dict(big), context, dict(cont))

    def p_uni(self, w: str) -> float:
        return (self.continuation.get(w, 0) + 0.5) / (self.total_cont + 0.5 * (self.vocab + 1))

    def p(self, v: str, w: str) -> float:
        ctx = self.context.get(v)
        if not ctx:
            return self.p_uni(w)
        c = self.bigrams.get(f"{v} {w}", 0)
        return max(c - D, 0.0) / ctx[0] + D * ctx[1] / ctx[0] * self.p_uni(w)

    def score(self, text: str) -> dict[str, float]:
        """lm_logp: mean log10 probability per token (with the end of sentence); lm_min: the worst token;
        lm_oov: share of words never seen; lm_unseen_bigrams: share of word pairs never seen."""
        words = tokens(text)
        if not words:
            return {"lm_logp": -6.0, "lm_min": -6.0, "lm_oov": 1.0, "lm_unseen_bigrams": 1.0}
        toks = ["<s>", *words, "</s>"]
        lps = [math.log10(self.p(a, b)) for a, b in itertools.pairwise(toks)]
        pairs = list(itertools.pairwise(toks))
        return {
            "lm_logp": sum(lps) / len(lps),
            "lm_min": min(lps),
            "lm_oov": sum(w not in self.continuation for w in words) / len(words),
            "lm_unseen_bigrams": sum(f"{a} {b}" not in self.bigrams for a, b in pairs) / len(pairs),
        }

    def save(self, path: Path) -> None:
        data = {"bigrams": self.bigrams, "context": self.context, "continuation": self.continuation}
        raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
        with Path(path).open("wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as f:
            f.write(raw)  # no timestamp in the header: the same data gives the same bytes

    @classmethod
    def load(cls, path: Path) -> BigramLM:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            d: dict[str, Any] = json.load(f)
        return cls(d["bigrams"], d["context"], d["continuation"])


def build_from_shared(shared: Path) -> tuple[BigramLM, dict[str, int]]:
    """SLURP lm.txt minus SLURP devel/test sentences (normalised)."""
    held = set()
    for name in ("devel.jsonl", "test.jsonl"):
        with (shared / "slurp" / name).open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    held.add(" ".join(tokens(json.loads(line)["sentence"])))
    lines = [x.strip() for x in (shared / "slurp" / "lm.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
    kept = [x for x in lines if " ".join(tokens(x)) not in held]
    return BigramLM.build(kept), {"lines": len(lines), "kept": len(kept), "dropped_heldout": len(lines) - len(kept)}
