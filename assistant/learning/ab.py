"""A/B of the rewrite layers: defect rate without / with each layer, and the win:loss of applied rewrites.

`evaluate(simulate, data_dir, ...)` runs each arm through a simulator entry point (assistant/simulate/rewrite_ab.py
provides one) and summarises; `format_ab` renders `RewriteAB.evaluate`'s result as a Markdown table
(`assistant learn evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    return {
        "enabled": arm != "none",
        "precomputed": "precomputed" in arm,
        "online": "global" in arm,
        "personal": "personal" in arm,
    }


def evaluate(
    simulate: Callable[[str, Any, int, int], Iterable[TurnOutcome]],
    data_dir: Path,
    sessions: int = 200,
    seed: int = 0,
    arms: tuple[str, ...] = ARMS,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A/B on the simulator. `simulate(arm, rewriter, sessions, seed)` runs `sessions` simulated sessions through the
    real pipeline with `rewriter` (None for arm 'none') in front of NLU and yields one TurnOutcome per turn; the same
    seed gives the same households and goals in every arm. Returns per-arm defect rates, the relative defect
    reduction of each arm against 'none' and against the previous arm, and the win:loss of applied rewrites."""
    from assistant.config import RewriteSettings
    from assistant.understanding.rewrite import Rewriter

    results: list[ArmResult] = []
    for arm in arms:
        rewriter = (
            None
            if arm == "none"
            else Rewriter.load(data_dir, RewriteSettings(**arm_settings(arm), **(overrides or {})))
        )
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
        out.append(
            {
                "arm": r.arm,
                "turns": r.turns,
                "defect_rate": round(r.defect_rate, 4),
                "relative_reduction_vs_none": round((base - r.defect_rate) / base, 4) if base else None,
                "relative_reduction_vs_previous": round((prev - r.defect_rate) / prev, 4) if i and prev else None,
                "applied": r.applied,
                "by_layer": r.by_layer,
                "wins": r.wins,
                "losses": r.losses,
                "win_loss": f"{r.wins / r.losses:.1f}:1" if r.losses else (f"{r.wins}:0" if r.wins else None),
            }
        )
    return {"sessions": sessions, "seed": seed, "arms": out}


def format_ab(res: dict[str, Any]) -> str:
    """`RewriteAB.evaluate`'s result as text: the set-up, what was learned, and one table row per arm."""
    c, tr = res["config"], res["train"]
    first = c["train_days"] + c.get("tune_days", 0)
    tune = res.get("tune") or {}
    tuned = (
        f"; online threshold tuned on days {c['train_days']}..{first - 1}: {tune.get('chosen')} "
        f"({tune.get('candidates')} shadow candidates)"
        if tune
        else ""
    )
    lines = [
        (
            f"seed {c['seed']}: train {c['households']} households x {c['train_days']} days ({tr['turns']} turns, "
            f"defect rate {tr['defect_rate']}){tuned}; test days {first}..{first + c['test_days'] - 1} "
            f"of those + {c['heldout_households']} held-out households; NLU model {res.get('nlu_model_version')}"
        ),
        (
            f"learned: table v{tr['table']['version']} {tr['table']['rewrites']} rewrites; index "
            f"{tr['index']['entries']} utterances, {tr['index']['personal_rows']} personal rows"
        ),
        (
            "| arm | turns | defect rate | vs none | vs previous | applied (by layer) | wins | losses | win:loss "
            "| goals achieved | defect turns/goal |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in res["arms"]:
        g = a.get("goals") or {}
        lines.append(
            f"| {a['arm']} | {a['turns']} | {a['defect_rate']:.4f} | {a['relative_reduction_vs_none']} | "
            f"{a['relative_reduction_vs_previous']} | {a['applied']} {a['by_layer'] or ''} | {a['wins']} | "
            f"{a['losses']} | {a['win_loss']} | {g.get('achieved')}/{g.get('goals')} | "
            f"{g.get('defect_turns_per_goal')} |"
        )
    return "\n".join(lines)
