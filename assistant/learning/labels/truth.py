"""The simulator's truth as the labeller's training targets and yardstick (`sim_truth.jsonl`).

Read only by training (`assistant train labels`) and scoring (`assistant learn labels-eval`), never by the labeller.

- goal: the simulated episode (a request with its rephrases, repeats, clarification answers, the "yes" or "no" to
  "are you sure?", feedback answers and "stop"); a false wake (and the "stop" said to it) is a goal of its own;
- goal success: some request-like turn of the episode (request, rephrase, repeat, clarify_answer, confirm_answer)
  reached the goal (`outcome` achieved or unsupported-ok). A false wake never succeeds; neither does a goal whose
  "are you sure?" was answered no or left unanswered (the garage stayed shut: no defect, and no success);
- failure point: the turn's `failure_point` (correct, false_wake, endpointing, asr, nlu, entity_resolution, result).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STAGES = ("false_wake", "endpointing", "asr", "nlu", "entity_resolution", "result")
"""The failing stages, named as in assistant/simulate/ground_truth.py."""
CLASSES = ("correct", *STAGES)
_REQUEST_ROLES = frozenset({"request", "rephrase", "repeat", "clarify_answer", "confirm_answer"})


def load_truth(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(run_dir) / "sim_truth.jsonl"
    out = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                out[d["turn_id"]] = d
    return out


def gold_goals(truth: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """episode -> {turns: [turn_id...] (in order), success: bool, false_wake: bool}."""
    goals: dict[str, dict[str, Any]] = {}
    for tid, d in sorted(truth.items(), key=lambda kv: (kv[1].get("t") or "", kv[1].get("attempt") or 0)):
        g = goals.setdefault(d["episode"], {"turns": [], "success": False, "false_wake": False})
        g["turns"].append(tid)
        if d.get("role") == "false_wake":
            g["false_wake"] = True
        if d.get("role") in _REQUEST_ROLES and d.get("outcome") in ("achieved", "unsupported-ok"):
            g["success"] = True
    for g in goals.values():
        if g["false_wake"]:
            g["success"] = False
    return goals


def turn_class(d: dict[str, Any]) -> str:
    fp = d.get("failure_point") or "correct"
    if not d.get("defect"):
        return "correct"
    return fp if fp in STAGES else "correct"
