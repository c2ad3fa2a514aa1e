"""`assistant train labels --runs SIM_DIR... [--out models/labels]`: fit the labeller's three logistic regressions
(goal links, turn failure point, goal success) on simulator runs' traces, with `sim_truth.jsonl` as the targets.

Deterministic (closed-form features, Newton steps from zero): the same runs give the same weights.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.learning.labels.counterfactual import Counterfactuals
from assistant.learning.labels.features import goal_features
from assistant.learning.labels.labeller import (
    DEFAULT_MODEL_DIR,
    Labeller,
    SessionInput,
    load_sessions,
    rephrase_detector,
)
from assistant.learning.labels.model import Logistic
from assistant.learning.labels.truth import CLASSES, gold_goals, load_truth, turn_class
from assistant.trace.store import TraceStore

VERSION_PREFIX = "labels-1"


def load_run(run_dir: Path, detector: Any) -> tuple[list[SessionInput], dict[str, dict[str, Any]]]:
    """The run's sessions as the labeller sees them, and its truth (training / scoring only)."""
    truth = load_truth(run_dir)
    store = TraceStore(Path(run_dir) / "traces.db")
    try:
        sessions = [s for s in load_sessions(store, detector) if s.views]
    finally:
        store.close()
    for s in sessions:  # turns without a truth line (none expected) are dropped
        s.views = [v for v in s.views if v.turn_id in truth]
    return [s for s in sessions if s.views], truth


def _fold(session: SessionInput) -> int:
    return int(hashlib.sha1(session.views[0].session_id.encode()).hexdigest(), 16) % 2


def _blank() -> Logistic:
    return Logistic([], ["no", "yes"], np.zeros(0), np.ones(0), np.zeros((1, 2)))


def link_dataset(lab: Labeller, sessions: list[SessionInput], truth: dict[str, dict[str, Any]]
                 ) -> tuple[list[dict[str, float]], list[int]]:
    """Adjacent pairs with the gold open goal (teacher forcing): does turn i continue turn i-1's goal?"""
    rows, ys = [], []
    for s in sessions:
        eps = [truth[v.turn_id]["episode"] for v in s.views]
        start = 0
        for i in range(1, len(s.views)):
            if i >= 2 and eps[i - 1] != eps[i - 2]:
                start = i - 1  # turn i-1 opened a new gold goal
            rows.append(lab.link_row(s, i, start))
            ys.append(int(eps[i] == eps[i - 1]))
    return rows, ys


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    best, best_t = np.inf, 1.0
    for t in np.exp(np.linspace(np.log(0.3), np.log(4.0), 60)):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(len(y)), y].mean()
        if nll < best:
            best, best_t = nll, float(t)
    return round(best_t, 4)


def _matrix(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    return np.array([[r.get(n, 0.0) for n in names] for r in rows], dtype=np.float64)


def train(runs: list[Path], out: Path = DEFAULT_MODEL_DIR, l2: float = 1.0, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    det = rephrase_detector()
    cf = Counterfactuals()
    lab = Labeller(_blank(), _blank(), _blank(), VERSION_PREFIX, cf)
    data = []
    for r in runs:
        sessions, truth = load_run(r, det)
        data.append((sessions, truth))
        if progress:
            print(f"{r}: {sum(len(s.views) for s in sessions)} turns, {len(sessions)} sessions", flush=True)
    sessions = [s for ss, _ in data for s in ss]
    truth = {k: v for _, t in data for k, v in t.items()}
    # 1. links
    lrows, ly = link_dataset(lab, sessions, truth)
    link_names = sorted(lrows[0])
    lab.link = Logistic.fit(_matrix(lrows, link_names), np.array(ly), link_names, ["new", "same"], l2=l2)
    # 2. turns, on the predicted segmentation (as at labelling time); 2-fold out-of-fold P(correct) for the goal model
    segs = [lab.segment(s) for s in sessions]
    trows: list[dict[str, float]] = []
    ty: list[int] = []
    where: list[tuple[int, int]] = []
    for si, (s, g) in enumerate(zip(sessions, segs)):
        rows = lab.turn_rows(s, g)
        for i, row in enumerate(rows):
            trows.append(row)
            ty.append(CLASSES.index(turn_class(truth[s.views[i].turn_id])))
            where.append((si, i))
    turn_names = sorted(trows[0])
    X, Y = _matrix(trows, turn_names), np.array(ty)
    present = sorted(set(ty))
    classes = [CLASSES[c] for c in present]
    remap = {c: k for k, c in enumerate(present)}
    Yr = np.array([remap[c] for c in Y])
    folds = np.array([_fold(sessions[si]) for si, _ in where])
    oof = np.zeros((len(Y), len(classes)))
    oof_logits = np.zeros((len(Y), len(classes)))
    for k in (0, 1):
        m = Logistic.fit(X[folds != k], Yr[folds != k], turn_names, classes, l2=l2)
        oof[folds == k] = m.predict_proba(X[folds == k])
        oof_logits[folds == k] = m.logits(X[folds == k])
    lab.turn = Logistic.fit(X, Yr, turn_names, classes, l2=l2)
    # temperature scaling on the out-of-fold logits (the in-sample fit is overconfident)
    lab.turn.temperature = _temperature(oof_logits, Yr)
    ci = classes.index("correct")
    pok = {where[j]: float(oof[j, ci]) for j in range(len(where))}
    # 3. goals: predicted segments, gold success of the episode of the goal's last turn
    grows, gy = [], []
    golds = gold_goals(truth)
    for si, (s, g) in enumerate(zip(sessions, segs)):
        for gi, idx in enumerate(g):
            gv = [s.views[i] for i in idx]
            after = s.views[g[gi + 1][0]] if gi + 1 < len(g) else None
            grows.append(goal_features(gv, [pok[(si, i)] for i in idx], after))
            gy.append(int(golds[truth[gv[-1].turn_id]["episode"]]["success"]))
    goal_names = sorted(grows[0])
    lab.goal = Logistic.fit(_matrix(grows, goal_names), np.array(gy), goal_names, ["failed", "succeeded"], l2=l2)
    # metadata and files
    digest = hashlib.sha1(json.dumps([lab.link.to_dict(), lab.turn.to_dict(), lab.goal.to_dict()]).encode())
    version = f"{VERSION_PREFIX}-{digest.hexdigest()[:8]}"
    oof_pred = oof.argmax(axis=1)
    defect = Yr != ci
    stage_cols = [k for k, c in enumerate(classes) if c != "correct"]
    oof_stage = np.array(stage_cols)[oof[:, stage_cols].argmax(axis=1)]
    metrics = {
        "version": version, "runs": [str(r) for r in runs], "turns": len(Y), "sessions": len(sessions),
        "link_pairs": len(ly), "goals": len(gy), "classes": classes,
        "class_counts": {c: int((Yr == k).sum()) for k, c in enumerate(classes)},
        "oof_turn_accuracy": round(float((oof_pred == Yr).mean()), 4),
        "oof_failure_point_accuracy": round(float((oof_stage[defect] == Yr[defect]).mean()), 4) if defect.any() else None,
        "turn_temperature": lab.turn.temperature, "l2": l2, "rephrase_detector": getattr(det, "version", None),
        "counterfactual_nlu_runs": cf.runs, "seconds": round(time.perf_counter() - t0, 1),
    }
    for m in (lab.link, lab.turn, lab.goal):
        m.meta = {"version": version}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lab.link.save(out / "link.json")
    lab.turn.save(out / "turn.json")
    lab.goal.save(out / "goal.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def cli(args: Any) -> int:
    m = train([Path(r) for r in args.runs], Path(args.out), l2=args.l2, progress=not args.quiet)
    print(json.dumps(m, indent=1))
    return 0
