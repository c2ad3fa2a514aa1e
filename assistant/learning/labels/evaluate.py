"""`assistant learn labels-eval --run SIM_DIR`: the labeller against a simulator run's truth, next to today's
single-turn heuristic labels (`assistant traces label`, assistant/learning/signals.py).

- goal_segmentation_f1: a predicted goal is right when it holds exactly the turns of one true goal (episode);
  F1 of precision (right / predicted goals) and recall (right / true goals). Also link precision / recall (does a
  turn continue the previous one's goal?).
- goal_success_accuracy: per true goal, the success probability of the predicted goal holding its last turn, >= 0.5,
  against the truth (some request-like turn reached the goal); with Brier score and expected calibration error.
- failure_point_accuracy: over the turns the truth calls defective with a stage, the stage with the highest
  probability against the truth's failure point; a confusion matrix by stage.
- turn defect detection (defect >= 0.5) against the truth's `defect`.

The heuristic baselines: segmentation = each turn its own goal, or turns chained by the signals (rephrase, repeat,
cancel, correction pointing at the next turn, and answers to a question); goal success = the heuristic label of the
goal's last turn is not `defect`; failure point = the error's stage, else result when the action failed, nlu when
unsupported, else asr (the most common stage).
"""

from __future__ import annotations

import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from assistant.learning.labels.labeller import Labeller, SessionInput
from assistant.learning.labels.truth import STAGES, gold_goals, turn_class


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def segmentation_scores(pred: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    ps, gs = {tuple(g) for g in pred}, {tuple(g) for g in gold}
    right = len(ps & gs)
    p, r = right / max(len(ps), 1), right / max(len(gs), 1)

    def links(goals: list[list[str]]) -> set[tuple[str, str]]:
        return {(g[i], g[i + 1]) for g in goals for i in range(len(g) - 1)}

    pl, gl = links(pred), links(gold)
    lp = len(pl & gl) / max(len(pl), 1)
    lr = len(pl & gl) / max(len(gl), 1)
    return {
        "f1": round(_f1(p, r), 4),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "link_precision": round(lp, 4),
        "link_recall": round(lr, 4),
        "link_f1": round(_f1(lp, lr), 4),
    }


def heuristic_segments(s: SessionInput) -> list[list[int]]:
    goals: list[list[int]] = []
    for i, v in enumerate(s.views):
        if goals:
            prev = s.views[i - 1]
            chained = any(
                sig.get("by_turn") == v.turn_id and sig["type"] in ("rephrase", "repeat", "cancel", "correction")
                for sig in prev.signals
            )
            if chained or (prev.expects_reply and i - 1 in goals[-1]) or v.is_feedback_answer:
                goals[-1].append(i)
                continue
        goals.append([i])
    return goals


def heuristic_stage(v: Any) -> str:
    if v.error_stage in ("asr",):
        return "asr"
    if v.error_stage in ("nlu",):
        return "nlu"
    if v.error_stage in ("resolve",):
        return "entity_resolution"
    if v.status == "failed" or v.error_stage == "respond":
        return "result"
    if v.status == "unsupported":
        return "nlu"
    return "asr"


def ece(probs: np.ndarray, ys: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for a, b in pairwise(edges):
        m = (probs >= a) & ((probs < b) if b < 1 else (probs <= b))
        if m.any():
            total += m.sum() * abs(probs[m].mean() - ys[m].mean())
    return float(total / max(len(ys), 1))


def _goals_by_kind(
    golds: dict[str, dict[str, Any]],
    labels: dict[str, Any],
    seen: set[str],
    pred: set[tuple[str, ...]],
    truth: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Goals with a question in them, scored apart: "are you sure?" (`asked_to_confirm`) and a question the person
    left unanswered (`walked_away`): was the goal segmented exactly, and its success called right?"""
    out: dict[str, dict[str, Any]] = {}
    for g in golds.values():
        turns = [t for t in g["turns"] if t in seen]
        if not turns:
            continue
        kinds = []
        if any((truth[t].get("action") or {}).get("name") == "confirm" for t in turns):
            kinds.append("asked_to_confirm")
        if truth[turns[-1]].get("reaction") == "walk-away":
            kinds.append("walked_away")
        for k in kinds:
            d = out.setdefault(k, {"goals": 0, "succeeded": 0, "segmented_right": 0, "success_right": 0})
            d["goals"] += 1
            d["succeeded"] += int(g["success"])
            d["segmented_right"] += int(tuple(turns) in pred)
            d["success_right"] += int((labels[turns[-1]].goal_success >= 0.5) == g["success"])
    return out


def evaluate_sessions(lab: Labeller, sessions: list[SessionInput], truth: dict[str, dict[str, Any]]) -> dict[str, Any]:
    golds = gold_goals(truth)
    t0 = time.perf_counter()
    labels = {}
    pred_goals: list[list[str]] = []
    heur_goals: list[list[str]] = []
    single: list[list[str]] = []
    outs = lab.label_sessions(sessions)
    for s, out in zip(sessions, outs):
        for tl in out:
            labels[tl.turn_id] = tl
        by_goal: dict[str, list[str]] = {}
        for tl in out:
            by_goal.setdefault(tl.goal_id, []).append(tl.turn_id)
        pred_goals.extend(by_goal.values())
        heur_goals.extend([[s.views[i].turn_id for i in g] for g in heuristic_segments(s)])
        single.extend([[v.turn_id] for v in s.views])
    secs = time.perf_counter() - t0
    views = {v.turn_id: v for s in sessions for v in s.views}
    seen = set(views)
    gold_lists = [[t for t in g["turns"] if t in seen] for g in golds.values()]
    gold_lists = [g for g in gold_lists if g]
    seg = segmentation_scores(pred_goals, gold_lists)
    seg_h = segmentation_scores(heur_goals, gold_lists)
    seg_1 = segmentation_scores(single, gold_lists)
    # goal success, per true goal
    heur_goal_of = {t: g for g in heur_goals for t in g}
    gp, gy, hy = [], [], []
    for g in golds.values():
        turns = [t for t in g["turns"] if t in seen]
        if not turns:
            continue
        last = turns[-1]
        gp.append(labels[last].goal_success)
        gy.append(int(g["success"]))
        hg = heur_goal_of[last]
        subs = [t for t in hg if views[t].substantive] or hg
        hy.append(int(views[subs[-1]].heuristic != "defect" and views[subs[-1]].status not in ("clarify",)))
    gp_a, gy_a = np.array(gp), np.array(gy)
    by_kind = _goals_by_kind(golds, labels, seen, {tuple(g) for g in pred_goals}, truth)
    # failure points
    stages = list(STAGES)
    conf = {a: dict.fromkeys(stages, 0) for a in stages}
    conf_h = {a: dict.fromkeys(stages, 0) for a in stages}
    right = right_h = n_fp = 0
    dy, dp, dh = [], [], []
    for tid, v in views.items():
        tc = turn_class(truth[tid])
        tl = labels[tid]
        dy.append(int(tc != "correct"))
        dp.append(int(tl.defect >= 0.5))
        dh.append(int(v.heuristic == "defect"))
        if tc == "correct":
            continue
        n_fp += 1
        pred = max(tl.stage_probs, key=tl.stage_probs.get)
        conf[tc][pred] += 1
        right += pred == tc
        hp = heuristic_stage(v)
        conf_h[tc][hp] += 1
        right_h += hp == tc
    dy_a, dp_a, dh_a = np.array(dy), np.array(dp), np.array(dh)

    def det(pred: np.ndarray) -> dict[str, float]:
        tp = int((pred & dy_a).sum())
        p, r = tp / max(int(pred.sum()), 1), tp / max(int(dy_a.sum()), 1)
        return {
            "accuracy": round(float((pred == dy_a).mean()), 4),
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(_f1(p, r), 4),
        }

    n = len(views)
    return {
        "goal_segmentation_f1": seg["f1"],
        "goal_success_accuracy": round(float(((gp_a >= 0.5) == gy_a).mean()), 4) if len(gy) else None,
        "failure_point_accuracy": round(right / n_fp, 4) if n_fp else None,
        "segmentation": seg,
        "goal_success": {
            "brier": round(float(((gp_a - gy_a) ** 2).mean()), 4) if len(gy) else None,
            "ece": round(ece(gp_a, gy_a), 4) if len(gy) else None,
            "success_rate_true": round(float(gy_a.mean()), 4) if len(gy) else None,
            "success_rate_predicted": round(float((gp_a >= 0.5).mean()), 4) if len(gy) else None,
        },
        "turn_defect": det(dp_a),
        "goals_by_kind": by_kind,
        "confusion": conf,
        "heuristic": {
            "goal_segmentation_f1_signals": seg_h["f1"],
            "goal_segmentation_f1_one_turn_per_goal": seg_1["f1"],
            "goal_success_accuracy": round(float((np.array(hy) == gy_a).mean()), 4) if len(gy) else None,
            "failure_point_accuracy": round(right_h / n_fp, 4) if n_fp else None,
            "turn_defect": det(dh_a),
            "confusion": conf_h,
            "labels": dict(Counter(v.heuristic for v in views.values())),
        },
        "counts": {
            "turns": n,
            "sessions": len(sessions),
            "true_goals": len(gold_lists),
            "predicted_goals": len(pred_goals),
            "true_goals_succeeded": int(gy_a.sum()),
            "defective_turns": int(dy_a.sum()),
            "failure_points": dict(Counter(turn_class(truth[t]) for t in views if turn_class(truth[t]) != "correct")),
        },
        "labeler_version": lab.version,
        "labelling_seconds": round(secs, 3),
        "turns_per_second": round(n / secs, 1) if secs else None,
    }


def evaluate_run(
    run_dir: Path,
    model_dir: Path | None = None,
    counterfactuals: bool = True,
    redecode_cache: Path | None = None,
    redecode: bool | None = None,
) -> dict[str, Any]:
    from assistant.learning.labels.labeller import rephrase_detector
    from assistant.training.labels import load_run

    lab = Labeller.load(model_dir, counterfactuals, redecode_cache, redecode)
    t0 = time.perf_counter()
    sessions, truth, lab.history = load_run(Path(run_dir), rephrase_detector())
    load_s = time.perf_counter() - t0
    res = evaluate_sessions(lab, sessions, truth)
    lab.rd.save()
    res["redecodes"] = lab.rd.decodes
    res["run"] = str(run_dir)
    res["load_seconds"] = round(load_s, 2)
    res["end_to_end_turns_per_second"] = round(res["counts"]["turns"] / (load_s + res["labelling_seconds"]), 1)
    return res
