"""`assistant learn rewrites|index|rollback|evaluate`: self-learning query rewriting from the traces.

Argument parsing only; the jobs are assistant/learning/jobs.py, the A/B is assistant/learning/ab.py and
assistant/simulate/rewrite_ab.py.

- rewrites: label the traces, export them (temp Parquet, opted-out users skipped), mine reformulation chains (DuckDB),
  solve the absorbing Markov chains, write the next rewrite table version and make it current.
- index: build the online retrieval index (successful utterances, global + per user) with the MiniLM embedder.
- signals: signals and defect labels of every turn of an export, on DuckDB or Spark, as versioned Parquet.
- rollback N: make table version N current again (0 turns precomputed rewriting off).
- retrain-nlu / nlu-versions / nlu-rollback / turn-labels-eval: the NLU retrained from labels generated from the
  traces (assistant/learning/nlu_retrain.py, assistant/learning/labels/turn_labels.py).
- evaluate: A/B of defect rate without / with each rewrite layer on the household simulator: train on simulated days,
  test on held-out days and households (assistant/simulate/rewrite_ab.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.cli.common import engine_args
from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings
from assistant.learning.ab import ARMS
from assistant.learning.jobs import learn_index, learn_rewrites, learn_signals, status


def register(sub) -> None:
    p = sub.add_parser("learn", help="learn query rewrites from the traces")
    lsub = p.add_subparsers(dest="learn_cmd", metavar="ACTION")
    q = lsub.add_parser("rewrites", help="mine rephrase chains and write a new precomputed rewrite table")
    q.add_argument("--min-support", type=int, default=3, help="chains behind a rewrite (default 3)")
    q.add_argument("--min-prob", type=float, default=0.7, help="target's success probability (default 0.7)")
    q.add_argument("--min-users", type=int, default=1, help="distinct users behind a rewrite (default 1)")
    q.add_argument(
        "--export",
        help="mine this export (turns.parquet, its folder, a day-partitioned folder; with Spark any URI it reads) "
        "instead of the store",
    )
    q.add_argument("--out", help="also write the mined tables and the rewrite table as Parquet under OUT/vN/ (any URI)")
    engine_args(q)
    q.add_argument(
        "--rephrase-detector",
        choices=["auto", "learned", "lexical"],
        default="auto",
        help="what links a request to its rephrase: the learned span model (models/rephrase) or lexical "
        "similarity; auto (default): learned when models/rephrase exists",
    )
    q.add_argument(
        "--no-goal-labels",
        action="store_true",
        help="do not run the goal labeller first (by default rephrases and corrections are mined inside one goal)",
    )
    q.set_defaults(func=run_rewrites)
    q = lsub.add_parser("index", help="build the online rewrite index from successful turns")
    q.add_argument("--export", help="index this export (file, folder or URI) instead of the store")
    engine_args(q)
    q.set_defaults(func=run_index)
    q = lsub.add_parser(
        "signals", help="signals and defect labels of every exported turn, on the engine, as versioned Parquet"
    )
    q.add_argument("--export", help="label this export (file, folder or URI) instead of exporting the store")
    q.add_argument(
        "--out", help="write the table as Parquet under OUT/vN/ (the next free N; any URI the engine writes)"
    )
    q.add_argument("--gap-seconds", type=float, help="how soon a rephrase or repeat must follow (default 30)")
    q.add_argument("--now", type=float, help="judge recency as of this unix time (default: now)")
    engine_args(q)
    q.set_defaults(func=run_signals)
    q = lsub.add_parser("rollback", help="make an earlier rewrite table version current (0 = none)")
    q.add_argument("version", type=int)
    q.set_defaults(func=run_rollback)
    q = lsub.add_parser(
        "evaluate",
        help="A/B on the household simulator: learn on training days, defect rate on "
        "held-out days/households without and with each rewrite layer",
    )
    q.add_argument(
        "--households",
        type=int,
        default=4,
        help="households simulated for training and tested on their held-out days (default 4)",
    )
    q.add_argument("--heldout-households", type=int, default=2, help="households never seen in training (default 2)")
    q.add_argument("--train-days", type=int, default=4)
    q.add_argument("--test-days", type=int, default=2)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--shared-goals", type=int, default=8, help="popular requests shared by the population (default 8)")
    q.add_argument(
        "--habitual-rephrase",
        type=float,
        default=0.0,
        help="probability a simulated rephrasing is the goal's common one, not a random one (default 0)",
    )
    q.add_argument("--min-support", type=int, default=3, help="`learn rewrites --min-support` (default 3)")
    q.add_argument(
        "--tune-days",
        type=int,
        default=1,
        help="days after training on which the online threshold is tuned before the test days "
        "(default 1; 0 keeps pipeline.yaml's min_online_score)",
    )
    q.add_argument("--min-win-loss", type=float, default=4.0, help="tuning: least win:loss a threshold may have")
    q.add_argument(
        "--personal-meanings",
        type=float,
        default=0.5,
        help="how often a simulated person has each kind of personal meaning ('the big light', 'Portland' = Maine, "
        "'my usual'; default 0.5, 0 = none)",
    )
    q.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        metavar="OUT",
        help="no new run: pool the test days of these finished A/B runs (their --out folders) into one summary",
    )
    q.add_argument(
        "--reuse-train",
        action="store_true",
        help="reuse OUT/train's simulated training days if they were run with the same settings (learning reruns)",
    )
    q.add_argument("--voices", default="piper,espeak")
    q.add_argument("--out", type=Path, default=Path("ab_out"), help="where the runs and ab_result.json go")
    q.add_argument("--cache", type=Path, help="speech + ASR cache (default <data dir>/sim_cache)")
    q.add_argument("--arms", default=",".join(ARMS))
    q.add_argument(
        "--identify-speakers", action="store_true", help="who spoke comes from the speaker stage (not assumed)"
    )
    q.add_argument("--own-voices", action="store_true", help="members who would share a synthetic voice get their own")
    q.set_defaults(func=run_evaluate)
    q = lsub.add_parser("rephrase-eval", help="rephrase detectors (learned vs lexical) against a simulator run's truth")
    q.add_argument("--run", type=Path, required=True, help="a `simulate` output folder (traces.db + sim_truth.jsonl)")
    q.add_argument("--model", type=Path, help="rephrase model folder (default models/rephrase)")
    q.add_argument(
        "--corrections",
        type=float,
        default=0.0,
        help="also turn this share of the rephrases into 'no, I said ...' (tests the span; default 0)",
    )
    q.set_defaults(func=run_rephrase_eval)
    q = lsub.add_parser("status", help="rewrite table versions and index")
    q.set_defaults(func=run_status)
    from assistant.learning.labels import commands as labels_cmd  # goal labels (issue 14)

    q = lsub.add_parser("labels", help="goal ids, goal success and failure points of every turn, into the store")
    q.add_argument("--db", type=Path, help="the trace store (default: the configured one in --data-dir)")
    q.add_argument("--model", type=Path, help="labeller model folder (default models/labels)")
    q.add_argument("--no-counterfactuals", action="store_true", help="skip the counterfactual NLU re-runs")
    q.set_defaults(func=labels_cmd.run_labels)
    q = lsub.add_parser(
        "labels-eval",
        help="goal segmentation, goal success and failure points against a "
        "simulator run's truth (and today's heuristic labels)",
    )
    q.add_argument("--run", type=Path, required=True, help="a `simulate` output folder (traces.db + sim_truth.jsonl)")
    q.add_argument("--model", type=Path, help="labeller model folder (default models/labels)")
    q.add_argument(
        "--no-counterfactuals", action="store_true", help="skip the counterfactual NLU re-runs and ASR re-decodes"
    )
    q.add_argument(
        "--redecode",
        choices=["auto", "on", "off"],
        default="auto",
        help="re-decode kept request audio with a wider beam (auto: if the model was trained with it)",
    )
    q.add_argument("--redecode-cache", type=Path, help="a JSON file that keeps the wider-beam re-decodes between runs")
    q.set_defaults(func=labels_cmd.run_labels_eval)
    from assistant.learning import retrain_commands as retrain_cmd  # the NLU retrains itself (issue 23)

    q = lsub.add_parser(
        "retrain-nlu",
        help="train a new NLU version on labels generated from the traces; promote it only through the gates",
    )
    q.add_argument("--db", type=Path, help="the trace store (default: the configured one in --data-dir)")
    q.add_argument("--since", default=None, help="turns since: 30d, or a date (default: every turn the store keeps)")
    q.add_argument("--until", default=None, help="turns before this date / N days ago (default: now)")
    q.add_argument("--min-confidence", type=float, default=0.8, help="generated labels kept (default 0.8)")
    q.add_argument("--epochs", type=int, default=1, help="epochs of the warm-started training (default 1)")
    q.add_argument("--lr", type=float, default=3e-5, help="encoder learning rate (default 3e-5)")
    q.add_argument(
        "--corpus-fraction", type=float, default=0.25, help="share of the corpora replayed beside the labels (0.25)"
    )
    q.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    q.add_argument(
        "--heldout-runs",
        type=Path,
        nargs="+",
        default=[],
        help="simulator runs (traces.db + sim_truth.jsonl) not in the store: the held-out days gate",
    )
    q.add_argument("--spoken-limit", type=int, default=200, help="SLURP test sentences of the spoken gate (200)")
    q.add_argument("--dry-run", action="store_true", help="build and count the training set only; train nothing")
    q.set_defaults(func=retrain_cmd.run_retrain)
    q = lsub.add_parser(
        "retrain-loop",
        help="simulated weeks, each arm learning weekly from its own traces (rewrites, NLU retraining)",
    )
    q.add_argument("--out", type=Path, required=True, help="output folder (weeks, arms' stores, loop_result.json)")
    q.add_argument("--households", type=int, default=3)
    q.add_argument("--weeks", type=int, default=3, help="weeks including the shared week 0 (default 3)")
    q.add_argument("--days-per-week", type=int, default=7)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument(
        "--arms",
        default="rewrites,rewrites+retrain",
        help="comma list of none, rewrites, retrain, rewrites+retrain (default rewrites,rewrites+retrain)",
    )
    q.add_argument("--heldout-households", type=int, default=2, help="households of the held-out gate run (2)")
    q.add_argument("--heldout-days", type=int, default=2)
    q.add_argument("--min-confidence", type=float, default=0.7, help="generated labels kept for retraining (0.7)")
    q.add_argument("--threads", type=int, default=1, help="torch threads of the retraining (default 1)")
    q.add_argument("--cache", type=Path, help="speech + ASR cache folder (default OUT/speech_cache)")
    q.add_argument("--max-turns", type=int, help="stop each simulator run after this many turns (smoke tests)")
    q.add_argument("--report", action="store_true", help="only print the result of the loop in --out")
    q.set_defaults(func=retrain_cmd.run_loop)
    q = lsub.add_parser("nlu-versions", help="retrained NLU versions in the data dir and the one in use")
    q.set_defaults(func=retrain_cmd.run_versions)
    q = lsub.add_parser("nlu-rollback", help="use an earlier retrained NLU version (0 = the shipped model)")
    q.add_argument("version", type=int)
    q.set_defaults(func=retrain_cmd.run_rollback)
    q = lsub.add_parser(
        "turn-labels-eval",
        help="generated intent/slot labels against simulator truth, by confidence, vs the NLU's own parse",
    )
    q.add_argument("--runs", type=Path, nargs="+", required=True, help="`simulate` output folders")
    q.add_argument("--label-model", type=Path, help="default models/labels/turn_label.json ('prior': none)")
    q.set_defaults(func=retrain_cmd.run_turn_labels_eval)
    for q in lsub.choices.values():
        q.add_argument("--data-dir", type=Path, help="where traces.db and rewrites/ live")
        q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
        q.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or default_data_dir())


def run_rewrites(args: argparse.Namespace) -> int:
    s = learn_rewrites(
        _data_dir(args),
        args.export,
        args.min_support,
        args.min_prob,
        args.min_users,
        args.config,
        args.rephrase_detector,
        engine=args.engine,
        spark_master=args.spark_master,
        out=args.out,
        goals=not args.no_goal_labels,
    )
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
        return 0
    m, v = s["mining"], s["solve"]
    det = (
        f"learned ({m.get('rephrase_model')}, {m.get('detected_pairs')} pairs in {m.get('detect_seconds')} s)"
        if m.get("rephrase_detector") == "learned"
        else "lexical"
    )
    print(f"engine: {m.get('engine')}; rephrase detector: {det}")
    if not m.get("turns_with_goal_id") and m.get("turns"):
        print(
            "no goal ids in the export (no goal labeller in models/labels, or --no-goal-labels): rephrases were "
            "linked across goals too"
        )
    print(
        f"mined {m['turns']} turns ({m['linked_turns']} rephrased) -> {m['states']} utterances, {m['edges']} "
        f"transitions, {v['clusters']} clusters in {m['seconds']} s; solved in {v['seconds']} s"
    )
    print(
        f"rewrite table v{s['version']}: {s['rewrites']} rewrites (now current; `assistant learn rollback N` to undo)"
    )
    for src, e in list(s["table"].items())[:20]:
        print(
            f"  {src!r} -> {e['target']!r}  p={e['probability']:.2f} (was {e['baseline']:.2f}), "
            f"support {e['support']} chains / {e['users']} users"
        )
    return 0


def run_index(args: argparse.Namespace) -> int:
    meta = learn_index(
        _data_dir(args), args.export, config=args.config, engine=args.engine, spark_master=args.spark_master
    )
    if args.json:
        print(json.dumps(meta))
    else:
        print(
            f"online index v{meta['version']}: {meta['entries']} utterances, {meta['users']} users, "
            f"{meta['personal_rows']} personal rows ({meta['embed_seconds']} s embedding, {meta['seconds']} s total)"
        )
    return 0


def run_signals(args: argparse.Namespace) -> int:
    s = learn_signals(
        _data_dir(args),
        args.export,
        args.out,
        config=args.config,
        engine=args.engine,
        spark_master=args.spark_master,
        gap_seconds=args.gap_seconds,
        now=args.now,
    )
    if args.json:
        print(json.dumps(s))
        return 0
    labels = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
    print(f"engine: {s['engine']}; {s['turns']} turns labelled in {s['seconds']} s ({s['labeler_version']}): {labels}")
    if s["signals"]:
        print("signals: " + ", ".join(f"{k} {v}" for k, v in s["signals"].items()))
    if s.get("out"):
        print(f"written: {s['out']}")
    return 0


def run_rephrase_eval(args: argparse.Namespace) -> int:
    from assistant.learning.rephrase_eval import evaluate_run, to_markdown

    res = evaluate_run(args.run, corrections=args.corrections, model_dir=args.model)
    print(json.dumps(res, indent=1) if args.json else to_markdown(res))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from assistant.learning.markov import rollback

    v = rollback(_data_dir(args), args.version)
    print(
        json.dumps({"current": v})
        if args.json
        else (f"rewrite table v{v} is current" if v else "precomputed rewriting is off (no current table)")
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    print(json.dumps(status(_data_dir(args)), indent=None if args.json else 1))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Train on simulated days, then the A/B on held-out days and households (assistant/simulate/rewrite_ab.py)."""
    import sys

    from assistant.learning.ab import format_ab, format_arms
    from assistant.simulate.rewrite_ab import ABConfig, pool, run_ab

    if args.pool:
        res = pool(args.pool)
        print(json.dumps(res, default=str) if args.json else format_arms(res["arms"]))
        return 0

    cfg = ABConfig(
        households=args.households,
        heldout_households=args.heldout_households,
        train_days=args.train_days,
        test_days=args.test_days,
        seed=args.seed,
        shared_goals=args.shared_goals,
        habitual_rephrase=args.habitual_rephrase,
        min_support=args.min_support,
        tune_days=args.tune_days,
        min_win_loss=args.min_win_loss,
        personal_meanings=args.personal_meanings,
        reuse_train=args.reuse_train,
        voices=tuple(v.strip() for v in args.voices.split(",") if v.strip()),
        identify_speakers=args.identify_speakers,
        own_voices=args.own_voices,
    )
    res = run_ab(
        load_settings(args.config),
        args.out,
        cfg,
        args.cache or _data_dir(args) / "sim_cache",
        tuple(a.strip() for a in args.arms.split(",") if a.strip()),
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps(res, default=str))
        return 0
    print(format_ab(res))
    return 0
