"""Generated turn labels against simulator truth (training and scoring only; the proposer never reads the truth).

Truth for a request-like turn (role request / rephrase / repeat of a goal): the intent is the goal's intent (or one
the simulator counts as the same); the slots are the goal's slot values that survived in the text the NLU parsed
(`words_survived`: a value the ASR lost cannot be labelled on these words). A label is

- intent-right: its intent is the goal's;
- slot-right: every surviving goal value is a label slot of that type with a similar value (rapidfuzz >= 75, as the
  simulator's `nlu_ok`), and no label slot of a goal slot type carries another value;
- right: both.

Baseline (context-free): the shipped NLU's own parse as the label, its intent confidence as the confidence.
Coverage is over the truth's request-like turns; accuracy over the labels kept at a threshold.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from assistant.learning.labels.turn_labels import ProposedLabel, TurnLabelModel, propose
from assistant.simulate.goals import spec_for
from assistant.simulate.ground_truth import slot_similarity as _similar
from assistant.simulate.ground_truth import words_survived

REQUEST_ROLES = frozenset({"request", "rephrase", "repeat"})
THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def judge(intent: str | None, slots: dict[str, str], text: str, truth: dict[str, Any]) -> tuple[bool, bool]:
    goal = truth.get("goal") or {}
    gi = goal.get("intent")
    intent_ok = intent is not None and (intent == gi or intent in spec_for(gi).intents)
    slot_ok = True
    for k, v in (goal.get("slots") or {}).items():
        got = slots.get(k)
        if words_survived(str(v), text):
            if got is None or _similar(str(got), str(v)) < 75:
                slot_ok = False
        elif got is not None and _similar(str(got), str(v)) < 75:
            slot_ok = False
    return intent_ok, slot_ok


def load_run_labels(
    run_dir: Path, labeller: Any, detector: Any, model: TurnLabelModel | None
) -> tuple[list[ProposedLabel], dict[str, dict[str, Any]], float]:
    from assistant.learning.labels.truth import load_truth
    from assistant.trace.store import TraceStore

    truth = load_truth(run_dir)
    store = TraceStore(Path(run_dir) / "traces.db", read_only=True)
    t0 = time.perf_counter()
    try:
        props = propose(store, labeller, detector, model)
    finally:
        store.close()
    return props, truth, time.perf_counter() - t0


def baseline_labels(run_dir: Path) -> dict[str, tuple[str | None, dict[str, str], str, float]]:
    """turn_id -> (intent, slots, text, confidence) of the NLU's own parse, for every turn of the run."""
    from assistant.learning.labels.turn_labels import turn_extra
    from assistant.trace.store import TraceStore

    out = {}
    store = TraceStore(Path(run_dir) / "traces.db", read_only=True)
    try:
        for batch in store.iter_turn_batches(events=False, labels=False):
            for t in batch:
                rec = t.get("record") or {}
                x = turn_extra(t)
                out[t["turn_id"]] = (
                    rec.get("intent"),
                    {k: str(v) for k, v in (rec.get("slots") or {}).items()},
                    x.nlu_text,
                    float(rec.get("intent_confidence") or 0.0),
                )
    finally:
        store.close()
    return out


def score(
    rows: list[tuple[float, bool, bool]], n_truth: int, thresholds: tuple[float, ...] = THRESHOLDS
) -> list[dict[str, Any]]:
    """rows: (confidence, intent_ok, slot_ok) of the labels on truth request turns."""
    out = []
    for th in thresholds:
        kept = [r for r in rows if r[0] >= th]
        n = len(kept)
        out.append(
            {
                "threshold": th,
                "labels": n,
                "coverage": round(n / n_truth, 4) if n_truth else None,
                "intent_accuracy": round(sum(r[1] for r in kept) / n, 4) if n else None,
                "slot_accuracy": round(sum(r[2] for r in kept) / n, 4) if n else None,
                "accuracy": round(sum(r[1] and r[2] for r in kept) / n, 4) if n else None,
                "right_labels": sum(r[1] and r[2] for r in kept),
            }
        )
    return out


def evaluate_runs(
    runs: list[Path], labeller: Any, detector: Any = None, model: TurnLabelModel | None = None
) -> dict[str, Any]:
    gen_rows: list[tuple[float, bool, bool]] = []
    base_rows: list[tuple[float, bool, bool]] = []
    n_truth = 0
    by_source: dict[str, list[int]] = {}
    turns = 0
    secs = 0.0
    for run in runs:
        props, truth, dt = load_run_labels(run, labeller, detector, model)
        secs += dt
        turns += len(truth)
        base = baseline_labels(run)
        req = {tid for tid, d in truth.items() if d.get("role") in REQUEST_ROLES and d.get("goal")}
        n_truth += len(req)
        for p in props:
            if p.turn_id not in req:
                continue
            i_ok, s_ok = judge(p.intent, p.slots, p.text, truth[p.turn_id])
            gen_rows.append((p.confidence, i_ok, s_ok))
            c = by_source.setdefault(p.source, [0, 0, 0])
            c[0] += 1
            c[1] += i_ok
            c[2] += i_ok and s_ok
        for tid in req:
            if tid in base:
                intent, slots, text, conf = base[tid]
                i_ok, s_ok = judge(intent, slots, text, truth[tid])
                base_rows.append((conf, i_ok, s_ok))
    # the baseline at the generated labels' coverage: its n most confident parses for each threshold's n
    ranked = sorted(base_rows, key=lambda r: -r[0])
    matched = []
    for g in score(gen_rows, n_truth):
        top = ranked[: g["labels"]]
        n = len(top)
        matched.append(
            {
                "threshold": g["threshold"],
                "labels": n,
                "intent_accuracy": round(sum(r[1] for r in top) / n, 4) if n else None,
                "accuracy": round(sum(r[1] and r[2] for r in top) / n, 4) if n else None,
            }
        )
    return {
        "runs": [str(r) for r in runs],
        "baseline_at_generated_coverage": matched,
        "request_turns": n_truth,
        "turns": turns,
        "generated": score(gen_rows, n_truth),
        "baseline_nlu_parse": score(base_rows, n_truth),
        "by_source": {
            k: {"labels": v[0], "intent_accuracy": round(v[1] / v[0], 4), "accuracy": round(v[2] / v[0], 4)}
            for k, v in sorted(by_source.items())
        },
        "label_model": (model or TurnLabelModel(None)).version,
        "seconds": round(secs, 1),
    }


def format_eval(res: dict[str, Any]) -> str:
    lines = [
        f"{len(res['runs'])} run(s), {res['request_turns']} request turns, label model {res['label_model']}",
        "threshold | generated: labels coverage intent slot both | NLU parse: labels coverage intent slot both",
    ]
    for g, b in zip(res["generated"], res["baseline_nlu_parse"]):
        lines.append(
            f"{g['threshold']:.2f} | {g['labels']} {g['coverage']} {g['intent_accuracy']} {g['slot_accuracy']} "
            f"{g['accuracy']} | {b['labels']} {b['coverage']} {b['intent_accuracy']} {b['slot_accuracy']} "
            f"{b['accuracy']}"
        )
    lines.append(
        "NLU parse at the same coverage (its most confident n): "
        + ", ".join(
            f"{m['labels']}: {m['intent_accuracy']} / {m['accuracy']}" for m in res["baseline_at_generated_coverage"]
        )
    )
    lines.append("by source: " + ", ".join(f"{k} {v}" for k, v in res["by_source"].items()))
    return "\n".join(lines)
