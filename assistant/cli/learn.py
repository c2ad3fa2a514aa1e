"""`assistant learn rewrites|index|rollback|evaluate`: self-learning query rewriting from the traces.

- rewrites: label the traces, export them (temp Parquet, opted-out users skipped), mine reformulation chains (DuckDB),
  solve the absorbing Markov chains, write the next rewrite table version and make it current.
- index: build the online retrieval index (successful utterances, global + per user) with the MiniLM embedder.
- rollback N: make table version N current again (0 turns precomputed rewriting off).
- evaluate: A/B of defect rate without / with each rewrite layer on the household simulator: train on simulated days,
  test on held-out days and households (assistant/simulate/rewrite_ab.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings
from assistant.errors import AssistantError


def register(sub) -> None:
    p = sub.add_parser("learn", help="learn query rewrites from the traces")
    lsub = p.add_subparsers(dest="learn_cmd", metavar="ACTION")
    q = lsub.add_parser("rewrites", help="mine rephrase chains and write a new precomputed rewrite table")
    q.add_argument("--min-support", type=int, default=3, help="chains behind a rewrite (default 3)")
    q.add_argument("--min-prob", type=float, default=0.7, help="target's success probability (default 0.7)")
    q.add_argument("--min-users", type=int, default=1, help="distinct users behind a rewrite (default 1)")
    q.add_argument("--export", type=Path, help="mine this export (turns.parquet or its folder) instead of the store")
    q.add_argument("--rephrase-detector", choices=["auto", "learned", "lexical"], default="auto",
                   help="what links a request to its rephrase: the learned span model (models/rephrase) or lexical "
                        "similarity; auto (default): learned when models/rephrase exists")
    q.set_defaults(func=run_rewrites)
    q = lsub.add_parser("index", help="build the online rewrite index from successful turns")
    q.add_argument("--export", type=Path, help="index this export instead of the store")
    q.set_defaults(func=run_index)
    q = lsub.add_parser("rollback", help="make an earlier rewrite table version current (0 = none)")
    q.add_argument("version", type=int)
    q.set_defaults(func=run_rollback)
    q = lsub.add_parser("evaluate", help="A/B on the household simulator: learn on training days, defect rate on "
                                         "held-out days/households without and with each rewrite layer")
    q.add_argument("--households", type=int, default=4, help="households simulated for training and tested on "
                                                              "their held-out days (default 4)")
    q.add_argument("--heldout-households", type=int, default=2, help="households never seen in training (default 2)")
    q.add_argument("--train-days", type=int, default=4)
    q.add_argument("--test-days", type=int, default=2)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--shared-goals", type=int, default=8, help="popular requests shared by the population (default 8)")
    q.add_argument("--habitual-rephrase", type=float, default=0.0,
                   help="probability a simulated rephrasing is the goal's common one, not a random one (default 0)")
    q.add_argument("--min-support", type=int, default=3, help="`learn rewrites --min-support` (default 3)")
    q.add_argument("--tune-days", type=int, default=1,
                   help="days after training on which the online threshold is tuned before the test days "
                        "(default 1; 0 keeps pipeline.yaml's min_online_score)")
    q.add_argument("--min-win-loss", type=float, default=4.0, help="tuning: least win:loss a threshold may have")
    q.add_argument("--voices", default="piper,espeak")
    q.add_argument("--out", type=Path, default=Path("ab_out"), help="where the runs and ab_result.json go")
    q.add_argument("--cache", type=Path, help="speech + ASR cache (default <data dir>/sim_cache)")
    q.add_argument("--arms", default=",".join(("none", "precomputed", "precomputed+global",
                                               "precomputed+global+personal")))
    q.set_defaults(func=run_evaluate)
    q = lsub.add_parser("rephrase-eval", help="rephrase detectors (learned vs lexical) against a simulator run's truth")
    q.add_argument("--run", type=Path, required=True, help="a `simulate` output folder (traces.db + sim_truth.jsonl)")
    q.add_argument("--model", type=Path, help="rephrase model folder (default models/rephrase)")
    q.add_argument("--corrections", type=float, default=0.0,
                   help="also turn this share of the rephrases into 'no, I said ...' (tests the span; default 0)")
    q.set_defaults(func=run_rephrase_eval)
    q = lsub.add_parser("status", help="rewrite table versions and index")
    q.set_defaults(func=run_status)
    from assistant.learning.labels import commands as labels_cmd  # goal labels (issue 14)

    q = lsub.add_parser("labels", help="goal ids, goal success and failure points of every turn, into the store")
    q.add_argument("--db", type=Path, help="the trace store (default: the configured one in --data-dir)")
    q.add_argument("--model", type=Path, help="labeller model folder (default models/labels)")
    q.add_argument("--no-counterfactuals", action="store_true", help="skip the counterfactual NLU re-runs")
    q.set_defaults(func=labels_cmd.run_labels)
    q = lsub.add_parser("labels-eval", help="goal segmentation, goal success and failure points against a "
                                            "simulator run's truth (and today's heuristic labels)")
    q.add_argument("--run", type=Path, required=True, help="a `simulate` output folder (traces.db + sim_truth.jsonl)")
    q.add_argument("--model", type=Path, help="labeller model folder (default models/labels)")
    q.add_argument("--no-counterfactuals", action="store_true", help="skip the counterfactual NLU re-runs")
    q.set_defaults(func=labels_cmd.run_labels_eval)
    for q in lsub.choices.values():
        q.add_argument("--data-dir", type=Path, help="where traces.db and rewrites/ live")
        q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
        q.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or default_data_dir())


def _store_path(data_dir: Path, config: Path | None = None) -> Path:
    settings = load_settings(config or DEFAULT_PIPELINE)
    db = Path(settings.traces.db)
    return db if db.is_absolute() else data_dir / db


def export_traces(data_dir: Path, out_dir: Path, config: Path | None = None, relabel: bool = True) -> dict[str, Any]:
    """Label the store's turns and export them to OUT/turns.parquet (the export skips opted-out users)."""
    from assistant.learning.signals import label_store
    from assistant.trace.export import export
    from assistant.trace.store import TraceStore

    path = _store_path(data_dir, config)
    if not path.exists():
        raise AssistantError("no-traces", f"No trace store at {path} yet: run `assistant replay` or `assistant say` first.")
    store = TraceStore(path)
    try:
        if relabel:
            label_store(store)
        return export(store, out_dir, "parquet", data_dir=data_dir)
    finally:
        store.close()


def rephrase_detector(kind: str = "auto", model_dir: Path | None = None) -> Any:
    """The detector mining uses: a `RephraseDetector` (learned) or None (lexical). auto = learned when the model
    exists."""
    from assistant.learning.rephrase_model import RephraseDetector

    if kind == "lexical" or (kind == "auto" and not RephraseDetector.available(model_dir)):
        return None
    return RephraseDetector(model_dir)


def learn_rewrites(data_dir: Path, export_path: Path | None = None, min_support: int = 3, min_prob: float = 0.7,
                   min_users: int = 1, config: Path | None = None, detector: str = "auto") -> dict[str, Any]:
    """Export (unless given one) -> mine -> solve -> write the next table version. Returns a summary.
    `detector`: auto | learned | lexical (see `rephrase_detector`); the one used is in the version's stats."""
    from assistant.learning.markov import MarkovConfig, solve, write_table
    from assistant.learning.mining import mine

    t0 = time.perf_counter()
    det = rephrase_detector(detector)
    with tempfile.TemporaryDirectory(prefix="learn-") as tmp:
        manifest = None
        if export_path is None:
            manifest = export_traces(data_dir, Path(tmp), config)
            export_path = Path(tmp) / "turns.parquet"
        mined = mine(export_path, detector=det)
    mcfg = MarkovConfig(min_support=min_support, min_prob=min_prob, min_users=min_users)
    table, stats = solve(mined, mcfg)
    stats = {"mining": mined.stats, "solve": stats, "export_rows": manifest["rows"] if manifest else None}
    version = write_table(data_dir, table, mcfg, stats)
    return {"version": version, "rewrites": len(table), "table": table, **stats,
            "seconds": round(time.perf_counter() - t0, 2)}


def learn_index(data_dir: Path, export_path: Path | None = None, embedder: Any = None,
                config: Path | None = None) -> dict[str, Any]:
    from assistant.learning.retrieval import build_index

    if embedder is None:
        from assistant.backends.embed.minilm import MiniLmEmbedder

        embedder = MiniLmEmbedder()
    with tempfile.TemporaryDirectory(prefix="learn-") as tmp:
        if export_path is None:
            export_traces(data_dir, Path(tmp), config)
            export_path = Path(tmp) / "turns.parquet"
        return build_index(export_path, data_dir, embedder)


def run_rewrites(args: argparse.Namespace) -> int:
    s = learn_rewrites(_data_dir(args), args.export, args.min_support, args.min_prob, args.min_users, args.config,
                       args.rephrase_detector)
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
        return 0
    m, v = s["mining"], s["solve"]
    det = (f"learned ({m.get('rephrase_model')}, {m.get('detected_pairs')} pairs in {m.get('detect_seconds')} s)"
           if m.get("rephrase_detector") == "learned" else "lexical")
    print(f"rephrase detector: {det}")
    print(f"mined {m['turns']} turns ({m['linked_turns']} rephrased) -> {m['states']} utterances, {m['edges']} "
          f"transitions, {v['clusters']} clusters in {m['seconds']} s; solved in {v['seconds']} s")
    print(f"rewrite table v{s['version']}: {s['rewrites']} rewrites (now current; `assistant learn rollback N` to undo)")
    for src, e in list(s["table"].items())[:20]:
        print(f"  {src!r} -> {e['target']!r}  p={e['probability']:.2f} (was {e['baseline']:.2f}), "
              f"support {e['support']} chains / {e['users']} users")
    return 0


def run_index(args: argparse.Namespace) -> int:
    meta = learn_index(_data_dir(args), args.export, config=args.config)
    if args.json:
        print(json.dumps(meta))
    else:
        print(f"online index v{meta['version']}: {meta['entries']} utterances, {meta['users']} users, "
              f"{meta['personal_rows']} personal rows ({meta['embed_seconds']} s embedding, {meta['seconds']} s total)")
    return 0


def run_rephrase_eval(args: argparse.Namespace) -> int:
    from assistant.learning.rephrase_eval import evaluate_run, to_markdown

    res = evaluate_run(args.run, corrections=args.corrections, model_dir=args.model)
    print(json.dumps(res, indent=1) if args.json else to_markdown(res))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from assistant.learning.markov import rollback

    v = rollback(_data_dir(args), args.version)
    print(json.dumps({"current": v}) if args.json else
          (f"rewrite table v{v} is current" if v else "precomputed rewriting is off (no current table)"))
    return 0


def run_status(args: argparse.Namespace) -> int:
    from assistant.learning.markov import current_version, load_table, versions
    from assistant.learning.retrieval import INDEX_DIR

    d = _data_dir(args)
    meta_path = d / INDEX_DIR / "meta.json"
    out = {"versions": versions(d), "current": current_version(d),
           "rewrites": len((load_table(d) or {}).get("rewrites", {})),
           "index": json.loads(meta_path.read_text()) if meta_path.exists() else None}
    print(json.dumps(out, indent=None if args.json else 1))
    return 0


# -- evaluate (the simulator side: assistant/simulate/rewrite_ab.py) ------------------------------------------------
ARMS = ("none", "precomputed", "precomputed+global", "precomputed+global+personal")


@dataclass
class TurnOutcome:
    """What the simulator reports for one turn: whether the user's goal was met, and the rewrite applied (if any)."""

    defect: bool
    rewrite: dict[str, Any] | None = None
    """RewriteResult.to_dict() of the turn, when a rewrite was applied."""
    rewrite_correct: bool | None = None
    """Ground truth from the simulator, for an applied rewrite: True (win) when the rewritten turn met the goal and the
    same transcript without rewriting would not have, False (loss) for the reverse, None when both agree (tie)."""


@dataclass
class ArmResult:
    arm: str
    turns: int = 0
    defects: int = 0
    applied: int = 0
    wins: int = 0
    losses: int = 0
    by_layer: dict[str, int] = field(default_factory=dict)

    @property
    def defect_rate(self) -> float:
        return self.defects / self.turns if self.turns else 0.0


def arm_settings(arm: str) -> dict[str, Any]:
    """RewriteSettings of an arm."""
    return {"enabled": arm != "none", "precomputed": "precomputed" in arm, "online": "global" in arm,
            "personal": "personal" in arm}


def evaluate(simulate: Callable[[str, Any, int, int], Iterable[TurnOutcome]], data_dir: Path, sessions: int = 200,
             seed: int = 0, arms: tuple[str, ...] = ARMS, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A/B on the simulator. `simulate(arm, rewriter, sessions, seed)` runs `sessions` simulated sessions through the
    real pipeline with `rewriter` (None for arm 'none') in front of NLU and yields one TurnOutcome per turn; the same
    seed gives the same households and goals in every arm. Returns per-arm defect rates, the relative defect
    reduction of each arm against 'none' and against the previous arm, and the win:loss of applied rewrites."""
    from assistant.understanding.rewrite import Rewriter, RewriteSettings

    results: list[ArmResult] = []
    for arm in arms:
        rewriter = None if arm == "none" else Rewriter.load(data_dir, RewriteSettings(**arm_settings(arm), **(overrides or {})))
        r = ArmResult(arm)
        for o in simulate(arm, rewriter, sessions, seed):
            r.turns += 1
            r.defects += bool(o.defect)
            if o.rewrite and o.rewrite.get("applied"):
                r.applied += 1
                layer = o.rewrite.get("layer") or "?"
                r.by_layer[layer] = r.by_layer.get(layer, 0) + 1
                if o.rewrite_correct is True:
                    r.wins += 1
                elif o.rewrite_correct is False:
                    r.losses += 1
        results.append(r)
    base = results[0].defect_rate if results else 0.0
    out = []
    for i, r in enumerate(results):
        prev = results[i - 1].defect_rate if i else r.defect_rate
        out.append({"arm": r.arm, "turns": r.turns, "defect_rate": round(r.defect_rate, 4),
                    "relative_reduction_vs_none": round((base - r.defect_rate) / base, 4) if base else None,
                    "relative_reduction_vs_previous": round((prev - r.defect_rate) / prev, 4) if i and prev else None,
                    "applied": r.applied, "by_layer": r.by_layer, "wins": r.wins, "losses": r.losses,
                    "win_loss": f"{r.wins / r.losses:.1f}:1" if r.losses else (f"{r.wins}:0" if r.wins else None)})
    return {"sessions": sessions, "seed": seed, "arms": out}


def run_evaluate(args: argparse.Namespace) -> int:
    """Train on simulated days, then the A/B on held-out days and households (assistant/simulate/rewrite_ab.py)."""
    import sys

    from assistant.simulate import rewrite_ab

    settings = load_settings(args.config)
    cfg = rewrite_ab.ABConfig(households=args.households, heldout_households=args.heldout_households,
                              train_days=args.train_days, test_days=args.test_days, seed=args.seed,
                              shared_goals=args.shared_goals, habitual_rephrase=args.habitual_rephrase,
                              min_support=args.min_support, tune_days=args.tune_days, min_win_loss=args.min_win_loss,
                              voices=tuple(v.strip() for v in args.voices.split(",") if v.strip()))
    cache = args.cache or _data_dir(args) / "sim_cache"
    ab = rewrite_ab.RewriteAB(settings, args.out, cfg, cache,
                              progress=lambda m: print(m, file=sys.stderr, flush=True))
    rewrite_ab.configure(ab)
    try:
        res = ab.evaluate(tuple(a.strip() for a in args.arms.split(",") if a.strip()))
    finally:
        rewrite_ab.configure(None)
    if args.json:
        print(json.dumps(res, default=str))
        return 0
    print(format_ab(res))
    return 0


def format_ab(res: dict[str, Any]) -> str:
    c, tr = res["config"], res["train"]
    first = c['train_days'] + c.get('tune_days', 0)
    tune = res.get("tune") or {}
    tuned = (f"; online threshold tuned on days {c['train_days']}..{first - 1}: {tune.get('chosen')} "
             f"({tune.get('candidates')} shadow candidates)" if tune else "")
    lines = [f"seed {c['seed']}: train {c['households']} households x {c['train_days']} days ({tr['turns']} turns, "
             f"defect rate {tr['defect_rate']}){tuned}; test days {first}..{first + c['test_days'] - 1} "
             f"of those + {c['heldout_households']} held-out households; NLU model {res.get('nlu_model_version')}",
             f"learned: table v{tr['table']['version']} {tr['table']['rewrites']} rewrites; index "
             f"{tr['index']['entries']} utterances, {tr['index']['personal_rows']} personal rows",
             "| arm | turns | defect rate | vs none | vs previous | applied (by layer) | wins | losses | win:loss "
             "| goals achieved | defect turns/goal |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in res["arms"]:
        g = a.get("goals") or {}
        lines.append(f"| {a['arm']} | {a['turns']} | {a['defect_rate']:.4f} | {a['relative_reduction_vs_none']} | "
                     f"{a['relative_reduction_vs_previous']} | {a['applied']} {a['by_layer'] or ''} | {a['wins']} | "
                     f"{a['losses']} | {a['win_loss']} | {g.get('achieved')}/{g.get('goals')} | "
                     f"{g.get('defect_turns_per_goal')} |")
    return "\n".join(lines)
