"""The self-learning loop over simulated weeks (issue 23): the same households live week after week; at the end of
every week each arm learns from its own traces and the next week runs with what it learned.

Arms (any of): `none` (nothing learned), `rewrites` (query rewrites mined weekly: precomputed Markov table, online
global and personal layers), `retrain` (the NLU retrained weekly from labels generated from the traces, promoted only
through its gates: assistant/learning/nlu_retrain.py), `rewrites+retrain` (both; a taught or mined rewrite acts on
the text before the NLU, as in the pipeline).

Protocol (`assistant learn retrain-loop`):

1. Week 0 is simulated once, with the shipped models and no rewrites, and is every arm's first week (the arms
   cannot differ before anything is learned). Its traces seed each arm's store (`<out>/<arm>/traces.db`).
2. Held-out gate run: households never in the arms (indices after them), a few days, the shipped models
   (`<out>/heldout`): the retraining's `heldout_sim` gate parses its turns; it is never in a store trained on.
3. For week k = 1 .. W-1, for each arm: learn from the arm's store (weeks 0 .. k-1), simulate week k (days 7k ..
   7k + 6 of the same households: the same agendas in every arm) with the arm's rewriter and NLU, add its traces to
   the arm's store. The defect rate (simulator truth) and goal success are reported per week and arm.

The arms' episodes diverge once an outcome changes (the simulated person reacts to the answer), so goal-level
figures are reported beside the per-turn defect rate. The learning reads only the trace store, never the truth.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.simulate.rewrite_ab import _read, goal_stats
from assistant.simulate.run import SimConfig, Simulator

ARMS = ("none", "rewrites", "retrain", "rewrites+retrain")


@dataclass
class LoopConfig:
    households: int = 3
    weeks: int = 3
    """Week 0 (shared) plus weeks-1 learning weeks per arm."""
    days_per_week: int = 7
    seed: int = 0
    arms: tuple[str, ...] = ("rewrites", "rewrites+retrain")
    heldout_households: int = 2
    heldout_days: int = 2
    voices: tuple[str, ...] = ("piper", "espeak")
    shared_goals: int = 8
    """Popular requests shared by the population (as the rewrite A/B: rewrites need repeated friction)."""
    feedback_rate: float = 0.15
    false_wake_rate: float = 0.3
    cut_off_rate: float = 0.05
    min_confidence: float = 0.7
    """Generated labels kept for retraining."""
    threads: int = 1
    """Torch threads of the retraining."""
    min_rows: int = 20
    """The retraining refuses to train on fewer confident labels."""
    min_support: int = 3
    min_prob: float = 0.7
    max_turns: int | None = None
    """Per simulator run (tests only)."""


@dataclass
class RetrainLoop:
    settings: Any
    out: Path
    cfg: LoopConfig = field(default_factory=LoopConfig)
    cache_dir: Path | None = None
    pipeline_factory: Callable[..., Any] | None = None
    progress: Callable[[str], None] | None = None
    trainer: Callable[..., dict[str, Any]] | None = None
    """The NLU trainer (None: assistant.training.nlu.train; tests pass a fake)."""
    scorers: dict[str, Any] | None = None
    """The retraining gates' scorers (None: the real ones)."""
    embedder: Any = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.cache_dir = Path(self.cache_dir) if self.cache_dir else self.out / "speech_cache"
        bad = [a for a in self.cfg.arms if a not in ARMS]
        if bad or not self.cfg.arms:
            raise ValueError(f"unknown arms {bad or list(self.cfg.arms)}: choose from {', '.join(ARMS)}")
        if self.cfg.weeks < 2:
            raise ValueError("weeks must be at least 2 (week 0 is shared; learning shows from week 1)")

    def _say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    def _sim(self, first_day: int, days: int, first_household: int = 0, households: int | None = None):
        c = self.cfg
        return SimConfig(
            households=c.households if households is None else households,
            days=days,
            first_day=first_day,
            first_household=first_household,
            seed=c.seed,
            voices=c.voices,
            feedback_rate=c.feedback_rate,
            false_wake_rate=c.false_wake_rate,
            member_users=True,
            shared_goals=c.shared_goals,
            cut_off_rate=c.cut_off_rate,
            max_turns=c.max_turns,
        )

    def _run(self, out: Path, sim_cfg: SimConfig, settings: Any = None, rewriter: Any = None) -> dict[str, Any]:
        sim = Simulator(settings or self.settings, out, sim_cfg, self.cache_dir, self.pipeline_factory, self.progress)
        sim.rewriter = rewriter
        stats = sim.run()
        rows = _read(out / "sim_truth.jsonl")
        return {
            "turns": stats["turns"],
            "wall_seconds": stats["wall_seconds"],
            "defect_rate": round(sum(bool(r["defect"]) for r in rows) / len(rows), 4) if rows else None,
            "defects": sum(bool(r["defect"]) for r in rows),
            "goals": goal_stats(rows),
        }

    # -- learning, from the arm's own store ------------------------------------------------------------------------
    def _rewriter(self, arm_dir: Path) -> tuple[Any, dict[str, Any]]:
        from assistant.config import RewriteSettings
        from assistant.learning.ab import arm_settings
        from assistant.learning.jobs import learn_index, learn_rewrites
        from assistant.understanding.rewrite import Rewriter

        if self.embedder is None:
            from assistant.backends.embed.minilm import MiniLmEmbedder

            self.embedder = MiniLmEmbedder()
        t0 = time.perf_counter()
        rw = learn_rewrites(arm_dir, min_support=self.cfg.min_support, min_prob=self.cfg.min_prob)
        idx = learn_index(arm_dir, embedder=self.embedder)
        rewriter = Rewriter.load(
            arm_dir, RewriteSettings(**arm_settings("precomputed+global+personal")), embedder=self.embedder
        )
        return rewriter, {
            "table_version": rw["version"],
            "rewrites": rw["rewrites"],
            "index_entries": idx.get("entries"),
            "seconds": round(time.perf_counter() - t0, 1),
        }

    def _retrain(self, arm_dir: Path, heldout: Path) -> dict[str, Any]:
        from assistant.learning.nlu_retrain import RetrainConfig, retrain
        from assistant.trace.store import TraceStore

        cfg = RetrainConfig(
            min_confidence=self.cfg.min_confidence,
            threads=self.cfg.threads,
            heldout_runs=[str(heldout)],
            min_rows=self.cfg.min_rows,
        )
        store = TraceStore(arm_dir / "traces.db", read_only=True)
        t0 = time.perf_counter()
        try:
            res = retrain(store, arm_dir, cfg, trainer=self.trainer, scorers=self.scorers, progress=bool(self.progress))
        finally:
            store.close()
        return {
            "promoted": bool(res.get("promoted")),
            "version": res.get("version"),
            "why": res.get("why"),
            "labels": (res.get("data") or {}).get("labels"),
            "gates": {
                g: {k: r.get(k) for k in ("passed", "current", "candidate")}
                for g, r in (res.get("gates") or {}).items()
            },
            "seconds": round(time.perf_counter() - t0, 1),
        }

    def _arm_settings(self, arm_dir: Path) -> Any:
        """The pipeline settings of an arm's next week: its promoted NLU version, if any (else the shipped one)."""
        from assistant.learning.nlu_retrain import current_model_dir

        model = current_model_dir(arm_dir, Path(self.settings.resolve_path(self.settings.nlu.model_dir)))
        return self.settings.model_copy(update={"nlu": self.settings.nlu.model_copy(update={"model_dir": str(model)})})

    # -- the loop --------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.cfg
        t0 = time.perf_counter()
        week0 = self.out / "week0"
        self._say(f"week 0 (shared): {c.households} households, days 0..{c.days_per_week - 1}")
        first = self._run(week0, self._sim(0, c.days_per_week))
        heldout = self.out / "heldout"
        self._say(f"held-out gate run: households {c.households}..{c.households + c.heldout_households - 1}")
        held = self._run(
            heldout, self._sim(0, c.heldout_days, first_household=c.households, households=c.heldout_households)
        )
        weeks: dict[str, list[dict[str, Any]]] = {arm: [{"week": 0, **first}] for arm in c.arms}
        for arm in c.arms:
            arm_dir = self.out / arm.replace("+", "_")
            arm_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(week0 / "traces.db", arm_dir / "traces.db")
        for k in range(1, c.weeks):
            for arm in c.arms:
                arm_dir = self.out / arm.replace("+", "_")
                row: dict[str, Any] = {"week": k}
                rewriter = None
                if "rewrites" in arm:
                    self._say(f"week {k} {arm}: mining rewrites from weeks 0..{k - 1}")
                    rewriter, row["rewrites"] = self._rewriter(arm_dir)
                if "retrain" in arm:
                    self._say(f"week {k} {arm}: retraining the NLU on weeks 0..{k - 1}")
                    row["retrain"] = self._retrain(arm_dir, heldout)
                settings = self._arm_settings(arm_dir)
                row["nlu_model"] = Path(settings.nlu.model_dir).name
                week_dir = arm_dir / f"week{k}"
                self._say(f"week {k} {arm}: days {k * c.days_per_week}..{(k + 1) * c.days_per_week - 1}")
                row.update(self._run(week_dir, self._sim(k * c.days_per_week, c.days_per_week), settings, rewriter))
                row["rewritten_turns"] = sum(1 for r in _read(week_dir / "sim_truth.jsonl") if r.get("rewrite"))
                merge_traces(arm_dir / "traces.db", week_dir / "traces.db")
                weeks[arm].append(row)
        res = {
            "config": {**asdict(c), "voices": list(c.voices), "arms": list(c.arms)},
            "heldout_gate_run": held,
            "weeks": weeks,
            "table": table(weeks),
            "pooled": compare(self.out, list(c.arms), c.weeks),
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "out": str(self.out),
        }
        (self.out / "loop_result.json").write_text(json.dumps(res, indent=1, default=str))
        return res


def compare(out: Path, arms: list[str], weeks: int) -> dict[str, Any]:
    """The learning weeks (1 .. weeks-1) of every arm pooled, against the first arm: defect rates, relative change and
    95% bootstrap intervals over goals and over households (the same agendas in every arm, resampled together;
    assistant/learning/ab.py), read from the runs on disk."""
    from assistant.learning.ab import accumulate, summarise
    from assistant.simulate.rewrite_ab import outcomes

    results = []
    for arm in arms:
        rows = []
        for k in range(1, weeks):
            for r in _read(Path(out) / arm.replace("+", "_") / f"week{k}" / "sim_truth.jsonl"):
                r["group"] = f"week{k}"
                rows.append(r)
        results.append(accumulate(arm, outcomes(rows)))
    keep = ("arm", "turns", "defect_rate", "relative_reduction_vs_none", "ci95")
    return {"weeks": f"1..{weeks - 1}", "arms": [{k: a.get(k) for k in keep} for a in summarise(results)]}


def report(out: Path) -> dict[str, Any]:
    """A finished loop's result (`<out>/loop_result.json`), its pooled comparison recomputed from the runs."""
    res = json.loads((Path(out) / "loop_result.json").read_text())
    res["pooled"] = compare(Path(out), res["config"]["arms"], res["config"]["weeks"])
    return res


def table(weeks: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per week: each arm's defect rate and goal success, and the change against the first arm."""
    arms = list(weeks)
    out = []
    for i in range(max(len(v) for v in weeks.values())):
        row: dict[str, Any] = {"week": i}
        for arm in arms:
            w = weeks[arm][i] if i < len(weeks[arm]) else {}
            row[arm] = {
                "defect_rate": w.get("defect_rate"),
                "goal_success": (w.get("goals") or {}).get("achieved_rate"),
            }
        base = row[arms[0]]["defect_rate"]
        for arm in arms[1:]:
            d = row[arm]["defect_rate"]
            row[arm]["relative_vs_" + arms[0]] = round((d - base) / base, 4) if base and d is not None else None
        out.append(row)
    return out


def merge_traces(dst: Path, src: Path) -> int:
    """Add every session, turn, span and event of the trace store `src` to `dst` (same schema) in one transaction;
    a turn id already in `dst` is an error (two runs that would overwrite each other). Returns the turns added."""
    db = sqlite3.connect(dst, timeout=30)
    try:
        db.execute("ATTACH DATABASE ? AS src", (str(src),))
        clash = db.execute(
            "SELECT COUNT(*) FROM src.turns WHERE turn_id IN (SELECT turn_id FROM main.turns)"
        ).fetchone()
        if clash[0]:
            raise ValueError(f"{clash[0]} turns of {src} are already in {dst}")
        with db:
            db.execute(
                "INSERT INTO main.sessions SELECT * FROM src.sessions WHERE true ON CONFLICT(session_id) DO UPDATE "
                "SET last_turn_at=max(last_turn_at, excluded.last_turn_at)"
            )
            n = db.execute("INSERT INTO main.turns SELECT * FROM src.turns").rowcount
            db.execute("INSERT INTO main.spans SELECT * FROM src.spans")
            db.execute(
                "INSERT INTO main.events(turn_id, type, t_ms, data, created_at) "
                "SELECT turn_id, type, t_ms, data, created_at FROM src.events ORDER BY event_id"
            )
        db.execute("DETACH DATABASE src")
        return n
    finally:
        db.close()


def to_markdown(res: dict[str, Any]) -> str:
    arms = res["config"]["arms"]
    head = "| week | " + " | ".join(f"{a} defect rate / goal success" for a in arms) + " |"
    lines = [head, "|" + "---|" * (len(arms) + 1)]
    for row in res["table"]:
        cells = []
        for a in arms:
            r = row[a]
            rel = next((v for k, v in r.items() if k.startswith("relative_vs_")), None)
            cell = f"{r['defect_rate']} / {r['goal_success']}"
            cells.append(cell + (f" ({rel:+.1%})" if rel is not None else ""))
        lines.append(f"| {row['week']} | " + " | ".join(cells) + " |")
    pooled = res.get("pooled") or {}
    for a in (pooled.get("arms") or [])[1:]:
        ci = (a.get("ci95") or {}).get("goal", {}).get("relative_reduction_vs_none")
        base = pooled["arms"][0]["arm"]
        lines.append(
            f"- weeks {pooled['weeks']} pooled: {a['arm']} {a['defect_rate']} vs {base} "
            f"{pooled['arms'][0]['defect_rate']}: relative reduction {a['relative_reduction_vs_none']:+.1%} "
            f"(95% CI over goals {ci})"
        )
    for arm, ws in res["weeks"].items():
        for w in ws[1:]:
            if "retrain" in w:
                r = w["retrain"]
                gates = ", ".join(f"{g} {v['current']}->{v['candidate']}" for g, v in r["gates"].items())
                verdict = (
                    f"promoted v{r['version']}" if r["promoted"] else f"not promoted: {r['why'] or 'a gate failed'}"
                )
                lines.append(f"- {arm} week {w['week']}: {r['labels']} labels; {verdict} ({gates}); {r['seconds']} s")
    return "\n".join(lines)
