"""`assistant train turn-labels --runs SIM_DIR...`: the confidence model of the generated turn labels (issue 23).

For every request-like turn of the simulator runs, the proposer (`assistant/learning/labels/turn_labels.py`) makes its
label from the traces alone; the simulator's truth then says whether the label is right (intent and slots,
`turn_label_eval.judge`), and a logistic regression learns P(right | the label's context features). Out of the
runs' truth nothing reaches the model but that target. Saved as models/labels/turn_label.json (a few KB).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.learning.labels.model import Logistic
from assistant.learning.labels.turn_label_eval import REQUEST_ROLES, judge, load_run_labels
from assistant.learning.labels.turn_labels import DEFAULT_MODEL, TurnLabelModel

L2_GRID = (0.3, 1.0, 3.0, 10.0)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def store_turns(runs: list[Path]) -> list[dict[str, Any]]:
    """Every turn of the runs' stores as the contrastive pretraining reads them (no truth)."""
    from assistant.trace.store import TraceStore

    out = []
    for run in runs:
        st = TraceStore(Path(run) / "traces.db", read_only=True)
        try:
            for batch in st.iter_turn_batches(spans=False, events=False, labels=False):
                for t in batch:
                    rec = t.get("record") or {}
                    a = rec.get("action") if isinstance(rec.get("action"), dict) else {}
                    out.append(
                        {
                            "session": f"{run}:{t['session_id']}",
                            "transcript": rec.get("transcript") or "",
                            "intent": rec.get("intent"),
                            "action": str((a or {}).get("name") or ""),
                            "response": rec.get("response_text") or "",
                        }
                    )
        finally:
            st.close()
    return out


def train(
    runs: list[Path], out: Path = DEFAULT_MODEL, progress: bool = True, contrastive: bool = False
) -> dict[str, Any]:
    """`contrastive`: first pretrain the pair models (self-supervised, `contrastive.py`) on the runs' traces and
    add their scores to the features; saved beside `out`."""
    from assistant.learning.labels.labeller import Labeller, rephrase_detector

    t0 = time.perf_counter()
    lab, det = Labeller.load(), rephrase_detector()
    scorer = TurnLabelModel(None)
    if contrastive:
        from assistant.learning.labels.contrastive import pretrain

        scorer.contrastive = pretrain(store_turns(runs))
    rows: list[dict[str, float]] = []
    y: list[int] = []
    groups: list[int] = []
    for run in runs:
        props, truth, _ = load_run_labels(Path(run), lab, det, TurnLabelModel(None))
        for p in props:
            d = truth.get(p.turn_id)
            if d is None or d.get("role") not in REQUEST_ROLES or not d.get("goal"):
                continue
            i_ok, s_ok = judge(p.intent, p.slots, p.text, d)
            rows.append(scorer.row(p))
            y.append(int(i_ok and s_ok))
            groups.append(int(hashlib.sha1(p.session_id.encode()).hexdigest(), 16) % 4)
        if progress:
            print(f"[turn-labels] {run}: {len(rows)} labelled request turns so far", flush=True)
    if len(set(y)) < 2:
        raise SystemExit("need right and wrong labels to fit the confidence model: give more simulator runs")
    names = sorted({k for r in rows for k in r})
    X = np.array([[r.get(k, 0.0) for k in names] for r in rows])
    Y = np.array(y)
    G = np.array(groups)
    cv: dict[float, float] = {}
    for l2 in L2_GRID:  # 4 folds by session
        p = np.zeros(len(Y))
        for f in range(4):
            tr, te = G != f, G == f
            m = Logistic.fit(X[tr], Y[tr], names, ["wrong", "right"], l2=l2)
            p[te] = m.predict_proba(X[te])[:, 1]
        cv[l2] = _log_loss(p, Y)
    best = min(cv, key=cv.get)
    model = Logistic.fit(X, Y, names, ["wrong", "right"], l2=best)
    h = hashlib.sha1(json.dumps(model.to_dict()["weights"]).encode()).hexdigest()[:8]
    model.meta = {
        "version": f"turn-label-1-{h}",
        "runs": [Path(r).name for r in runs],
        "rows": len(Y),
        "right_share": round(float(Y.mean()), 4),
        "l2": best,
        "cv_log_loss": {str(k): round(v, 4) for k, v in cv.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    if scorer.contrastive is not None:
        from assistant.learning.labels.turn_labels import contrastive_path

        scorer.contrastive.save(contrastive_path(out))
        model.meta["contrastive"] = {"intent": scorer.contrastive.intent.meta, "answer": scorer.contrastive.answer.meta}
        model.save(out)
    if progress:
        print(f"[turn-labels] {len(Y)} rows, right {Y.mean():.3f}, l2 {best} -> {out} ({model.meta['version']})")
    return model.meta
