"""A/B of self-learned query rewriting on the household simulator: learn on training days, test on held-out ones.

Protocol (`assistant learn evaluate`):

1. TRAIN: simulate households 0..N-1 for days 0..T-1 with no rewrite stage (per-member user ids, a few popular
   requests shared by the population). The traces go to `<out>/train/traces.db`; then, with the library functions,
   label + export + mine + solve -> precomputed table (`learn_rewrites`), and label + export -> online index
   (`learn_index`), both in `<out>/train` (the learned data dir). Nothing is hand-written: every rewrite comes from
   the simulated users' reformulation chains.
2. TEST, once per arm (none / precomputed / + online global / + personal), same seed: households 0..N-1 on the
   held-out days T..T+D-1 (the personal layer has their history) and held-out households N..N+H-1 (never seen in
   training, global layers only) for the same days. Same goals, voices, noise and speech/ASR cache in every arm;
   `Pipeline.rewriter` is the arm's rewriter.
3. Per turn a `TurnOutcome`: defect from the simulator's truth; the applied rewrite (the turn record's `rewrite`);
   `rewrite_correct`: the counterfactual is computed directly - the same transcript run without rewriting on a
   second pipeline of the household - True (win) when the rewritten turn met the goal and the unrewritten one did
   not, False (loss) for the reverse, None when both agree (tie).

Episodes diverge across arms once an outcome changes (the simulated person reacts to it), so besides the per-turn
defect rate the summary has goal-level figures: goals, goals achieved, turns per goal, defect turns per goal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.simulate.run import SimConfig, Simulator

GROUPS = ("same", "heldout")
ACHIEVED = ("achieved", "unsupported-ok", "clarify")


@dataclass
class ABConfig:
    households: int = 4
    """Households seen in training (tested on their held-out days)."""
    heldout_households: int = 2
    """Households never seen in training (tested on the same held-out days)."""
    train_days: int = 4
    test_days: int = 2
    seed: int = 0
    voices: tuple[str, ...] = ("piper", "espeak")
    shared_goals: int = 8
    habitual_rephrase: float = 0.0
    feedback_rate: float = 0.15
    """Training days only. The test days never ask "Did I answer your question?": whether it is asked hangs on the
    turn id (random), which would make the arms' episodes differ for no reason."""
    false_wake_rate: float = 0.3
    min_support: int = 3
    min_prob: float = 0.7
    min_users: int = 1
    max_turns: int | None = None
    """Per simulator run (tests only: arms may then stop at different goals)."""
    tune_days: int = 0
    """Days after the training days on which the online threshold is tuned (0: keep the default). The test days
    come after them, so the threshold is never chosen on the days it is measured on."""
    min_win_loss: float = 4.0
    """Tuning: the threshold with the most net wins among those whose win:loss is at least this."""
    identify_speakers: bool = False
    """SimConfig.identify_speakers: the per-person history comes from the speaker stage, errors included."""
    own_voices: bool = False
    """SimConfig.own_voices: members who would share a synthetic voice get their own."""
    n_members: int | None = None
    """Members per household (None: 1 to 4, drawn per household)."""
    learned_gate: bool = True
    """Fit the learned online gate on the tuning days' shadow candidates (learning/rewrite_gate.py)."""
    personal_meanings: float = 0.0
    """SimConfig.personal_meanings: how often a member has each kind of personal meaning (simulate/meanings.py)."""
    reuse_train: bool = False
    """Reuse `<out>/train`'s simulated training days when they were run with the same simulation settings: only the
    learning (mining, Markov chains, index) runs again (the training days do not depend on the rewrite code)."""


@dataclass
class RewriteAB:
    settings: Any
    out: Path
    cfg: ABConfig = field(default_factory=ABConfig)
    cache_dir: Path | None = None
    pipeline_factory: Callable[..., Any] | None = None
    embedder: Any = None
    progress: Callable[[str], None] | None = None
    train_summary: dict[str, Any] = field(default_factory=dict)
    test_summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    tune_summary: dict[str, Any] = field(default_factory=dict)
    rewrite_overrides: dict[str, Any] = field(default_factory=dict)
    """RewriteSettings values for the test arms (the tuned `min_online_score`)."""

    @property
    def test_first_day(self) -> int:
        return self.cfg.train_days + self.cfg.tune_days

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.cache_dir = Path(self.cache_dir) if self.cache_dir else self.out / "speech_cache"

    @property
    def data_dir(self) -> Path:
        """The learned data dir: training traces, rewrite table versions, online index."""
        return self.out / "train"

    def _sim_cfg(self, **kw: Any) -> SimConfig:
        c = self.cfg
        kw.setdefault("feedback_rate", c.feedback_rate)
        return SimConfig(
            seed=c.seed,
            voices=c.voices,
            false_wake_rate=c.false_wake_rate,
            member_users=True,
            identify_speakers=c.identify_speakers,
            own_voices=c.own_voices,
            shared_goals=c.shared_goals,
            habitual_rephrase=c.habitual_rephrase,
            max_turns=c.max_turns,
            personal_meanings=c.personal_meanings,
            n_members=c.n_members,
            **kw,
        )

    def _say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    # -- 1. train ------------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        from assistant.learning.jobs import learn_index, learn_rewrites

        c = self.cfg
        t0 = time.perf_counter()
        self._say(f"train: {c.households} households x {c.train_days} days (seed {c.seed})")
        key = self._train_key()
        key_path = self.data_dir / "train_sim.json"
        if c.reuse_train and key_path.is_file() and json.loads(key_path.read_text()) == key:
            stats = json.loads((self.data_dir / "run_stats.json").read_text())
            self._say(f"train: reusing the simulated training days in {self.data_dir}")
        else:
            if c.reuse_train and key_path.is_file():
                raise RuntimeError(
                    f"{self.data_dir} holds training days simulated with other settings "
                    f"({json.loads(key_path.read_text())}); use another --out or drop --reuse-train"
                )
            sim = Simulator(
                self.settings,
                self.data_dir,
                self._sim_cfg(households=c.households, days=c.train_days),
                self.cache_dir,
                self.pipeline_factory,
                self.progress,
            )
            stats = sim.run()
            key_path.write_text(json.dumps(key))
        truth = _read(self.data_dir / "sim_truth.jsonl")
        self._say(f"train: {stats['turns']} turns; mining")
        t_mine = time.perf_counter()
        rw = learn_rewrites(self.data_dir, min_support=c.min_support, min_prob=c.min_prob, min_users=c.min_users)
        mine_seconds = time.perf_counter() - t_mine
        embedder = self.embedder
        if embedder is None:
            from assistant.backends.embed.minilm import MiniLmEmbedder

            embedder = self.embedder = MiniLmEmbedder()
        t_idx = time.perf_counter()
        idx = learn_index(self.data_dir, embedder=embedder)
        self.train_summary = {
            "learn_seconds": {"rewrites": round(mine_seconds, 1), "index": round(time.perf_counter() - t_idx, 1)},
            "households": c.households,
            "days": c.train_days,
            "turns": stats["turns"],
            "defect_rate": round(sum(r["defect"] for r in truth) / len(truth), 4) if truth else None,
            "wall_seconds": stats["wall_seconds"],
            "cache": stats["cache"],
            "table": {
                "version": rw["version"],
                "rewrites": rw["rewrites"],
                "mining": rw["mining"],
                "solve": rw["solve"],
                "sample": dict(list(rw["table"].items())[:15]),
            },
            "index": {k: idx.get(k) for k in ("version", "entries", "users", "personal_rows")},
            "seconds": round(time.perf_counter() - t0, 1),
        }
        return self.train_summary

    def _train_key(self) -> dict[str, Any]:
        """What the simulated training days depend on (reuse_train checks it)."""
        c = self.cfg
        keys = ("households", "train_days", "seed", "shared_goals", "habitual_rephrase", "feedback_rate")
        return {
            **{k: getattr(c, k) for k in keys},
            "voices": list(c.voices),
            "false_wake_rate": c.false_wake_rate,
            "personal_meanings": c.personal_meanings,
            "max_turns": c.max_turns,
            "n_members": c.n_members,
        }

    # -- 1b. tune -------------------------------------------------------------------------------------------------
    def tune(self) -> dict[str, Any]:
        """Choose `min_online_score` on the tuning days: the training households run unrewritten while a shadow
        rewriter (online global + personal, applying nothing) proposes its best candidate for every request; each
        candidate is run on the counterfactual pipeline against the goal. A candidate above a threshold would be a
        win (the turn failed, the candidate would not) or a loss (the reverse); the threshold with the most net wins
        among those with win:loss >= `min_win_loss` is kept."""
        from assistant.config import RewriteSettings
        from assistant.understanding.rewrite import Rewriter

        c = self.cfg
        out = self.out / "tune"
        self._say(f"tune: {c.households} households, days {c.train_days}..{c.train_days + c.tune_days - 1}")
        sim = Simulator(
            self.settings,
            out,
            self._sim_cfg(households=c.households, days=c.tune_days, first_day=c.train_days, feedback_rate=0.0),
            self.cache_dir,
            self.pipeline_factory,
            self.progress,
        )
        # min_online_score above 1: no candidate is ever applied, only proposed (model_copy skips the 0-1 check)
        from assistant.learning.rewrite_gate import GATE_FILE

        (self.data_dir / GATE_FILE).unlink(missing_ok=True)  # the shadow proposes with the hand-set ranker
        # the shadow offers what a learned gate would weigh (the lower coverage floor); the hand-set fallback's sweep
        # only counts the candidates its own floor lets through
        base = RewriteSettings(**self.rewrite_overrides)
        shadow = RewriteSettings(precomputed=False, learned_gate=False).model_copy(
            update={"min_online_score": 1.01, "min_coverage": base.gated_min_coverage}
        )
        sim.shadow_rewriter = Rewriter.load(self.data_dir, shadow, embedder=self.embedder)
        stats = sim.run()
        rows = [r for r in _read(out / "sim_truth.jsonl") if r.get("shadow")]
        hand = [r for r in rows if (r["shadow"].get("features") or {}).get("coverage", 1.0) >= base.min_coverage]
        self.tune_summary = {"turns": stats["turns"], "candidates": len(rows), **sweep(hand, c.min_win_loss)}
        if self.tune_summary["chosen"] is not None:
            self.rewrite_overrides["min_online_score"] = self.tune_summary["chosen"]
        # the learned gate: fitted on the same shadow candidates (their recorded wins / losses), used by the test
        # arms' rewriters instead of the hand-set score when it fits (learning/rewrite_gate.py)
        from assistant.learning.rewrite_gate import fit_gate

        gate = fit_gate(rows, c.min_win_loss) if c.learned_gate else None
        if gate is not None:
            gate.save(self.data_dir)
            self.tune_summary["gate"] = {k: v for k, v in asdict(gate).items() if k != "fit"} | {
                "fit": {k: v for k, v in gate.fit.items() if k != "sweep"}
            }
        else:
            self.tune_summary["gate"] = None
        return self.tune_summary

    # -- 2. test -------------------------------------------------------------------------------------------------
    def run_arm(self, arm: str, rewriter: Any) -> list[dict[str, Any]]:
        """Simulate the held-out days (and households) with `rewriter`; returns the truth rows (with `group`)."""
        c = self.cfg
        rows: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        for group, first, n in (("same", 0, c.households), ("heldout", c.households, c.heldout_households)):
            if n <= 0:
                continue
            out = self.out / "test" / arm / group
            self._say(
                f"test {arm}/{group}: households {first}..{first + n - 1}, days "
                f"{self.test_first_day}..{self.test_first_day + c.test_days - 1}"
            )
            sim = Simulator(
                self.settings,
                out,
                self._sim_cfg(
                    households=n,
                    days=c.test_days,
                    first_day=self.test_first_day,
                    first_household=first,
                    feedback_rate=0.0,
                ),
                self.cache_dir,
                self.pipeline_factory,
                self.progress,
            )
            sim.rewriter = rewriter
            sim.counterfactual = rewriter is not None
            stats = sim.run()
            part = _read(out / "sim_truth.jsonl")
            for r in part:
                r["group"] = group
            rows += part
            summary[group] = {"turns": stats["turns"], "wall_seconds": stats["wall_seconds"], "cache": stats["cache"]}
        summary["goals"] = goal_stats(rows)
        summary["goals_by_group"] = {g: goal_stats([r for r in rows if r["group"] == g]) for g in GROUPS}
        summary["defect_rate_by_group"] = {
            g: round(sum(r["defect"] for r in rows if r["group"] == g) / n, 4)
            for g in GROUPS
            if (n := sum(1 for r in rows if r["group"] == g))
        }
        self.test_summary[arm] = summary
        return rows

    def simulate(self, arm: str, rewriter: Any, sessions: int = 0, seed: int | None = None) -> Iterator[Any]:
        """`ab.evaluate`'s simulator entry point (sessions / seed are fixed by the ABConfig)."""
        return iter(outcomes(self.run_arm(arm, rewriter)))

    def evaluate(self, arms: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Train (unless done), run every arm, return ab.evaluate's table plus train/test/goal summaries."""
        from assistant.learning.ab import ARMS, evaluate

        if not self.train_summary:
            self.train()
        if self.cfg.tune_days and not self.tune_summary:
            self.tune()
        res = evaluate(self.simulate, self.data_dir, 0, self.cfg.seed, arms or ARMS, self.rewrite_overrides)
        res.pop("sessions", None)
        for a in res["arms"]:
            a.update(
                {
                    k: v
                    for k, v in self.test_summary.get(a["arm"], {}).items()
                    if k in ("goals", "goals_by_group", "defect_rate_by_group")
                }
            )
        nlu = Path(self.settings.resolve_path(self.settings.nlu.model_dir)) / "labels.json"
        try:
            nlu_version = json.loads(nlu.read_text()).get("version")
        except (OSError, ValueError):
            nlu_version = None
        res.update(
            {
                "config": {**asdict(self.cfg), "voices": list(self.cfg.voices)},
                "train": self.train_summary,
                "tune": self.tune_summary,
                "rewrite_settings": self.rewrite_overrides,
                "test": {a: {g: s[g] for g in GROUPS if g in s} for a, s in self.test_summary.items()},
                "nlu_model_version": nlu_version,
                "out": str(self.out),
                "cache": str(self.cache_dir),
            }
        )
        (self.out / "ab_result.json").write_text(json.dumps(res, indent=1, default=str))
        return res


# -- tuning -------------------------------------------------------------------------------------------------------
THRESHOLDS = tuple(round(0.5 + 0.025 * i, 3) for i in range(19))  # 0.50 .. 0.95
MIN_WINS = 3


def sweep(rows: list[dict[str, Any]], min_win_loss: float = 4.0) -> dict[str, Any]:
    """Wins / losses / ties per `min_online_score` over truth rows with a `shadow` candidate; `chosen` is the
    threshold with the most net wins (wins - losses) among those with win:loss >= min_win_loss (and >= 1 win),
    the higher one on a tie; None when no threshold qualifies."""
    table = []
    for th in THRESHOLDS:
        w = l = ties = 0
        for r in rows:
            sh = r["shadow"]
            if sh["score"] < th:
                continue
            if r["defect"] and not sh["defect"]:
                w += 1
            elif not r["defect"] and sh["defect"]:
                l += 1
            else:
                ties += 1
        table.append({"threshold": th, "applied": w + l + ties, "wins": w, "losses": l, "ties": ties})
    # a threshold needs MIN_WINS wins behind it: with a handful of candidates one lucky win would otherwise pick a
    # permissive threshold (seen: 7 candidates chose 0.55, and its rewrites lost 12 to 6); then the default stays
    ok = [t for t in table if t["wins"] >= MIN_WINS and (t["losses"] == 0 or t["wins"] / t["losses"] >= min_win_loss)]
    best = max(ok, key=lambda t: (t["wins"] - t["losses"], t["threshold"]), default=None)
    return {"sweep": table, "min_win_loss": min_win_loss, "chosen": best["threshold"] if best else None}


# -- outcomes -----------------------------------------------------------------------------------------------------
def outcomes(rows: Iterable[dict[str, Any]]) -> list[Any]:
    """TurnOutcome per truth row: defect, applied rewrite, win (True) / loss (False) / tie (None) vs no rewrite."""
    from assistant.learning.ab import TurnOutcome

    out = []
    for r in rows:
        rw = r.get("rewrite")
        correct = None
        cf = r.get("no_rewrite")
        if rw and rw.get("applied") and cf is not None and bool(cf["defect"]) != bool(r["defect"]):
            correct = not r["defect"]
        g = r.get("group", "")
        out.append(
            TurnOutcome(
                defect=bool(r["defect"]),
                rewrite=rw,
                rewrite_correct=correct,
                goal=f"{g}:{r.get('episode')}",
                household=f"{g}:{r.get('household')}",
                personal=bool((r.get("goal") or {}).get("expect")),
            )
        )
    return out


def goal_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Goal level (an episode with a goal): achieved = some turn of it met the goal."""
    eps: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("goal") and r.get("episode"):
            eps.setdefault(f"{r.get('group', '')}:{r['episode']}", []).append(r)
    n = len(eps)
    achieved = sum(any(t.get("outcome") in ACHIEVED for t in ts) for ts in eps.values())
    turns = sum(len(ts) for ts in eps.values())
    defects = sum(sum(bool(t["defect"]) for t in ts) for ts in eps.values())
    return {
        "goals": n,
        "achieved": achieved,
        "achieved_rate": round(achieved / n, 4) if n else None,
        "turns_per_goal": round(turns / n, 3) if n else None,
        "defect_turns_per_goal": round(defects / n, 3) if n else None,
    }


def first_requests(rows: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(group, episode, first spoken request) of every goal: identical across arms by construction."""
    return sorted(
        (r.get("group", ""), r["episode"], r["spoken"]) for r in rows if r.get("goal") and r.get("attempt") == 0
    )


def pool(outs: list[Path]) -> dict[str, Any]:
    """Several A/B runs (their `--out` folders) pooled: every arm's test turns from every run, the units (goals,
    households) kept apart per run, one summary with bootstrap intervals (`assistant learn evaluate --pool`)."""
    from assistant.learning.ab import accumulate, summarise

    outs = [Path(o) for o in outs]
    arms: list[str] | None = None
    for o in outs:
        res = json.loads((o / "ab_result.json").read_text())
        names = [a["arm"] for a in res["arms"]]
        arms = names if arms is None else [a for a in arms if a in names]
    results, goals = [], {}
    for arm in arms or []:
        rows: list[dict[str, Any]] = []
        for o in outs:
            for group in GROUPS:
                for r in _read(o / "test" / arm / group / "sim_truth.jsonl"):
                    r["group"] = f"{o}/{group}"
                    rows.append(r)
        results.append(accumulate(arm, outcomes(rows)))
        goals[arm] = goal_stats(rows)
    summary = summarise(results)
    for a in summary:
        a["goals"] = goals[a["arm"]]
    return {"pooled": [str(o) for o in outs], "arms": summary}


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


_DEFAULT: RewriteAB | None = None


def configure(ab: RewriteAB | None) -> None:
    """Set the experiment the module-level `simulate` runs (ab.evaluate's hook)."""
    global _DEFAULT
    _DEFAULT = ab


def simulate(arm: str, rewriter: Any, sessions: int = 0, seed: int = 0) -> Iterator[Any]:
    """`assistant.learning.ab.evaluate`'s entry point: the configured experiment's test phase for one arm."""
    if _DEFAULT is None:
        raise RuntimeError(
            "rewrite_ab.configure(RewriteAB(...)) first (and .train() it): `assistant learn evaluate` does both"
        )
    return _DEFAULT.simulate(arm, rewriter, sessions, seed)


def run_ab(
    settings: Any,
    out: Path,
    cfg: ABConfig,
    cache_dir: Path | None = None,
    arms: tuple[str, ...] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`assistant learn evaluate`: train, then every arm on the held-out days, with this experiment configured as the
    module-level `simulate` while it runs."""
    ab = RewriteAB(settings, out, cfg, cache_dir, progress=progress)
    configure(ab)
    try:
        return ab.evaluate(arms)
    finally:
        configure(None)


__all__ = [
    "ABConfig",
    "RewriteAB",
    "configure",
    "first_requests",
    "goal_stats",
    "outcomes",
    "pool",
    "run_ab",
    "simulate",
]
