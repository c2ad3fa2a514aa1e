"""`assistant eval nlu --data FILE`: intent accuracy, slot span F1 and confusions of the NLU model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model (nlu)")
    esub = p.add_subparsers(dest="eval_target", metavar="TARGET")
    n = esub.add_parser("nlu", help="evaluate the NLU model on SLURP-style JSONL or an HWU64 CSV file/folder")
    n.add_argument("--data", type=Path, required=True, help="SLURP .jsonl, HWU64 .csv, or a folder of HWU64 CSVs")
    n.add_argument("--model-dir", type=Path, default=None, help="default: models/nlu")
    n.add_argument("--limit", type=int, default=None, help="only the first N rows")
    n.add_argument("--threads", type=int, default=1)
    n.add_argument("--json", action="store_true", help="print the metrics as JSON")
    n.set_defaults(func=run_nlu)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_nlu(args: argparse.Namespace) -> int:
    from assistant.backends.onnx_nlu import OnnxJointNlu
    from assistant.nlu_eval import evaluate, format_report

    if not args.data.exists():
        print(f"data not found: {args.data}")
        return 2
    backend = OnnxJointNlu(args.model_dir, threads=args.threads)
    metrics = evaluate(args.data, backend, limit=args.limit)
    print(json.dumps(metrics, indent=1) if args.json else format_report(metrics))
    return 0
