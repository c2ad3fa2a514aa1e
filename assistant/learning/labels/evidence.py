"""Direct evidence the simulator does not produce, combined with the trained stage model as likelihood ratios.

The trained model (`stage.json`) learns from simulator truth, where nearly every failure is an ASR or NLU error; the
pipeline's own error attribution and an entity that could not be resolved from a confidently heard request are
almost never seen in training. They are strong evidence on a real device, so they enter as hand-set likelihood
ratios (not fitted; listed here and in models/labels/MODEL_CARD.md):

- a pipeline error naming its stage (asr / nlu / resolve / respond): x500 for that stage (the stage raised it);
- nothing heard (empty transcript): x500 for asr;
- a resolvable slot (room, device, artist ...) left unresolved while the ASR was confident (>= 0.85) and the action
  did not complete: x30 for entity_resolution;
- a request that ends where a sentence cannot ("what's the weather in") and that the goal's next attempt repeats
  word for word and completes: x20 for endpointing (the endpointer ended it at a pause). The simulator's cut-offs
  teach the model this too, but only a few dozen of them.
- a wake word detected with a score that only just crossed the threshold (less than 0.15 above it): x5 for
  false_wake against every other class, correct included (`wake_ratio`). The simulator runs no wake stage (its turns
  carry no wake score), so the models cannot learn this. Measured with openWakeWord (the shipped backend), scoring
  the first frame that crosses 0.5 as the endpointer does: 2 of 22 genuine wakes crossed below 0.65 (both in 10 dB
  white noise; none of 11 in a quiet room) against 6 of 7 wakes on TV speech without the wake word ("Hey, Charlie,
  ..." in the simulator's TV voice: 0.50-0.60; "Hey, Jervis, ..." 0.997), a ratio of about 9, halved for the small
  samples.

P(stage | defect, evidence) = P_model(stage) * LR(stage) / sum over stages. The wake evidence bears on whether the
turn was a defect at all, so it is combined with the joint distribution (correct, and defect x stage) instead
(`combine_joint`).
"""

from __future__ import annotations

from assistant.learning.labels.features import RESOLVABLE, TurnView

_ERROR_STAGE = {
    "asr": "asr",
    "vad": "endpointing",
    "wake": "asr",
    "nlu": "nlu",
    "resolve": "entity_resolution",
    "respond": "result",
    "skill": "result",
    "tts": "result",
}


def likelihood_ratios(t: TurnView) -> dict[str, float]:
    lr: dict[str, float] = {}
    if t.error_stage in _ERROR_STAGE:
        lr[_ERROR_STAGE[t.error_stage]] = 500.0
    if not t.transcript.strip():
        lr["asr"] = 500.0
    unresolved = [e for e in t.entities if e.get("slot") in RESOLVABLE and not e.get("entity_id")]
    if unresolved and (t.asr_conf or 0.0) >= 0.85 and t.status in ("failed", "clarify", None):
        lr["entity_resolution"] = max(lr.get("entity_resolution", 1.0), 30.0)
    return lr


WAKE_MARGIN = 0.15
"""A wake score less than this above the threshold is marginal."""
WAKE_MARGINAL_LR = 5.0


def wake_ratio(t: TurnView) -> dict[str, float]:
    """A wake word that only just woke the device: the sound may not have been the wake word (TV, talk)."""
    if t.wake_score is None or t.wake_threshold is None:
        return {}
    if t.wake_score < t.wake_threshold + WAKE_MARGIN:
        return {"false_wake": WAKE_MARGINAL_LR}
    return {}


WALK_AWAY_LR = 0.02
"""Likelihood ratio (same goal against a new one) for a request that follows a question ("Are you sure ...?",
"Which light ...?", "Did I answer your question?") without answering it (no yes / no, no word of the offered choices,
not the same intent) or retrying it (unlike the goal's turns, another intent), and that looks right on its own (the
solo model): the person walked away from the question. The simulator's people rarely do (15 goals in 7,395 training
turns), so the link model learns that nearly everything after a question belongs to it (0.97 for "Are you sure you
want to open the garage door?" -> "Make me a sandwich."). On the simulator's held-out runs the rule is neutral
(docs/labels.md); it is what a reader of the trace would say."""


def combine_link(p_same: float, lr: float) -> float:
    """The link model's P(same goal) with a likelihood ratio for "same" against "new"."""
    if p_same <= 0.0 or p_same >= 1.0:
        return p_same
    odds = p_same / (1.0 - p_same) * lr
    return odds / (1.0 + odds)


def combine_joint(defect: float, probs: dict[str, float], lr: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Evidence about the turn's class (correct or a failing stage): P(defect) and P(stage | defect) updated together.

    `lr`: likelihood ratio of each failing stage against the others and against a correct turn (ratio 1)."""
    if not lr:
        return defect, probs
    joint = {k: defect * p * lr.get(k, 1.0) for k, p in probs.items()}
    bad = sum(joint.values())
    z = bad + (1.0 - defect)
    if z <= 0 or bad <= 0:
        return defect, probs
    return bad / z, {k: round(v / bad, 4) for k, v in joint.items()}


def cut_off_ratio(row: dict[str, float]) -> dict[str, float]:
    """From the turn's features (`redecode.cut_off_features`)."""
    if row.get("ep_open_end") and row.get("ep_prefix_of_target"):
        return {"endpointing": 20.0}
    return {}


def combine(probs: dict[str, float], lr: dict[str, float]) -> dict[str, float]:
    if not lr:
        return probs
    w = {k: p * lr.get(k, 1.0) for k, p in probs.items()}
    z = sum(w.values()) or 1.0
    return {k: round(v / z, 4) for k, v in w.items()}
