"""Re-derive the failure points of runs made before the rule for misheard requests changed (2026-12-03).

`assess` now calls a request the NLU got wrong an ASR failure when the misheard words changed the parse (the seed
article's "earliest stage that failed beyond recovery"); before, it asked whether the NLU would have parsed the said
words right. Only turns that reached that branch change, and what they need is in the truth line (what was said, what
was heard, whether the key words survived), so a run is re-labelled by re-running the context-free NLU on both texts,
in seconds, instead of being simulated again. The simulator's people react to whether a turn was a defect, which does
not change, so a re-labelled run is the run the current simulator would have made.

    python -m assistant.simulate.retruth RUN_DIR...      # rewrites RUN_DIR/sim_truth.jsonl, keeps sim_truth.jsonl.bak
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.simulate.goals import Goal
from assistant.simulate.ground_truth import caching_oracle, misheard_beyond_recovery, words_changed_the_parse

Parse = tuple[str | None, dict[str, Any], float]


def retruth_row(row: dict[str, Any], oracle: Callable[[str], Parse], min_confidence: float = 0.5) -> dict[str, Any]:
    """`row` with its failure point under the current rule (the same dict when nothing changes)."""
    stages = row.get("stages") or {}
    if row.get("failure_point") not in ("asr", "nlu") or "nlu_on_spoken_text_ok" not in stages:
        return row  # not a request the NLU got wrong (the only branch whose rule changed)
    spoken, heard = row.get("spoken") or "", row.get("transcript") or ""
    g = row["goal"]
    goal = Goal(g["goal_id"], g["intent"], g.get("slots") or {}, [], expect=g.get("expect"))
    changed = bool(stages.get("wer")) and words_changed_the_parse(goal, spoken, heard, oracle, min_confidence)
    misheard = misheard_beyond_recovery(stages.get("wer"), bool(stages.get("key_words_survived")), changed)
    point = "asr" if misheard else "nlu"
    return {**row, "failure_point": point, "stages": {**stages, "words_changed_the_parse": changed}}


def retruth_run(run_dir: Path, oracle: Callable[[str], Parse], min_confidence: float = 0.5) -> Counter:
    """Rewrite `run_dir/sim_truth.jsonl` (the old file kept as .bak); returns counts of (old, new) failure points."""
    path = Path(run_dir) / "sim_truth.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    moved: Counter = Counter()
    out = []
    for row in rows:
        new = retruth_row(row, oracle, min_confidence)
        if new is not row:
            moved[(row["failure_point"], new["failure_point"])] += 1
        out.append(new)
    bak = path.with_suffix(".jsonl.bak")
    if not bak.exists():
        shutil.copyfile(path, bak)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in out))
    tmp.replace(path)
    return moved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m assistant.simulate.retruth", description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="simulator run folders (holding sim_truth.jsonl)")
    args = ap.parse_args(argv)
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.config import load_settings

    oracle = caching_oracle(OnnxJointNlu(threads=1))
    min_confidence = load_settings().nlu.min_confidence
    for run in args.runs:
        if not (run / "sim_truth.jsonl").exists():
            raise SystemExit(f"{run}: no sim_truth.jsonl here; pass a folder written by `assistant simulate --out`")
        moved = retruth_run(run, oracle, min_confidence)
        print(f"{run}: " + (", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(moved.items())) or "no turns"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
