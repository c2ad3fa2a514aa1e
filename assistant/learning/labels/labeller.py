"""Goal segmentation, goal success and failure point isolation from the trace store alone.

Per session (turns in order):

1. **segmentation**: left to right, the link model gives P(turn continues the open goal) from the previous turn, the
   goal's first turn, timing (idle time after the answer), clarifying / feedback questions, "stop", the learned
   rephrase detector's pairs and lexical similarity; >= 0.5 joins the goal, else a new goal starts;
2. **turn model** (multinomial): P(correct | false_wake | asr | nlu | entity_resolution | result) for every turn from
   its own record (ASR and NLU confidences, n-best margin, word oddness, resolution, action status, response),
   its goal (retried? reached later? "stop"? feedback?) and counterfactual NLU re-runs (`counterfactual.py`);
   P(defect) = 1 - P(correct), and the failure point = the stage with the highest probability given a defect;
3. **goal model**: P(goal succeeded) from its turns' P(correct), the last request's outcome and what followed.

All three are logistic regressions (`model.py`) trained on simulator truth (`assistant train labels`); weights in
models/labels/.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import REPO_ROOT
from assistant.errors import ModelError
from assistant.learning.labels.counterfactual import Counterfactuals, History, default_vocab_path
from assistant.learning.labels.evidence import (
    WALK_AWAY_LR,
    combine,
    combine_joint,
    combine_link,
    cut_off_ratio,
    likelihood_ratios,
    wake_ratio,
)
from assistant.learning.labels.features import TurnView, Vocab, goal_features, link_features, turn_features, view
from assistant.learning.labels.lm import BigramLM
from assistant.learning.labels.model import Logistic, load_model
from assistant.learning.labels.redecode import Redecoder, cut_off_features
from assistant.learning.signals import SignalConfig, iter_sessions, session_signals

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "labels"
TRAIN_CMD = "assistant train labels --runs SIM_DIR... --out models/labels"


@dataclass
class SessionInput:
    """One session as the labeller sees it: the turns' views and the rephrase detector's pairs."""

    views: list[TurnView]
    pairs: dict[tuple[str, str], float]
    """(turn_id, rephrase_turn_id) -> score"""


@dataclass
class TurnLabel:
    turn_id: str
    goal_id: str
    goal_index: int
    goal_success: float
    defect: float
    failure_point: str | None
    stage_probs: dict[str, float]


_LOGGER = logging.getLogger(__name__)


def load_sessions(store: Any, detector: Any = None, now: float | None = None) -> Iterator[SessionInput]:
    """Sessions of the store with signals and (if a detector is given) learned rephrase pairs."""
    cfg = SignalConfig()
    for turns, n in iter_sessions(store):
        sig = session_signals(turns, cfg, now)
        pairs: dict[tuple[str, str], float] = {}
        if detector is not None and len(turns) > 1:
            for r in detector.detect(turns):
                pairs[(r.turn_id, r.rephrase_turn_id)] = float(r.score)
        views = [view(t, sig[t["turn_id"]]) for t in turns[:n]]
        yield SessionInput(views, pairs)


def _base_installed() -> bool:
    try:
        from assistant.backends.asr.whisper_base import package_dirs

        package_dirs()
    except ModelError:
        return False
    return True


def goal_id_for(turn_id: str) -> str:
    return "g-" + hashlib.sha1(turn_id.encode()).hexdigest()[:16]


class Labeller:
    def __init__(
        self,
        link: Logistic,
        turn: Logistic,
        stage: Logistic,
        goal: Logistic,
        version: str,
        counterfactuals: Counterfactuals | None = None,
        vocab: Vocab | None = None,
        lm: BigramLM | None = None,
        redecoder: Redecoder | None = None,
        solo: Logistic | None = None,
    ) -> None:
        self.link, self.turn, self.stage, self.goal = link, turn, stage, goal
        self.solo = solo
        """P(defect) of a turn on its own (no goal around it): tells the link model whether the previous turn looked
        right, so a quick request after a good answer reads as a new goal, not a retry. None in older models."""
        self.solo_probs: dict[str, float] = {}
        self.lm = lm
        self.history: History | None = None
        """Set per store (`History.from_store`): the users' successful requests elsewhere."""
        self.version = version
        self.cf = counterfactuals or Counterfactuals()
        self.rd = redecoder or Redecoder(enabled=False)
        self.vocab = vocab or Vocab.from_tokenizer(default_vocab_path())

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        counterfactuals: bool = True,
        redecode_cache: Path | None = None,
        redecode: bool | None = None,
    ) -> Labeller:
        """`redecode` None: re-decode the kept audio if the model was trained with it (its features then matter)."""
        d = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        paths = [d / "link.json", d / "turn.json", d / "stage.json", d / "goal.json"]
        for p in paths:
            if not p.is_file():
                raise ModelError(
                    "labels-model-missing", f"labeller model file not found: {p}. Train it with `{TRAIN_CMD}`."
                )
        link, turn, stage, goal = (load_model(p) for p in paths)
        version = turn.meta.get("version", "labels-?")
        lm = BigramLM.load(d / "lm.json.gz") if (d / "lm.json.gz").is_file() else None
        rd_model = stage.meta.get("redecode_model") or "tiny.en"
        if redecode is None:
            redecode = bool(stage.meta.get("redecode"))
            if redecode and rd_model == "base" and not _base_installed():
                # labelled as a store without request audio (the model learned both): slower ear, same labels
                _LOGGER.warning("Whisper base is not installed (the asr-base extra): labelling without re-decodes")
                redecode = False
        rd = Redecoder(enabled=counterfactuals and redecode, cache_file=redecode_cache, model=rd_model)
        solo = load_model(d / "solo.json") if (d / "solo.json").is_file() else None
        cf = Counterfactuals(enabled=counterfactuals)
        return cls(link, turn, stage, goal, version, cf, lm=lm, redecoder=rd, solo=solo)

    # -- the three steps -------------------------------------------------------------------------------------------
    def solo_row(self, t: TurnView) -> dict[str, float]:
        """The turn's features as if it were a goal of its own (nothing before or after it)."""
        return turn_features(t, [t], 0, None, self.cf.features(t, None), self.vocab, 0.0)

    def solo_defect(self, t: TurnView) -> float:
        if t.turn_id not in self.solo_probs:
            p = float(self.solo.predict_proba(self.solo.vector(self.solo_row(t)))[0, 1])
            self.solo_probs[t.turn_id] = p
        return self.solo_probs[t.turn_id]

    def link_row(self, s: SessionInput, i: int, goal_start: int) -> dict[str, float]:
        prev, cur, first = s.views[i - 1], s.views[i], s.views[goal_start]
        reph = s.pairs.get((prev.turn_id, cur.turn_id), 0.0)
        reph_goal = max(
            (s.pairs.get((s.views[j].turn_id, cur.turn_id), 0.0) for j in range(goal_start, i)), default=0.0
        )
        f = link_features(prev, cur, first, reph, reph_goal)
        if self.solo is not None:
            p = self.solo_defect(prev)
            f["prev_solo_defect"] = p
            f["prev_solo_ok_x_quick"] = (1.0 - p) * f["idle_le_4"]
            f["prev_solo_ok_x_new_intent"] = (1.0 - p) * float(prev.intent != cur.intent and cur.intent is not None)
        return f

    def segment(self, s: SessionInput) -> list[list[int]]:
        goals: list[list[int]] = []
        for i in range(len(s.views)):
            if not goals:
                goals.append([i])
                continue
            row = self.link_row(s, i, goals[-1][0])
            p = self.link.predict_proba(self.link.vector(row))[0, 1]
            cur = s.views[i]
            walked_away = row.get("question_new_topic") and cur.substantive and self.solo is not None
            if walked_away and self.solo_defect(cur) < 0.5:
                # A question the next turn neither answers nor retries, with a request that stands on its own: the
                # person walked away from it. Rare in the simulator (the link model barely learns it), so a
                # hand-set likelihood ratio, as in evidence.py.
                p = combine_link(p, WALK_AWAY_LR)
            if p >= 0.5:
                goals[-1].append(i)
            else:
                goals.append([i])
        return goals

    def turn_rows(self, s: SessionInput, goals: list[list[int]]) -> list[dict[str, float]]:
        """Turn features of every turn, in session order."""
        rows: list[dict[str, float] | None] = [None] * len(s.views)
        for gi, g in enumerate(goals):
            gv = [s.views[i] for i in g]
            after = s.views[goals[gi + 1][0]] if gi + 1 < len(goals) else None
            for pos, i in enumerate(g):
                t = s.views[i]
                target = None
                if t.substantive:
                    later = [x for x in gv[pos + 1 :] if x.substantive]
                    target = next((x for x in reversed(later) if x.status == "done"), later[-1] if later else None)
                cf = self.cf.features(t, target)
                if self.history is not None:
                    cf.update(self.history.features(self.cf, t.user_id, t, {x.turn_id for x in gv}))
                reph = max((v for (a, _b), v in s.pairs.items() if a == t.turn_id), default=0.0)
                row = turn_features(t, gv, pos, after, cf, self.vocab, reph)
                row.update(self.rd.features(t, target, target is not None, self.cf.parse, self.lm))
                if self.lm is not None:
                    lm = self.lm.score(t.transcript)
                    row.update(lm)
                    row["lm_x_asr"] = lm["lm_logp"] * row["asr_conf"]
                    row["clean_text"] = float(row["asr_conf"] >= 0.8 and lm["lm_unseen_bigrams"] <= 0.3)
                    row["clean_x_nlu_wrong"] = row["clean_text"] * (1.0 - row["nlu_conf"])
                    row["garbled"] = float(row["asr_conf"] < 0.6 and lm["lm_unseen_bigrams"] >= 0.4)
                    row["lm_target"] = self.lm.score(target.transcript)["lm_logp"] if target is not None else 0.0
                    row.update(cut_off_features(t, target, self.lm))
                rows[i] = row
        return rows  # type: ignore[return-value]

    def label_session(self, s: SessionInput) -> list[TurnLabel]:
        return self.label_sessions([s])[0]

    def label_sessions(self, sessions: list[SessionInput]) -> list[list[TurnLabel]]:
        """Label several sessions with one call of each model (the per-call cost dominates small sessions)."""
        segs = [self.segment(s) if s.views else [] for s in sessions]
        rows = [r for s, g in zip(sessions, segs) for r in (self.turn_rows(s, g) if s.views else [])]
        if not rows:
            return [[] for _ in sessions]
        p_all = self.turn.predict_proba(np.array([self.turn.vector(r) for r in rows]))
        p_all = p_all[:, self.turn.classes.index("defect")]
        s_all = self.stage.predict_proba(np.array([self.stage.vector(r) for r in rows]))
        result, at = [], 0
        for s, g in zip(sessions, segs):
            n = len(s.views)
            result.append(self._finish(s, g, p_all[at : at + n], s_all[at : at + n], rows[at : at + n]))
            at += n
        return result

    def _finish(
        self, s: SessionInput, goals: list[list[int]], p_def: np.ndarray, S: np.ndarray, rows: list[dict[str, float]]
    ) -> list[TurnLabel]:
        out: list[TurnLabel] = []
        defects: dict[int, float] = {}
        stage_probs: dict[int, dict[str, float]] = {}
        for i, v in enumerate(s.views):  # the hand-set evidence (evidence.py), before the goals use P(defect)
            probs = {c: round(float(p), 4) for c, p in zip(self.stage.classes, S[i])}
            probs = combine(probs, likelihood_ratios(v) | cut_off_ratio(rows[i]))
            defects[i], stage_probs[i] = combine_joint(float(p_def[i]), probs, wake_ratio(v))
        for gi, g in enumerate(goals):
            gv = [s.views[i] for i in g]
            after = s.views[goals[gi + 1][0]] if gi + 1 < len(goals) else None
            ok = [1.0 - defects[i] for i in g]
            gf = goal_features(gv, ok, after)
            success = float(self.goal.predict_proba(self.goal.vector(gf))[0, 1])
            success = min(success, max(ok))  # a goal succeeds through a turn that went right, or not at all
            gid = goal_id_for(gv[0].turn_id)
            for pos, i in enumerate(g):
                defect, probs = defects[i], stage_probs[i]
                fp = max(probs, key=probs.get) if defect >= 0.5 else None
                out.append(TurnLabel(s.views[i].turn_id, gid, pos, round(success, 4), round(defect, 4), fp, probs))
        return out


def label_store(
    store: Any,
    model_dir: Path | None = None,
    detector: Any = "auto",
    counterfactuals: bool = True,
    now: float | None = None,
    batch_size: int = 2000,
    labeller: Labeller | None = None,
) -> dict[str, Any]:
    """Label every turn of the store (goal id, goal success, defect, failure point) and write the `goal_labels`
    table (replacing earlier rows: idempotent). Returns counts and speed."""
    t0 = time.perf_counter()
    lab = labeller or Labeller.load(model_dir, counterfactuals)
    det = rephrase_detector() if detector == "auto" else detector
    lab.history = History.from_store(store)
    pending: list[TurnLabel] = []
    turns = goals = failed_goals = defects = 0
    stages: dict[str, int] = {}
    chunk: list[SessionInput] = []
    in_chunk = 0
    for s in itertools.chain(load_sessions(store, det, now), [None]):  # streamed: memory is one chunk
        if s is not None:
            chunk.append(s)
            in_chunk += len(s.views)
            if in_chunk < 500:
                continue
        labels = [tl for out in lab.label_sessions(chunk) for tl in out]
        chunk, in_chunk = [], 0
        for tl in labels:
            turns += 1
            if tl.goal_index == 0:
                goals += 1
                failed_goals += tl.goal_success < 0.5
            if tl.failure_point:
                defects += 1
                stages[tl.failure_point] = stages.get(tl.failure_point, 0) + 1
        pending.extend(labels)
        if len(pending) >= batch_size:
            store.write_goal_labels(pending, lab.version)
            pending = []
    if pending:
        store.write_goal_labels(pending, lab.version)
    secs = time.perf_counter() - t0
    return {
        "turns": turns,
        "goals": goals,
        "failed_goals": failed_goals,
        "defective_turns": defects,
        "failure_points": dict(sorted(stages.items())),
        "labeler_version": lab.version,
        "rephrase_detector": getattr(det, "version", None) if det is not None else None,
        "counterfactual_nlu_runs": lab.cf.runs,
        "redecodes": lab.rd.decodes,
        "seconds": round(secs, 2),
        "turns_per_second": round(turns / secs, 1) if secs > 0 else None,
    }


def rephrase_detector(model_dir: Path | None = None) -> Any:
    """The learned rephrase detector when models/rephrase exists, else None (the link model then sees no pairs)."""
    from assistant.learning.rephrase_model import RephraseDetector

    return RephraseDetector(model_dir) if RephraseDetector.available(model_dir) else None
