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

from assistant.config import shared_data_dir
from assistant.learning.labels.counterfactual import Counterfactuals, History
from assistant.learning.labels.features import goal_features
from assistant.learning.labels.labeller import (
    DEFAULT_MODEL_DIR,
    Labeller,
    SessionInput,
    load_sessions,
    rephrase_detector,
)
from assistant.learning.labels.lm import build_from_shared
from assistant.learning.labels.model import Boosted, Logistic
from assistant.learning.labels.redecode import Redecoder
from assistant.learning.labels.truth import CLASSES, gold_goals, load_truth, turn_class
from assistant.trace.store import TraceStore

VERSION_PREFIX = "labels-1"


def load_run(run_dir: Path, detector: Any) -> tuple[list[SessionInput], dict[str, dict[str, Any]], History]:
    """The run's sessions as the labeller sees them, its history index, and its truth (training / scoring only)."""
    truth = load_truth(run_dir)
    store = TraceStore(Path(run_dir) / "traces.db")
    try:
        sessions = [s for s in load_sessions(store, detector) if s.views]
        history = History.from_store(store)
    finally:
        store.close()
    for s in sessions:  # turns without a truth line (none expected) are dropped
        s.views = [v for v in s.views if v.turn_id in truth]
    return [s for s in sessions if s.views], truth, history


N_FOLDS = 4
BOOST = {"rounds": 60, "depth": 2, "lr": 0.15}
L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def _fold(session: SessionInput) -> int:
    return int(hashlib.sha1(session.views[0].session_id.encode()).hexdigest(), 16) % N_FOLDS


def _fit_cv(
    X: np.ndarray, y: np.ndarray, names: list[str], classes: list[str], folds: np.ndarray, l2: float | None
) -> tuple[Logistic, np.ndarray, float]:
    """The L2 penalty with the best out-of-fold log loss (or the given one), the model fitted on everything with
    temperature scaling from the out-of-fold logits; returns (model, out-of-fold probabilities, l2)."""
    best = None
    for lam in (l2,) if l2 else L2_GRID:
        logits = np.zeros((len(y), len(classes)))
        for k in range(N_FOLDS):
            tr, te = folds != k, folds == k
            if not te.any():
                continue
            m = Logistic.fit(X[tr], y[tr], names, classes, l2=lam)
            logits[te] = m.logits(X[te])
        t = _temperature(logits, y)
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        P = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        nll = float(-np.log(np.clip(P[np.arange(len(y)), y], 1e-12, None)).mean())
        if best is None or nll < best[0]:
            best = (nll, lam, t, P)
    _nll, lam, t, P = best
    model = Logistic.fit(X, y, names, classes, l2=lam)
    model.temperature = t
    return model, P, lam


def _blank() -> Logistic:
    return Logistic([], ["no", "yes"], np.zeros(0), np.ones(0), np.zeros((1, 2)))


def link_dataset(
    lab: Labeller, sessions: list[SessionInput], truth: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, float]], list[int], list[int]]:
    """Adjacent pairs with the gold open goal (teacher forcing): does turn i continue turn i-1's goal?"""
    rows, ys, folds = [], [], []
    for s in sessions:
        eps = [truth[v.turn_id]["episode"] for v in s.views]
        start = 0
        for i in range(1, len(s.views)):
            if i >= 2 and eps[i - 1] != eps[i - 2]:
                start = i - 1  # turn i-1 opened a new gold goal
            rows.append(lab.link_row(s, i, start))
            ys.append(int(eps[i] == eps[i - 1]))
            folds.append(_fold(s))
    return rows, ys, folds


def _fit_boosted_cv(
    X: np.ndarray, y: np.ndarray, names: list[str], classes: list[str], folds: np.ndarray
) -> tuple[Boosted, np.ndarray]:
    """Boosted trees (60 rounds of depth-2 trees per class), temperature from the out-of-fold logits."""
    logits = np.zeros((len(y), len(classes)))
    for k in range(N_FOLDS):
        tr, te = folds != k, folds == k
        if te.any():
            logits[te] = Boosted.fit(X[tr], y[tr], names, classes, **BOOST).logits(X[te])
    t = _temperature(logits, y)
    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    P = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    model = Boosted.fit(X, y, names, classes, **BOOST)
    model.temperature = t
    return model, P


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


def train(
    runs: list[Path],
    out: Path = DEFAULT_MODEL_DIR,
    l2: float | None = None,
    progress: bool = True,
    shared: Path | None = None,
    stage_model: str = "boosted",
    defect_model: str = "logistic",
    link_model: str = "logistic",
    counterfactuals: bool = True,
    redecode: bool = False,
    redecode_cache: Path | None = None,
    redecode_model: str = "tiny.en",
) -> dict[str, Any]:
    t0 = time.perf_counter()
    det = rephrase_detector()
    cf = Counterfactuals(enabled=counterfactuals)
    rd = Redecoder(enabled=counterfactuals and redecode, cache_file=redecode_cache, model=redecode_model)
    rd.without_audio_share = 0.5  # a device keeps no request audio unless asked: the model must label both
    lm, lm_stats = build_from_shared(Path(shared) if shared else shared_data_dir())
    lab = Labeller(_blank(), _blank(), _blank(), _blank(), VERSION_PREFIX, cf, lm=lm, redecoder=rd)
    data = []
    for r in runs:
        sessions, truth, history = load_run(r, det)
        data.append((sessions, truth, history))
        if progress:
            print(f"{r}: {sum(len(s.views) for s in sessions)} turns, {len(sessions)} sessions", flush=True)
    sessions = [s for ss, _, _ in data for s in ss]
    hist_of = [h for ss, _, h in data for _ in ss]
    truth = {k: v for _, t, _ in data for k, v in t.items()}
    # 0. each turn on its own (no goal around it): did it look right? (read by the link model)
    srows, sy, sfolds = [], [], []
    for s in sessions:
        for v in s.views:
            srows.append(lab.solo_row(v))
            sy.append(int(turn_class(truth[v.turn_id]) != "correct"))
            sfolds.append(_fold(s))
    solo_names = sorted(srows[0])
    lab.solo, oof_solo, _ = _fit_cv(
        _matrix(srows, solo_names), np.array(sy), solo_names, ["correct", "defect"], np.array(sfolds), l2
    )
    # the link model learns from out-of-fold solo probabilities, as it will meet them on turns it never saw
    k = 0
    for s in sessions:
        for v in s.views:
            lab.solo_probs[v.turn_id] = float(oof_solo[k, 1])
            k += 1
    # 1. links
    lrows, ly, lfolds = link_dataset(lab, sessions, truth)
    link_names = sorted(lrows[0])
    LX, LY = _matrix(lrows, link_names), np.array(ly)
    if link_model == "boosted":
        lab.link, oof_l = _fit_boosted_cv(LX, LY, link_names, ["new", "same"], np.array(lfolds))
        l2_l = None
    else:
        lab.link, oof_l, l2_l = _fit_cv(LX, LY, link_names, ["new", "same"], np.array(lfolds), l2)
    # 2. turns, on the predicted segmentation (as at labelling time); 2-fold out-of-fold P(correct) for the goal model
    segs = [lab.segment(s) for s in sessions]
    trows: list[dict[str, float]] = []
    ty: list[int] = []
    where: list[tuple[int, int]] = []
    for si, (s, g) in enumerate(zip(sessions, segs)):
        lab.history = hist_of[si]
        rows = lab.turn_rows(s, g)
        for i, row in enumerate(rows):
            trows.append(row)
            ty.append(CLASSES.index(turn_class(truth[s.views[i].turn_id])))
            where.append((si, i))
    rd.save()
    turn_names = sorted(trows[0])
    X, Y = _matrix(trows, turn_names), np.array(ty)
    folds = np.array([_fold(sessions[si]) for si, _ in where])
    # 2a. defect: correct vs not
    yd = (Y != CLASSES.index("correct")).astype(np.int64)
    if defect_model == "boosted":
        lab.turn, oof_d = _fit_boosted_cv(X, yd, turn_names, ["correct", "defect"], folds)
        l2_d = None
    else:
        lab.turn, oof_d, l2_d = _fit_cv(X, yd, turn_names, ["correct", "defect"], folds, l2)
    pok = {where[j]: float(1.0 - oof_d[j, 1]) for j in range(len(where))}
    # 2b. the failing stage, given a defect (trained on the defective turns only)
    dm = yd == 1
    present = sorted(set(Y[dm].tolist()))
    stages = [CLASSES[c] for c in present]
    ys = np.array([present.index(c) for c in Y[dm]])
    if stage_model == "boosted":
        lab.stage, oof_s = _fit_boosted_cv(X[dm], ys, turn_names, stages, folds[dm])
        l2_s = None
    else:
        lab.stage, oof_s, l2_s = _fit_cv(X[dm], ys, turn_names, stages, folds[dm], l2)
    # 3. goals: predicted segments, gold success of the episode of the goal's last turn
    grows, gy, gfolds = [], [], []
    golds = gold_goals(truth)
    for si, (s, g) in enumerate(zip(sessions, segs)):
        for gi, idx in enumerate(g):
            gv = [s.views[i] for i in idx]
            after = s.views[g[gi + 1][0]] if gi + 1 < len(g) else None
            grows.append(goal_features(gv, [pok[(si, i)] for i in idx], after))
            gfolds.append(_fold(s))
            gy.append(int(golds[truth[gv[-1].turn_id]["episode"]]["success"]))
    goal_names = sorted(grows[0])
    lab.goal, oof_g, l2_g = _fit_cv(
        _matrix(grows, goal_names), np.array(gy), goal_names, ["failed", "succeeded"], np.array(gfolds), l2
    )
    # metadata and files
    lab.solo_probs.clear()
    digest = hashlib.sha1(
        json.dumps([m.to_dict() for m in (lab.solo, lab.link, lab.turn, lab.stage, lab.goal)]).encode()
    )
    version = f"{VERSION_PREFIX}-{digest.hexdigest()[:8]}"
    metrics = {
        "version": version,
        "runs": [Path(r).name for r in runs],  # folder names: where a run lives is this machine's business
        "turns": len(Y),
        "sessions": len(sessions),
        "link_pairs": len(ly),
        "goals": len(gy),
        "stages": stages,
        "class_counts": {c: int((Y == k).sum()) for k, c in enumerate(CLASSES)},
        "oof_defect_accuracy": round(float(((oof_d[:, 1] >= 0.5) == yd).mean()), 4),
        "oof_failure_point_accuracy": round(float((oof_s.argmax(axis=1) == ys).mean()), 4),
        "oof_goal_success_accuracy": round(float(((oof_g[:, 1] >= 0.5) == np.array(gy)).mean()), 4),
        "oof_link_accuracy": round(float(((oof_l[:, 1] >= 0.5) == LY).mean()), 4),
        "link_model": link_model,
        "oof_solo_defect_accuracy": round(float(((oof_solo[:, 1] >= 0.5) == np.array(sy)).mean()), 4),
        "l2": {"link": l2_l, "defect": l2_d, "stage": l2_s, "goal": l2_g},
        "stage_model": stage_model,
        "defect_model": defect_model,
        "counterfactuals": counterfactuals,
        "temperature": {"defect": lab.turn.temperature, "stage": lab.stage.temperature},
        "rephrase_detector": getattr(det, "version", None),
        "counterfactual_nlu_runs": cf.runs,
        "redecode": rd.enabled,
        "redecode_model": rd.model if rd.enabled else None,
        "redecodes": {"decoded": rd.decodes, "cached": rd.cached - rd.decodes, "audio_missing": rd.missing},
        "lm": lm_stats,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    for m in (lab.solo, lab.link, lab.turn, lab.stage, lab.goal):
        m.meta = {"version": version, "redecode": rd.enabled, "redecode_model": rd.model if rd.enabled else None}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lab.solo.save(out / "solo.json")
    lab.link.save(out / "link.json")
    lab.turn.save(out / "turn.json")
    lab.stage.save(out / "stage.json")
    lab.goal.save(out / "goal.json")
    lm.save(out / "lm.json.gz")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def cli(args: Any) -> int:
    m = train(
        [Path(r) for r in args.runs],
        Path(args.out),
        l2=args.l2,
        progress=not args.quiet,
        shared=args.shared,
        stage_model=args.stage_model,
        link_model=args.link_model,
        redecode=args.redecode,
        redecode_cache=args.redecode_cache,
        redecode_model=args.redecode_model,
    )
    print(json.dumps(m, indent=1))
    return 0
