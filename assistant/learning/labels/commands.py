"""What `assistant learn labels | labels-eval` run (argument parsing is in assistant/cli/learn.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.errors import AssistantError


def store_path(args: argparse.Namespace) -> Path:
    """--db, else the configured trace store under --data-dir (the default data dir)."""
    if getattr(args, "db", None):
        return Path(args.db)
    from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings

    settings = load_settings(getattr(args, "config", None) or DEFAULT_PIPELINE)
    db = Path(settings.traces.db)
    data_dir = Path(getattr(args, "data_dir", None) or default_data_dir())
    return db if db.is_absolute() else data_dir / db


def run_labels(args: argparse.Namespace) -> int:
    from assistant.learning.labels.labeller import label_store
    from assistant.trace.store import TraceStore

    path = store_path(args)
    if not path.exists():
        raise AssistantError("no-traces", f"No trace store at {path}: run `assistant replay`, `say` or `listen` first.")
    store = TraceStore(path)
    try:
        res = label_store(store, args.model, counterfactuals=not args.no_counterfactuals)
    finally:
        store.close()
    if args.json:
        print(json.dumps(res))
        return 0
    print(
        f"labelled {res['turns']} turns in {res['goals']} goals ({res['failed_goals']} failed), "
        f"{res['defective_turns']} defective turns: "
        + (", ".join(f"{k} {v}" for k, v in res["failure_points"].items()) or "none")
        + f" ({res['labeler_version']}, {res['seconds']} s, {res['turns_per_second']} turns/s)"
    )
    return 0


def run_labels_eval(args: argparse.Namespace) -> int:
    from assistant.learning.labels.evaluate import evaluate_run

    res = evaluate_run(
        args.run,
        args.model,
        counterfactuals=not args.no_counterfactuals,
        redecode_cache=args.redecode_cache,
        redecode={"auto": None, "on": True, "off": False}[args.redecode],
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    h = res["heuristic"]
    print(
        f"{res['run']}: {res['counts']['turns']} turns, {res['counts']['true_goals']} goals ({res['labeler_version']})"
    )
    print(
        f"goal segmentation F1   {res['goal_segmentation_f1']:.4f}  (heuristic signals "
        f"{h['goal_segmentation_f1_signals']:.4f}, one turn per goal "
        f"{h['goal_segmentation_f1_one_turn_per_goal']:.4f})"
    )
    print(f"goal success accuracy  {res['goal_success_accuracy']:.4f}  (heuristic {h['goal_success_accuracy']:.4f})")
    fpa, hfpa = res["failure_point_accuracy"], h["failure_point_accuracy"]
    print(f"failure point accuracy {fpa if fpa is None else round(fpa, 4)}  (heuristic {hfpa})")
    print(f"turn defect F1         {res['turn_defect']['f1']:.4f}  (heuristic {h['turn_defect']['f1']:.4f})")
    print("confusion (truth -> predicted): " + json.dumps(res["confusion"]))
    print(f"labelling: {res['turns_per_second']} turns/s")
    return 0
