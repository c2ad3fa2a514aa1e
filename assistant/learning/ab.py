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
    goal: str | None = None
    """The goal (episode) the turn belongs to: the bootstrap's unit (identical across arms)."""
    household: str | None = None
    """The household: the bootstrap's other unit."""
    personal: bool = False
    """The goal is a personal meaning (the person's own phrase; simulate/meanings.py)."""


@dataclass
class ArmResult:
    arm: str
    turns: int = 0
    defects: int = 0
    applied: int = 0
    wins: int = 0
    losses: int = 0
    by_layer: dict[str, int] = field(default_factory=dict)
    units: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """unit kind (goal, household) -> unit -> [turns, defects, wins, losses]"""
    layer_wins: dict[str, list[int]] = field(default_factory=dict)
    """layer -> [wins, losses] of the rewrites it applied"""
    personal_turns: int = 0
    personal_defects: int = 0

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
        results.append(accumulate(arm, simulate(arm, rewriter, sessions, seed)))
    return {"sessions": sessions, "seed": seed, "arms": summarise(results, seed)}


def accumulate(arm: str, outs: Iterable[TurnOutcome]) -> ArmResult:
    """One arm's counts (and per goal / household units for the bootstrap) from its turn outcomes."""
    r = ArmResult(arm)
    for o in outs:
        r.turns += 1
        r.defects += bool(o.defect)
        r.personal_turns += bool(o.personal)
        r.personal_defects += bool(o.personal and o.defect)
        for kind, unit in (("goal", o.goal), ("household", o.household)):
            if unit is not None:
                u = r.units.setdefault(kind, {}).setdefault(unit, [0, 0, 0, 0])
                u[0] += 1
                u[1] += bool(o.defect)
                u[2] += o.rewrite_correct is True
                u[3] += o.rewrite_correct is False
        if o.rewrite and o.rewrite.get("applied"):
            r.applied += 1
            layer = o.rewrite.get("layer") or "?"
            r.by_layer[layer] = r.by_layer.get(layer, 0) + 1
            wl = r.layer_wins.setdefault(layer, [0, 0])
            if o.rewrite_correct is True:
                r.wins += 1
                wl[0] += 1
            elif o.rewrite_correct is False:
                r.losses += 1
                wl[1] += 1
    return r


def summarise(results: list[ArmResult], seed: int = 0) -> list[dict[str, Any]]:
    """Per arm: defect rate, relative reductions (vs none, vs the previous arm), rewrites applied per layer (the
    turns each layer served), win:loss, the personal-meaning turns' defect rate, and 95% bootstrap intervals over
    goals and over households."""
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
                "win_loss_ratio": round(r.wins / r.losses, 3) if r.losses else None,
                "wins_losses_by_layer": {k: {"wins": w, "losses": lo} for k, (w, lo) in r.layer_wins.items()},
                "personal_meaning_turns": r.personal_turns,
                "personal_meaning_defect_rate": round(r.personal_defects / r.personal_turns, 4)
                if r.personal_turns
                else None,
                "other_defect_rate": round((r.defects - r.personal_defects) / (r.turns - r.personal_turns), 4)
                if r.turns > r.personal_turns
                else None,
            }
        )
    for kind in ("goal", "household"):
        for a, ci in zip(out, bootstrap(results, kind, seed=seed)):
            if ci:
                a.setdefault("ci95", {})[kind] = ci
    return out


def _ratio(num: Any, den: Any) -> Any:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def bootstrap(
    results: list[ArmResult], kind: str = "goal", n: int = 2000, seed: int = 0, level: float = 0.95
) -> list[dict[str, Any]]:
    """Percentile bootstrap over units (goals or households: the same units in every arm, resampled together) of
    each arm's defect rate, relative reduction vs none and vs the previous arm, and win:loss. [] when there are no
    units. A unit missing from an arm (its episode ended differently) counts as 0 turns there."""
    import numpy as np

    keys = sorted({u for r in results for u in r.units.get(kind, {})})
    if not keys or not results:
        return []
    m = np.array([[r.units.get(kind, {}).get(k, [0, 0, 0, 0]) for k in keys] for r in results], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(keys), size=(n, len(keys)))
    sums = m[:, idx, :].sum(axis=2)  # (arms, n, 4)
    rate = _ratio(sums[..., 1], sums[..., 0])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def pct(x: Any) -> list[float] | None:
        x = x[np.isfinite(x)]
        return [round(float(np.percentile(x, lo)), 4), round(float(np.percentile(x, hi)), 4)] if len(x) else None

    out = []
    for i in range(len(results)):
        d: dict[str, Any] = {"units": len(keys), "resamples": n, "defect_rate": pct(rate[i])}
        if i:
            d["relative_reduction_vs_none"] = pct(_ratio(rate[0] - rate[i], rate[0]))
            d["relative_reduction_vs_previous"] = pct(_ratio(rate[i - 1] - rate[i], rate[i - 1]))
            wins, losses = sums[i, :, 2], sums[i, :, 3]
            if results[i].wins or results[i].losses:
                d["win_loss"] = pct(_ratio(wins, losses))
                d["win_share"] = pct(_ratio(wins, wins + losses))
        out.append(d)
    return out


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
            f"{tr['index']['entries']} utterances, {tr['index']['personal_rows']} personal rows; personal table "
            f"{tr['table'].get('solve', {}).get('personal_rewrites')} rewrites, "
            f"{tr['table'].get('solve', {}).get('personal_keeps')} keeps; learned gate: "
            f"{'threshold ' + str(tune['gate']['threshold']) if tune.get('gate') else 'none (hand-set score)'}"
        ),
    ]
    return "\n".join(lines) + "\n" + format_arms(res["arms"])


def format_arms(arms: list[dict[str, Any]]) -> str:
    """One Markdown row per arm, with the 95% bootstrap interval (over goals) after each relative change and
    win:loss."""

    def ci(a: dict[str, Any], key: str) -> str:
        v = ((a.get("ci95") or {}).get("goal") or {}).get(key)
        return f" [{v[0]}, {v[1]}]" if v else ""

    lines = [
        "| arm | turns | defect rate | vs none [95% CI] | vs previous [95% CI] | applied (by layer) | wins | losses "
        "| win:loss [95% CI] | personal-meaning defect rate | other defect rate | goals achieved | defect turns/goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in arms:
        g = a.get("goals") or {}
        lines.append(
            f"| {a['arm']} | {a['turns']} | {a['defect_rate']:.4f} | {a['relative_reduction_vs_none']}"
            f"{ci(a, 'relative_reduction_vs_none')} | {a['relative_reduction_vs_previous']}"
            f"{ci(a, 'relative_reduction_vs_previous')} | {a['applied']} {a['by_layer'] or ''} | {a['wins']} | "
            f"{a['losses']} | {a['win_loss']}{ci(a, 'win_loss')} | {a.get('personal_meaning_defect_rate')} | "
            f"{a.get('other_defect_rate')} | {g.get('achieved')}/{g.get('goals')} | {g.get('defect_turns_per_goal')} |"
        )
    return "\n".join(lines)
