"""Intent and slot labels for the turns of the trace store, proposed from the dialogue around each turn (issue 23).

The NLU's own parse of a turn is a context-free guess; the dialogue says more. Per goal (the goal labeller's
segmentation, `labeller.py`), for every request-like turn:

- **confirmed**: the turn itself worked (the goal labeller's P(defect) < 0.5: done, no retry, no "stop", feedback
  not "no"): its own parse is the label;
- **clarified**: the assistant asked "which one?" and the answer completed the goal: the request's parse was right;
- **rephrase** / **correction**: the turn failed and a later attempt in the same goal worked (a rephrase, a repeat,
  "no, I said ..."): the label is the later attempt's intent, with the later attempt's slot values found again in
  this turn's words (`align_slots`: fuzzy word windows; a value this turn does not contain is left out);
- **history**: the turn failed and nothing later in the goal worked, but the same user's most similar request
  elsewhere in the store (rapidfuzz >= 70, `counterfactual.History`) was carried out: its intent and aligned slots;
- **unconfirmed**: none of these: its own parse, with a low confidence.

Turns that are not requests get no label: stop / yes / no / feedback answers, answers to a clarifying question (the
skill matched them, not the NLU), taught routines (the taught memory, not the NLU, carried them out), empty or
false-wake turns (P(false_wake) highest). A turn a taught meaning or a rewrite changed is labelled on the text the NLU
saw (the user's own phrase is personal: it stays in the taught memory / rewrite tables).

The confidence is P(label right) from a small logistic model (`TurnLabelModel`, models/labels/turn_label.json) over
the label's context: its source, the goal labeller's defect and goal-success probabilities, the NLU confidences of
the turn and of the attempt it borrows from, how many of the borrowed slot values were found, ASR confidence and the
feedback. It is trained on simulator truth (`assistant train turn-labels`, never read at labelling time).

Reads only what `labeller.load_sessions` reads (the trace store), never a stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz

from assistant.config import REPO_ROOT
from assistant.learning.feedback import is_correction
from assistant.learning.labels.features import _YESNO, CONTROL_INTENTS, TurnView
from assistant.learning.labels.labeller import Labeller, SessionInput, TurnLabel
from assistant.learning.labels.model import Logistic
from assistant.learning.signals import similarity

DEFAULT_MODEL = REPO_ROOT / "models" / "labels" / "turn_label.json"
SOURCES = ("confirmed", "clarified", "rephrase", "correction", "history", "unconfirmed")
NOT_NLU = frozenset({"feedback", "routine", "teach", ""})
"""Record intents the NLU did not produce (feedback answers, taught routines, teaching)."""
_FILLER = frozenset({"the", "a", "an", "my", "to", "of", "please", "in", "on", "for", "some"})


@dataclass
class ProposedLabel:
    """One turn's generated label. `spans` are (start, end, slot type) character offsets into `text`."""

    turn_id: str
    session_id: str
    user_id: str
    started_at: float
    text: str
    intent: str
    slots: dict[str, str]
    spans: list[tuple[int, int, str]]
    source: str
    confidence: float
    parsed_intent: str | None
    parsed_confidence: float
    goal_id: str
    features: dict[str, float] = field(default_factory=dict)
    action: str = ""
    response: str = ""
    """What the assistant did with the turn (the contrastive pair model scores request words against it)."""

    def to_row(self) -> dict[str, Any]:
        """A training row for `assistant/training/nlu.py` (text, intent, spans)."""
        return {"text": self.text, "intent": self.intent, "spans": list(self.spans), "source": f"traces:{self.source}"}


# -- words and alignment -------------------------------------------------------------------------------------------
def _word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised word) of the whitespace-free word runs of `text` (punctuation outside the span)."""
    return [(m.start(), m.end(), m.group(0).lower().replace("’", "'")) for m in re.finditer(r"[\w'’]+", text)]


def align_slots(slots: dict[str, str], text: str, min_ratio: float = 80.0) -> tuple[list[tuple[int, int, str]], int]:
    """Character spans in `text` for the slot values of another utterance (the attempt that worked).

    For each value, the window of `text`'s words (as many words as the value, +-1) most similar to it (rapidfuzz
    ratio, content words only); kept when >= `min_ratio` and not overlapping a span already placed. Returns the
    spans (sorted) and how many values were found."""
    words = _word_spans(text)
    placed: list[tuple[int, int, str]] = []
    used: set[int] = set()
    found = 0
    for typ, value in sorted(slots.items(), key=lambda kv: -len(str(kv[1]))):
        vw = [w for _, _, w in _word_spans(str(value))]
        if not vw or not words:
            continue
        target = " ".join(vw)
        best: tuple[float, int, int] | None = None
        for n in {max(1, len(vw) - 1), len(vw), len(vw) + 1}:
            for i in range(0, len(words) - n + 1):
                if used & set(range(i, i + n)):
                    continue
                cand = [w for _, _, w in words[i : i + n]]
                if cand[0] in _FILLER and len(cand) > 1 and vw[0] not in _FILLER:
                    continue
                score = fuzz.ratio(" ".join(cand), target)
                if best is None or score > best[0] or (score == best[0] and n == len(vw)):
                    best = (score, i, n)
        if best is not None and best[0] >= min_ratio:
            _, i, n = best
            placed.append((words[i][0], words[i + n - 1][1], typ))
            used |= set(range(i, i + n))
            found += 1
    return sorted(placed), found


def parse_spans(view: TurnView, nlu_out: dict[str, Any] | None) -> list[tuple[int, int, str]]:
    """The turn's own slots as character spans (the NLU span's output carries start / end)."""
    out = []
    for s in (nlu_out or {}).get("slots") or ():
        if isinstance(s, dict) and s.get("start") is not None and s.get("end") is not None and s.get("name"):
            out.append((int(s["start"]), int(s["end"]), str(s["name"])))
    return sorted(out)


# -- the proposer ----------------------------------------------------------------------------------------------------
@dataclass
class TurnExtra:
    """What the labeller's TurnView does not keep but labels need: the text the NLU parsed and its slot spans."""

    nlu_text: str
    nlu_out: dict[str, Any] | None
    taught: str | None
    rewritten: bool


def turn_extra(t: dict[str, Any]) -> TurnExtra:
    spans = {s["stage"]: s for s in t.get("spans") or ()}
    nlu = spans.get("nlu") or {}
    rec = t.get("record") or {}
    teach = (spans.get("teach") or {}).get("output") or {}
    text = ((nlu.get("input") or {}).get("text") if isinstance(nlu.get("input"), dict) else None) or rec.get(
        "transcript"
    )
    return TurnExtra(
        nlu_text=(text or "").strip(),
        nlu_out=nlu.get("output") if isinstance(nlu.get("output"), dict) else None,
        taught=teach.get("kind") if isinstance(teach, dict) else None,
        rewritten=bool(rec.get("rewrite")),
    )


def is_request(v: TurnView) -> bool:
    """A request (or a restatement of one), judged by its words: "stop", yes / no, feedback answers and short turns
    the NLU took for one of those are not; a longer sentence the NLU took for "repeat" or "yes" is a request it
    misunderstood (the most useful label of all)."""
    if is_correction(v.transcript) and not v.is_feedback_answer:  # "no, I said ...": a request said again
        return True
    if v.is_cancel or v.is_feedback_answer or _YESNO.match(v.transcript):
        return False
    return not (v.intent in CONTROL_INTENTS and len(v.transcript.split()) <= 3)


def _labelable(v: TurnView, x: TurnExtra, prev: TurnView | None, stage_probs: dict[str, float], defect: float) -> bool:
    if not is_request(v) or not x.nlu_text or v.intent in NOT_NLU or v.intent is None or x.taught == "routine":
        return False
    if prev is not None and prev.status == "clarify":
        return False  # an answer to "which one?": the skill matched it, not the NLU
    if defect >= 0.5 and stage_probs and max(stage_probs, key=stage_probs.get) == "false_wake":
        return False
    return True


def _history_target(history: Any, v: TurnView, exclude: set[str]) -> tuple[str, int, str, dict[str, Any]] | None:
    if history is None:
        return None
    tgt = history.target(v.user_id, v, exclude)
    if tgt is None or not tgt[2] or tgt[2] in CONTROL_INTENTS:
        return None
    return tgt


RESTATE_SIMILARITY = 0.5
"""Word similarity (0-1) at which a later attempt of another intent counts as this request said again."""


def _restates(s: SessionInput, v: TurnView, a: TurnView, ax: TurnExtra) -> bool:
    """Is the later attempt `a` recognisably `v` said again, so that its parse may label `v`? The same intent, similar
    words, one of `a`'s slot values in `v`'s words, or `a`'s intent among `v`'s n-best. A goal whose segmentation
    merged unrelated requests ("turn on the kitchen lights", then "what time is it?" seconds later) must not teach
    the NLU that the first meant the second. The rephrase detector's pair alone is not enough: it linked exactly
    those two (0.89) on the bundled demo, whose quick succession of unrelated requests it never saw in training."""
    if a.intent == v.intent:
        return True
    if similarity(v.transcript, a.transcript) / 100 >= RESTATE_SIMILARITY:
        return True
    a_slots = {t: ax.nlu_text[p:q] for p, q, t in parse_spans(a, ax.nlu_out)}
    if a_slots and align_slots(a_slots, v.transcript)[1] > 0:
        return True
    return dict(v.nbest).get(str(a.intent), 0.0) >= 0.01


def propose_session(
    s: SessionInput, labels: list[TurnLabel], extras: dict[str, TurnExtra], history: Any = None
) -> list[ProposedLabel]:
    """Labels for one session's turns from the goal labeller's output (`labels`, in session order)."""
    out: list[ProposedLabel] = []
    by_goal: dict[str, list[int]] = {}
    for i, tl in enumerate(labels):
        by_goal.setdefault(tl.goal_id, []).append(i)
    for gid, idx in by_goal.items():
        ok = {
            i: _labelable(
                s.views[i],
                extras[s.views[i].turn_id],
                s.views[i - 1] if i else None,
                labels[i].stage_probs,
                labels[i].defect,
            )
            for i in idx
        }
        goal_success = labels[idx[0]].goal_success
        for k, i in enumerate(idx):
            if not ok[i]:
                continue
            v, x, tl = s.views[i], extras[s.views[i].turn_id], labels[i]
            later = [j for j in idx[k + 1 :] if ok[j]]
            anchor = min(later, key=lambda j: (labels[j].defect, -j)) if later else None
            if anchor is not None and labels[anchor].defect >= 0.5:
                anchor = None
            if anchor is not None and not _restates(s, v, s.views[anchor], extras[s.views[anchor].turn_id]):
                anchor = None  # a new request the segmentation put in this goal, not this one said again
            # the answer to "which one?" worked: the request was understood
            answered = any(s.views[j - 1].status == "clarify" and labels[j].defect < 0.5 for j in idx[k + 1 :])
            feats: dict[str, float] = {
                "defect": tl.defect,
                "goal_success": goal_success,
                "own_conf": v.intent_conf,
                "own_asr": v.asr_conf if v.asr_conf is not None else 1.0,
                "n_goal_turns": float(len(idx)),
                "position": float(k),
                "feedback_yes": float(v.feedback == "yes"),
                "feedback_no": float(v.feedback == "no"),
                "status_done": float(v.status == "done"),
                "status_failed": float(v.status in ("failed",) or v.error_code is not None),
                "status_unsupported": float(v.status == "unsupported"),
                "stage_nlu": tl.stage_probs.get("nlu", 0.0),
                "stage_asr": tl.stage_probs.get("asr", 0.0),
                "stage_later": tl.stage_probs.get("entity_resolution", 0.0) + tl.stage_probs.get("result", 0.0),
                "rewritten": float(x.rewritten or x.taught == "substitute"),
            }
            if tl.defect < 0.5 or (v.status == "clarify" and goal_success >= 0.5 and answered):
                source = "confirmed" if tl.defect < 0.5 else "clarified"
                intent, spans = str(v.intent), parse_spans(v, x.nlu_out)
                slots = {t: x.nlu_text[a:b] for a, b, t in spans}
                feats.update(anchor_defect=tl.defect, anchor_conf=v.intent_conf, align=1.0, same_intent=1.0, sim=1.0)
            elif anchor is not None:
                a, ax = s.views[anchor], extras[s.views[anchor].turn_id]
                source = "correction" if is_correction(a.transcript) else "rephrase"
                intent = str(a.intent)
                a_spans = parse_spans(a, ax.nlu_out)
                a_slots = {t: ax.nlu_text[p:q] for p, q, t in a_spans}
                spans, found = align_slots(a_slots, x.nlu_text)
                slots = {t: x.nlu_text[p:q] for p, q, t in spans}
                nb = dict(v.nbest)
                feats.update(
                    anchor_defect=labels[anchor].defect,
                    anchor_conf=a.intent_conf,
                    align=found / len(a_slots) if a_slots else 1.0,
                    same_intent=float(intent == v.intent),
                    sim=similarity(v.transcript, a.transcript) / 100,
                    label_in_nbest=nb.get(intent, 0.0),
                )
            elif (tgt := _history_target(history, v, {s.views[j].turn_id for j in idx})) is not None:
                # nothing later in the goal worked: the user's most similar request that worked elsewhere
                text, count, h_intent, h_slots = tgt
                source, intent = "history", str(h_intent)
                spans, found = align_slots({k: str(val) for k, val in h_slots.items() if val}, x.nlu_text)
                slots = {t: x.nlu_text[p:q] for p, q, t in spans}
                feats.update(
                    anchor_defect=0.5,
                    anchor_conf=0.0,
                    align=found / len(h_slots) if h_slots else 1.0,
                    same_intent=float(intent == v.intent),
                    sim=similarity(v.transcript, text) / 100,
                    label_in_nbest=dict(v.nbest).get(intent, 0.0),
                    history_count=float(np.log1p(count)),
                )
            else:
                source = "unconfirmed"
                intent, spans = str(v.intent), parse_spans(v, x.nlu_out)
                slots = {t: x.nlu_text[a:b] for a, b, t in spans}
                feats.update(anchor_defect=tl.defect, anchor_conf=v.intent_conf, align=1.0, same_intent=1.0, sim=1.0)
            feats.setdefault("history_count", 0.0)
            feats.setdefault("label_in_nbest", dict(v.nbest).get(intent, v.intent_conf))
            for src in SOURCES:
                feats[f"src_{src}"] = float(source == src)
            out.append(
                ProposedLabel(
                    turn_id=v.turn_id,
                    session_id=v.session_id,
                    user_id=v.user_id,
                    started_at=v.started_at,
                    text=x.nlu_text,
                    intent=intent,
                    slots=slots,
                    spans=spans,
                    source=source,
                    confidence=0.0,
                    parsed_intent=v.intent,
                    parsed_confidence=v.intent_conf,
                    goal_id=gid,
                    features=feats,
                    action=v.action_name,
                    response=v.response,
                )
            )
    return out


def contrastive_path(model_path: Path) -> Path:
    """The contrastive pair models beside a confidence model trained with them."""
    return Path(model_path).with_name(Path(model_path).stem + "_contrastive.json")


def prior_confidence(p: ProposedLabel) -> float:
    """The confidence without a fitted model: how sure the context is, by source."""
    f = p.features
    if p.source in ("confirmed", "clarified"):
        return (1 - f["defect"]) * (0.5 + 0.5 * f["own_conf"])
    if p.source == "history":
        return 0.5 * f["sim"] * (0.5 + 0.5 * f["align"])
    if p.source in ("rephrase", "correction"):
        return (1 - f["anchor_defect"]) * (0.5 + 0.5 * f["align"]) * (0.6 + 0.4 * f["sim"])
    return 0.3 * f["own_conf"] * (1 - f["defect"])


class TurnLabelModel:
    """P(label right | context features): a logistic regression over `ProposedLabel.features` (+ the prior), and
    optionally the contrastive pair models' scores (`contrastive.py`, when the model was trained with them)."""

    def __init__(self, model: Logistic | None, contrastive: Any = None) -> None:
        self.model = model
        self.contrastive = contrastive

    @property
    def version(self) -> str:
        return self.model.meta.get("version", "turn-label-?") if self.model is not None else "turn-label-prior"

    @classmethod
    def load(cls, path: Path | None = None) -> TurnLabelModel:
        p = Path(path) if path is not None else DEFAULT_MODEL
        if not p.is_file():
            return cls(None)
        model = Logistic.load(p)
        cx = None
        if "cx_label_fit" in model.feature_names:
            from assistant.learning.labels.contrastive import Contrastive

            cx = Contrastive.load(contrastive_path(p))
        return cls(model, cx)

    def row(self, p: ProposedLabel) -> dict[str, float]:
        r = {**p.features, "prior": prior_confidence(p)}
        if self.contrastive is not None:
            r.update(self.contrastive.features(p.text, p.parsed_intent, p.intent, p.action, p.response))
        return r

    def score(self, props: list[ProposedLabel]) -> None:
        if not props:
            return
        if self.model is None:
            for p in props:
                p.confidence = round(prior_confidence(p), 4)
            return
        X = np.array([self.model.vector(self.row(p)) for p in props])
        probs = self.model.predict_proba(X)[:, self.model.classes.index("right")]
        for p, c in zip(props, probs):
            p.confidence = round(float(c), 4)


def propose(
    store: Any,
    labeller: Labeller,
    detector: Any = None,
    model: TurnLabelModel | None = None,
    since: float | None = None,
    until: float | None = None,
    keep_user: Any = None,
) -> list[ProposedLabel]:
    """Labels for every labelable turn of `store` (turns started in [since, until) when given). `keep_user(user_id)`
    False drops a user's sessions before anything is read from them (opt-out)."""
    from assistant.learning.labels.counterfactual import History
    from assistant.learning.labels.features import view
    from assistant.learning.signals import SignalConfig, iter_sessions, session_signals

    labeller.history = History.from_store(store)
    cfg = SignalConfig()
    out: list[ProposedLabel] = []
    chunk: list[tuple[SessionInput, dict[str, TurnExtra]]] = []

    def flush() -> None:
        res = labeller.label_sessions([c[0] for c in chunk])
        for (s, ex), labels in zip(chunk, res):
            out.extend(propose_session(s, labels, ex, labeller.history))
        chunk.clear()

    for turns, n in iter_sessions(store):
        if keep_user is not None and not keep_user(turns[0].get("user_id") or ""):
            continue
        sig = session_signals(turns, cfg)
        pairs: dict[tuple[str, str], float] = {}
        if detector is not None and len(turns) > 1:
            for r in detector.detect(turns):
                pairs[(r.turn_id, r.rephrase_turn_id)] = float(r.score)
        views = [view(t, sig[t["turn_id"]]) for t in turns[:n]]
        if not views:
            continue
        chunk.append((SessionInput(views, pairs), {t["turn_id"]: turn_extra(t) for t in turns[:n]}))
        if sum(len(c[0].views) for c in chunk) >= 500:
            flush()
    if chunk:
        flush()
    (model or TurnLabelModel(None)).score(out)
    if since is not None or until is not None:
        lo, hi = since if since is not None else float("-inf"), until if until is not None else float("inf")
        out = [p for p in out if lo <= p.started_at < hi]
    return out
