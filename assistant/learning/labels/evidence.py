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

P(stage | defect, evidence) = P_model(stage) * LR(stage) / sum over stages.
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
