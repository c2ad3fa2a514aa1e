"""What `assistant learn retrain-nlu | nlu-versions | nlu-rollback | turn-labels-eval` run (argument parsing is in
assistant/cli/learn.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.errors import AssistantError


def _data_dir(args: argparse.Namespace) -> Path:
    from assistant.config import default_data_dir

    return Path(args.data_dir or default_data_dir())


def _since(value: str | None) -> float | None:
    from assistant.trace.export import parse_since

    return None if not value else parse_since(value)


def run_retrain(args: argparse.Namespace) -> int:
    from assistant.learning.labels.commands import store_path
    from assistant.learning.nlu_retrain import RetrainConfig, build_training_set, retrain
    from assistant.trace.store import TraceStore

    path = store_path(args)
    if not path.exists():
        raise AssistantError("no-traces", f"No trace store at {path}: run `assistant replay`, `say` or `listen` first.")
    cfg = RetrainConfig(
        since=_since(args.since),
        until=_since(args.until),
        min_confidence=args.min_confidence,
        epochs=args.epochs,
        lr=args.lr,
        corpus_fraction=args.corpus_fraction,
        threads=args.threads,
        heldout_runs=[str(r) for r in args.heldout_runs],
        spoken_limit=args.spoken_limit,
    )
    for r in cfg.heldout_runs:
        if not (Path(r) / "sim_truth.jsonl").is_file() or not (Path(r) / "traces.db").is_file():
            raise AssistantError("bad-heldout-run", f"{r}: not a simulator run (needs traces.db and sim_truth.jsonl).")
    store = TraceStore(path, read_only=True)
    try:
        if args.dry_run:
            _rows, stats, _ids = build_training_set(store, _data_dir(args), cfg)
            print(json.dumps(stats, indent=None if args.json else 1))
            return 0
        res = retrain(store, _data_dir(args), cfg, progress=not args.json)
    finally:
        store.close()
    if args.json:
        print(json.dumps(res, default=str))
        return 0
    print(f"training set: {res['data']['labels']} generated labels ({res['data']['labels_by_source']})")
    for g, r in (res.get("gates") or {}).items():
        print(
            f"  gate {g}: {'passed' if r['passed'] else 'FAILED'} ({r.get('current')} -> {r.get('candidate')}; "
            f"{r['rule']})"
        )
    if res.get("promoted"):
        print(f"promoted: NLU v{res['version']} is now current (`assistant learn nlu-rollback 0` for the shipped one)")
    else:
        print(f"not promoted: {res.get('why') or 'a gate failed'}; candidate kept in {res.get('candidate_dir')}")
    return 0


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_loop(args: argparse.Namespace) -> int:
    from assistant.config import load_settings
    from assistant.simulate.retrain_loop import LoopConfig, RetrainLoop, report, to_markdown

    if args.report:
        if not (Path(args.out) / "loop_result.json").is_file():
            raise AssistantError(
                "no-loop-result", f"{args.out}: no loop_result.json (the loop has not finished there)."
            )
        res = report(args.out)
        print(json.dumps(res, default=str) if args.json else to_markdown(res))
        return 0

    cfg = LoopConfig(
        households=args.households,
        weeks=args.weeks,
        days_per_week=args.days_per_week,
        seed=args.seed,
        arms=tuple(a.strip() for a in args.arms.split(",") if a.strip()),
        heldout_households=args.heldout_households,
        heldout_days=args.heldout_days,
        min_confidence=args.min_confidence,
        threads=args.threads,
        max_turns=args.max_turns,
    )
    try:
        loop = RetrainLoop(
            load_settings(args.config), args.out, cfg, args.cache, progress=None if args.json else _stderr
        )
    except ValueError as e:
        raise AssistantError("bad-loop-config", f"{e}.") from None
    res = loop.run()
    print(json.dumps(res, default=str) if args.json else to_markdown(res))
    return 0


def run_versions(args: argparse.Namespace) -> int:
    from assistant.learning.nlu_retrain import status

    s = status(_data_dir(args))
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"NLU in use: v{s['current']} ({s['model_dir']})")
    for v in s["versions"]:
        print(f"  v{v['version']} {v['created_at']}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from assistant.learning.nlu_retrain import current_model_dir, rollback

    v = rollback(_data_dir(args), args.version)
    msg = {"current": v, "model_dir": str(current_model_dir(_data_dir(args)))}
    print(json.dumps(msg) if args.json else f"NLU v{v} is current ({msg['model_dir']})")
    return 0


def run_turn_labels_eval(args: argparse.Namespace) -> int:
    from assistant.learning.labels.labeller import Labeller, rephrase_detector
    from assistant.learning.labels.turn_label_eval import evaluate_runs, format_eval
    from assistant.learning.labels.turn_labels import TurnLabelModel

    for r in args.runs:
        if not (Path(r) / "sim_truth.jsonl").is_file():
            raise AssistantError("bad-run", f"{r}: not a simulator run (no sim_truth.jsonl).")
    model = TurnLabelModel(None) if str(args.label_model) == "prior" else TurnLabelModel.load(args.label_model)
    res = evaluate_runs(list(args.runs), Labeller.load(), rephrase_detector(), model)
    print(json.dumps(res, indent=1) if args.json else format_eval(res))
    return 0
