"""`assistant eval nlu --data FILE`: intent accuracy, slot span F1 and confusions of the NLU model.
`assistant eval actions --suite FILE [--home FILE]`: what requests do to a home (action accuracy, wrong devices).
`assistant eval teach [--suite FILE] [--spoken piper]`: teaching dialogues (handled end to end, later use, latency)."""

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
    n.add_argument(
        "--spoken",
        choices=["piper", "espeak"],
        help="speak each sentence with this voice and evaluate on what the ASR heard (slow: ~0.5 s a row)",
    )
    n.add_argument(
        "--asr-model",
        default=None,
        help="with --spoken: the recogniser (tiny.en, base, or a CTranslate2 directory; default: pipeline.yaml's)",
    )
    n.add_argument(
        "--snr",
        type=float,
        default=None,
        help="with --spoken: add noise at this signal-to-noise ratio in dB (e.g. 20, 10, 5; default clean)",
    )
    n.add_argument(
        "--noise",
        choices=["white", "pink", "brown"],
        default="pink",
        help="with --snr: the noise's colour (pink, like fans and traffic, by default)",
    )
    n.add_argument(
        "--transcripts",
        type=Path,
        default=None,
        help="with --spoken: a JSON Lines file of what the ASR heard, reused and extended, so another NLU "
        "model is evaluated on the same transcripts without synthesizing and decoding again",
    )
    n.add_argument("--json", action="store_true", help="print the metrics as JSON")
    n.set_defaults(func=run_nlu)
    a = esub.add_parser("actions", help="run home requests through the pipeline and judge the home state they leave")
    a.add_argument(
        "--suite",
        type=Path,
        default=None,
        help="JSON Lines suite (default: assistant/data/eval/actions.jsonl; format in assistant/home/eval_actions.py)",
    )
    a.add_argument("--home", type=Path, default=None, help="run every case on this home file instead of the case's")
    a.add_argument("--form", default=None, help="only the cases of this command form")
    a.add_argument(
        "--spoken",
        choices=["piper", "espeak"],
        help="speak each request with this voice and run it from the ASR on (slow: ~0.5 s a case)",
    )
    a.add_argument("--json", action="store_true", help="print the metrics (and every failure) as JSON")
    a.set_defaults(func=run_actions)
    t = esub.add_parser("teach", help="run teaching dialogues (define, use, edit, forget) through the pipeline")
    t.add_argument(
        "--suite",
        type=Path,
        default=None,
        help="YAML dialogues (default: assistant/data/eval/teach_dialogues.yaml; format in "
        "assistant/understanding/teach/eval_dialogues.py)",
    )
    t.add_argument("--form", default=None, help="only the dialogues of this form")
    t.add_argument("--limit", type=int, default=None, help="only the first N dialogues")
    t.add_argument(
        "--spoken",
        choices=["piper", "espeak"],
        help="speak every turn with this voice and run it from the ASR on (slow: ~0.5 s a turn)",
    )
    t.add_argument("--json", action="store_true", help="print the metrics (and every failure) as JSON")
    t.set_defaults(func=run_teach)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_actions(args: argparse.Namespace) -> int:
    import sys

    from assistant.home.eval_actions import DEFAULT_SUITE, format_report, load_suite, run_suite

    suite = args.suite or DEFAULT_SUITE
    cases = load_suite(suite)
    if args.form:
        cases = [c for c in cases if c.get("form") == args.form]
    if args.home is not None and not args.home.is_file():
        print(f"home file not found: {args.home}", file=sys.stderr)
        return 2

    def progress(i: int, n: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{i}/{n}", end="", file=sys.stderr, flush=True)

    metrics = run_suite(cases, args.home, suite_dir=Path(suite).parent, progress=progress, spoken=args.spoken)
    print(json.dumps(metrics, indent=1, ensure_ascii=False, default=str) if args.json else format_report(metrics))
    return 0


def run_teach(args: argparse.Namespace) -> int:
    import sys

    from assistant.understanding.teach.eval_dialogues import (
        DEFAULT_SUITE,
        format_report,
        load_dialogues,
        run_dialogues,
    )

    dialogues = load_dialogues(args.suite or DEFAULT_SUITE)
    if args.form:
        dialogues = [d for d in dialogues if d.get("form") == args.form]
    dialogues = dialogues[: args.limit] if args.limit else dialogues

    def progress(i: int, n: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{i}/{n}", end="", file=sys.stderr, flush=True)

    metrics = run_dialogues(dialogues, spoken=args.spoken, progress=progress)
    print(json.dumps(metrics, indent=1, ensure_ascii=False, default=str) if args.json else format_report(metrics))
    return 0


def run_nlu(args: argparse.Namespace) -> int:
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.training.nlu_eval import evaluate, format_report

    rows = load_eval_rows(args.data)
    backend = OnnxJointNlu(args.model_dir, threads=args.threads)
    if args.spoken:
        from assistant.training.nlu_eval import SpokenNlu

        backend = SpokenNlu(backend, args.spoken, args.transcripts, args.asr_model, args.snr, args.noise)
    elif args.snr is not None:
        from assistant.errors import AssistantError

        raise AssistantError("snr-needs-spoken", "--snr adds noise to speech: use it with --spoken piper|espeak.")
    metrics = evaluate(rows, backend, limit=args.limit)
    if args.spoken:
        import statistics

        metrics["spoken"] = {
            "voice": args.spoken,
            "asr": backend.asr.version,
            "noise": backend.condition,
            "mean_wer": round(statistics.fmean(backend.wers), 4) if backend.wers else None,
        }
    print(json.dumps(metrics, indent=1) if args.json else format_report(metrics))
    return 0


SLURP_FIELDS = ("sentence_annotation", "scenario", "action")
HWU_FIELDS = ("answer_annotation", "scenario", "intent")


def load_eval_rows(path: Path) -> list[dict]:
    """The evaluation rows, or an AssistantError naming the file, the line and the missing fields."""
    import csv

    from assistant.errors import AssistantError
    from assistant.training.nlu_eval import load_rows

    def bad(msg: str) -> AssistantError:
        return AssistantError(
            "eval-data-invalid",
            f"{path}: {msg}. Expected SLURP JSON Lines (one object a line with "
            f"{', '.join(SLURP_FIELDS)}) or HWU64 CSV (';'-separated, columns "
            f"{', '.join(HWU_FIELDS)}).",
        )

    if not path.exists():
        raise AssistantError("eval-data-not-found", f"{path}: no such file or folder.")
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise bad("the folder holds no .csv files")
    for f in files:
        try:
            with f.open(encoding="utf-8") as fh:
                if f.suffix == ".csv":
                    header = next(csv.reader(fh, delimiter=";"), [])
                    missing = [k for k in HWU_FIELDS if k not in header]
                    if missing:
                        raise bad(f"{f.name} has no column(s) {', '.join(missing)}")
                    continue
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as err:
                        raise bad(f"line {n} is not JSON ({err})") from None
                    if not isinstance(row, dict):
                        raise bad(f"line {n} is not a JSON object")
                    missing = [k for k in SLURP_FIELDS if not isinstance(row.get(k), str)]
                    if missing:
                        raise bad(f"line {n} has no text field(s) {', '.join(missing)}")
        except UnicodeDecodeError as err:
            raise bad(f"{f.name} is not UTF-8 text ({err.reason})") from None
        except IsADirectoryError:
            raise bad(f"{f} is a directory") from None
    try:
        rows = load_rows(path)
    except (KeyError, ValueError, IndexError, TypeError) as err:  # an annotation the parser cannot read
        raise bad(f"an annotation cannot be parsed ({type(err).__name__}: {err})") from None
    if not rows:
        raise bad("it holds no rows")
    return rows
