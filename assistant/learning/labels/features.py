"""What the labeller reads from one turn of the trace store, and the features its three models use.

Only what a device records: the turn record, each stage's span (input, output, confidence), events (barge-in,
feedback) and timing; plus the signals of `assistant/learning/signals.py`, the learned rephrase detector's pairs and
cheap counterfactual re-runs of the NLU (`counterfactual.py`). Never the simulator's truth.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

from assistant.learning.feedback import FEEDBACK_QUESTION, is_correction
from assistant.learning.signals import label_turn, similarity

CONTROL_INTENTS = frozenset(
    {
        "general_commandstop",
        "general_repeat",
        "general_affirm",
        "general_negate",
        "general_confirm",
        "general_dontcare",
        "general_praise",
        "general_greet",
    }
)
_CANCEL = re.compile(
    r"^\W*(?:stop|cancel|never ?mind|forget (?:it|about it)|shut up|be quiet|quiet|enough|abort)\b", re.IGNORECASE
)
_YESNO = re.compile(
    r"^\W*(?:yes|yeah|yep|no|nope|not really|that'?s (?:right|wrong)|you did|you didn'?t)\b", re.IGNORECASE
)
_SORRY = re.compile(r"\b(?:sorry|can'?t|cannot|couldn'?t|don'?t know|not sure|unable|didn'?t catch)\b", re.IGNORECASE)
RESOLVABLE = frozenset(
    {
        "house_place",
        "device_type",
        "artist_name",
        "music_genre",
        "song_name",
        "place_name",
        "player_setting",
        "media_type",
        "radio_name",
        "podcast_name",
        "audiobook_name",
    }
)
"""The intent's scenario (SLURP / HWU64 prefix): stages fail differently by domain (artist names, media commands)."""
STATUSES = ("done", "failed", "unsupported", "clarify", "unavailable")
ERROR_STAGES = ("asr", "nlu", "resolve", "respond")


def _norm_words(text: str | None) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", (text or "").lower().replace("’", "'")).split()


def response_seconds(text: str | None) -> float:
    """How long an answer takes to say (about 2.7 words a second): used when the trace has no TTS span."""
    words = len(re.findall(r"\w+", text or ""))
    return 0.3 + words / 2.7 if words else 0.0


@dataclass
class TurnView:
    """One turn, parsed once."""

    turn_id: str
    session_id: str
    device_id: str
    user_id: str
    started_at: float
    ended_at: float
    transcript: str
    intent: str | None
    intent_conf: float
    nbest: list[tuple[str, float]]
    slots: dict[str, Any]
    slot_confs: list[float]
    asr_conf: float | None
    no_speech: float | None
    audio_seconds: float | None
    entities: list[dict[str, Any]]
    action_name: str
    status: str | None
    error_code: str | None
    error_stage: str | None
    response: str
    expects_reply: bool
    barge_in: bool
    feedback: str | None
    wake_score: float | None
    tts_seconds: float | None
    signals: list[dict[str, Any]] = field(default_factory=list)
    heuristic: str = "unknown"
    request_audio: str | None = None
    """The request's kept audio file (`traces.keep_request_audio`), for the re-decode counterfactual."""
    after_speech_ms: float | None = None
    """The user spoke again this long after the endpoint, before the answer was over (`speech-after-endpoint`): the
    rest of a sentence cut at a pause, or an afterthought."""
    wake_threshold: float | None = None
    """The threshold the wake score crossed (the wake span's input); None when no wake word was detected."""

    @property
    def speech_end(self) -> float:
        """When the request's speech ended (started_at + audio length when known)."""
        return self.started_at + (self.audio_seconds or 0.0)

    @property
    def answer_end(self) -> float:
        """When the spoken answer would have ended."""
        dur = self.tts_seconds if self.tts_seconds is not None else response_seconds(self.response)
        return max(self.ended_at, self.speech_end + 0.6) + dur

    @property
    def is_cancel(self) -> bool:
        return self.intent == "general_commandstop" or bool(_CANCEL.match(self.transcript))

    @property
    def is_feedback_answer(self) -> bool:
        return self.action_name == "feedback.record"

    @property
    def asks_feedback(self) -> bool:
        return FEEDBACK_QUESTION in self.response

    @property
    def is_control(self) -> bool:
        return self.intent in CONTROL_INTENTS or self.is_cancel or self.is_feedback_answer

    @property
    def substantive(self) -> bool:
        """A request (or a rephrase of one, or an answer to a clarifying question): not stop / yes / no."""
        return not self.is_control


def view(t: dict[str, Any], signals: list[dict[str, Any]] | None = None) -> TurnView:
    """A turn as `TraceStore.iter_turn_batches` returns it -> TurnView."""
    rec = t.get("record") or {}
    spans = {s["stage"]: s for s in t.get("spans") or ()}
    asr = (spans.get("asr") or {}).get("output") or {}
    nlu = (spans.get("nlu") or {}).get("output") or {}
    tts = (spans.get("tts") or {}).get("output") or {}
    action = rec.get("action") if isinstance(rec.get("action"), dict) else {}
    err = rec.get("error") or {}
    feedback = None
    barge = False
    after_ms = None
    for ev in t.get("events") or ():
        if ev.get("type") == "barge-in":
            barge = True
        elif ev.get("type") == "speech-after-endpoint" and after_ms is None:
            after_ms = _f((ev.get("data") or {}).get("offset_ms"))
        elif ev.get("type") == "feedback" and (ev.get("data") or {}).get("answer") in ("yes", "no"):
            feedback = ev["data"]["answer"]
    nbest = [(str(a), float(b)) for a, b in nlu.get("nbest") or () if b is not None]
    slot_confs = [
        float(s["confidence"])
        for s in nlu.get("slots") or ()
        if isinstance(s, dict) and s.get("confidence") is not None
    ]
    wake = rec.get("wake") or {}
    wake_in = (spans.get("wake") or {}).get("input") or {}
    v = TurnView(
        turn_id=t["turn_id"],
        session_id=t.get("session_id", ""),
        device_id=t.get("device_id") or "",
        user_id=t.get("user_id") or "",
        started_at=float(t["started_at"]),
        ended_at=float(t.get("ended_at") or t["started_at"]),
        transcript=(rec.get("transcript") or "").strip(),
        intent=rec.get("intent"),
        intent_conf=float(rec.get("intent_confidence") or 0.0),
        nbest=nbest,
        slots=rec.get("slots") or {},
        slot_confs=slot_confs,
        asr_conf=_f(asr.get("confidence", rec.get("asr_confidence"))),
        no_speech=_f(asr.get("no_speech_prob")),
        audio_seconds=_f(asr.get("audio_seconds")),
        entities=[e for e in rec.get("entities") or () if isinstance(e, dict)],
        action_name=str(action.get("name") or ""),
        status=action.get("status"),
        error_code=err.get("code"),
        error_stage=err.get("stage"),
        response=rec.get("response_text") or "",
        expects_reply=bool(rec.get("expects_reply")),
        barge_in=barge,
        feedback=feedback,
        wake_score=_f(wake.get("score")) if isinstance(wake, dict) else None,
        tts_seconds=_f(tts.get("audio_seconds")) if isinstance(tts, dict) else None,
        request_audio=rec.get("request_audio") or None,
        wake_threshold=_f(wake_in.get("threshold")) if isinstance(wake_in, dict) else None,
        after_speech_ms=after_ms,
    )
    if signals is not None:
        v.signals = signals
        v.heuristic = label_turn(signals)[0]
    return v


def _f(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


# -- the word oddness of a transcript (misrecognitions are often rare or made-up words) ------------------------------
class Vocab:
    """Whole words of the NLU tokenizer's vocabulary: a made-up word ("muffies") splits into word pieces."""

    def __init__(self, words: set[str] | None = None) -> None:
        self.words = words or set()

    @classmethod
    def from_tokenizer(cls, path) -> Vocab:
        import json

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            vocab = data["model"]["vocab"]
            return cls({w for w in vocab if w.isalpha()})
        except (OSError, KeyError, ValueError):
            return cls()

    def odd_share(self, text: str) -> float:
        words = [w for w in _norm_words(text) if w.isalpha()]
        if not words or not self.words:
            return 0.0
        return sum(w not in self.words for w in words) / len(words)


# -- segmentation: does `cur` continue the goal that `prev` belongs to? --------------------------------------------
def link_features(
    prev: TurnView, cur: TurnView, goal_first: TurnView, rephrase_score: float, rephrase_goal_score: float
) -> dict[str, float]:
    # Time is measured from the end of the answer (estimated from its words), not from the end of the request: the
    # time since the request also holds how long the answer was, which the simulator's answers tie to success (a
    # quick new request after a short "Added milk." looked like a retry to a model that read it).
    idle = cur.started_at - prev.answer_end
    sim = similarity(prev.transcript, cur.transcript) / 100
    sim_first = similarity(goal_first.transcript, cur.transcript) / 100
    # Bins, not a continuous time: a retry and a quick new request both come 1-3 s after an answer, and a slope fitted
    # over seconds to hours made every quicker reply look more like a retry.
    f = {
        "idle_neg": float(idle < 0),
        "idle_le_4": float(-2 <= idle <= 4),
        "idle_le_5": float(idle <= 5),
        "idle_le_6": float(idle <= 6),
        "idle_le_8": float(idle <= 8),
        "idle_le_10": float(idle <= 10),
        "idle_gt_30": float(idle > 30),
        "idle_gt_60": float(idle > 60),
        "idle_gt_600": float(idle > 600),
        "prev_expects_reply": float(prev.expects_reply),
        "prev_clarify": float(prev.status == "clarify"),
        "prev_asks_feedback": float(prev.asks_feedback),
        "cur_feedback": float(cur.is_feedback_answer),
        "cur_yesno": float(bool(_YESNO.match(cur.transcript))),
        "cur_cancel": float(cur.is_cancel),
        "cur_correction": float(is_correction(cur.transcript)),
        "cur_control": float(cur.intent in CONTROL_INTENTS),
        "prev_control": float(prev.is_control),
        "prev_feedback": float(prev.is_feedback_answer),
        "prev_cancel": float(prev.is_cancel),
        "rephrase": rephrase_score,
        "rephrase_goal": rephrase_goal_score,
        "sim_prev": sim,
        "sim_first": sim_first,
        "sim_hi": float(max(sim, sim_first) >= 0.75),
        "same_intent": float(prev.intent == cur.intent and prev.intent is not None),
        "same_intent_first": float(goal_first.intent == cur.intent and cur.intent is not None),
        "prev_barge": float(prev.barge_in),
        "prev_feedback_no": float(prev.feedback == "no"),
        "prev_feedback_yes": float(prev.feedback == "yes"),
        "prev_heur_defect": float(prev.heuristic == "defect"),
        "prev_heur_ok": float(prev.heuristic == "ok"),
        "cur_short": float(len(cur.transcript.split()) <= 3),
    }
    for s in STATUSES:
        f[f"prev_{s}"] = float(prev.status == s)
    # Does cur answer prev's question? A yes / no, the words of one of the offered choices ("the main light" after
    # "Which light: the standing lamp or the main light?"), or the same request carried on; anything else after a
    # question is a new request by someone who walked away from it.
    answer = answer_share(prev.response, cur.transcript) if prev.expects_reply else 0.0
    answers = prev.expects_reply and (
        bool(_YESNO.match(cur.transcript)) or answer >= 0.5 or (cur.intent == prev.intent and cur.intent is not None)
    )
    f["answer_words"] = answer
    f["cur_answers_question"] = float(answers)
    f["question_not_answered"] = float(prev.expects_reply and not answers)
    # ... and not the same request again either (a rephrase after a wrong "which colour?" does not answer it)
    f["question_new_topic"] = f["question_not_answered"] * float(
        max(sim, sim_first, rephrase_score, rephrase_goal_score) < 0.5 and cur.intent != goal_first.intent
    )
    f["prev_error"] = float(prev.error_code is not None)
    f["prev_clarify_x_idle"] = f["prev_clarify"] * f["idle_le_10"]
    prev_failed = prev.status in ("failed", "unsupported") or prev.error_code is not None
    f["prev_fail_x_idle"] = float(prev_failed) * f["idle_le_10"]
    f["rephrase_x_idle"] = max(rephrase_score, rephrase_goal_score) * f["idle_le_10"]
    return f


def answer_key(response: str) -> str:
    """An answer's words without the feedback question, to compare two answers."""
    return " ".join(_norm_words(response.replace(FEEDBACK_QUESTION, "")))


def repeats_a_retried_answer(goal: list[TurnView], pos: int) -> bool:
    """The answer to goal[pos] is the answer an earlier request of the goal got, after which the person tried again:
    the same answer did not do then, so it does not now ("Starting the vacuum cleaner." to the third "robot vacuum
    living room")."""
    key = answer_key(goal[pos].response)
    return bool(key) and any(g.substantive and answer_key(g.response) == key for g in goal[:pos])


_STOP = frozenset({"the", "a", "an", "my", "one", "please", "it", "that", "this", "to", "of", "in", "on", "or", "and"})


def answer_share(question: str, reply: str) -> float:
    """Share of the reply's content words that are in the question ("the main light" in "Which light: the standing
    lamp or the main light?" -> 1.0)."""
    words = [w for w in _norm_words(reply) if w not in _STOP]
    if not words:
        return 0.0
    asked = set(_norm_words(question))
    return sum(w in asked for w in words) / len(words)


# -- one turn: was it defective, and where? -------------------------------------------------------------------------
def turn_features(
    t: TurnView,
    goal: list[TurnView],
    pos: int,
    after: TurnView | None,
    cf: dict[str, float],
    vocab: Vocab,
    rephrased_by_score: float,
) -> dict[str, float]:
    """`goal`: the turns of t's goal in order, t = goal[pos]; `after`: the first turn after t's goal (same session);
    `cf`: counterfactual features; `rephrased_by_score`: the rephrase detector's score of a later turn restating t."""
    words = _norm_words(t.transcript)
    nb = [p for _, p in t.nbest]
    p1 = nb[0] if nb else t.intent_conf
    p2 = nb[1] if len(nb) > 1 else 0.0
    ent = -sum(p * math.log(max(p, 1e-9)) for p in nb) if nb else 0.0
    res_ents = [e for e in t.entities if e.get("slot") in RESOLVABLE]
    unresolved = [e for e in res_ents if not e.get("entity_id")]
    scores = [float(e.get("score") or 0.0) for e in res_ents]
    nxt = goal[pos + 1] if pos + 1 < len(goal) else None
    later = goal[pos + 1 :]
    last_sub = next((g for g in reversed(goal) if g.substantive), goal[-1])
    f: dict[str, float] = {
        "asr_conf": t.asr_conf if t.asr_conf is not None else 0.8,
        "asr_conf_missing": float(t.asr_conf is None),
        "no_speech": t.no_speech or 0.0,
        "audio_s": min(t.audio_seconds or 0.0, 15.0),
        "n_words": min(len(words), 30),
        "wps": min(len(words) / max(t.audio_seconds or 1.0, 0.5), 6.0),
        "empty": float(not words),
        "odd_share": vocab.odd_share(t.transcript),
        "nlu_conf": t.intent_conf,
        "nlu_margin": p1 - p2,
        "nlu_entropy": ent,
        "slot_conf_min": min(t.slot_confs) if t.slot_confs else 1.0,
        "n_slots": min(len(t.slots), 5),
        "n_res": len(res_ents),
        "n_unresolved": len(unresolved),
        "res_score_min": min(scores) if scores else 1.0,
        "res_cands": max((len(e.get("candidates") or ()) for e in res_ents), default=0),
        "error": float(t.error_code is not None),
        "sorry": float(bool(_SORRY.search(t.response))),
        "expects_reply": float(t.expects_reply),
        "asks_feedback": float(t.asks_feedback),
        "barge_in": float(t.barge_in),
        "after_speech": float(t.after_speech_ms is not None),
        "after_speech_soon": float(t.after_speech_ms is not None and t.after_speech_ms < 1000),
        "fb_no": float(t.feedback == "no"),
        "fb_yes": float(t.feedback == "yes"),
        "is_control": float(t.is_control),
        "is_cancel": float(t.is_cancel),
        "is_feedback": float(t.is_feedback_answer),
        "control_intent": float(t.intent in CONTROL_INTENTS),
        "qa_like": float((t.intent or "").startswith(("qa_", "general_quirky", "news_", "social_"))),
        "action_none": float(t.action_name in ("", "none")),
        # the goal around it
        "pos": min(pos, 5),
        "goal_len": min(len(goal), 6),
        "is_last": float(nxt is None),
        "next_in_goal": float(nxt is not None),
        "next_cancel": float(nxt is not None and nxt.is_cancel),
        "next_feedback_no": float(nxt is not None and nxt.is_feedback_answer and _no(nxt.transcript)),
        "next_feedback_yes": float(nxt is not None and nxt.is_feedback_answer and not _no(nxt.transcript)),
        "rephrased_by": rephrased_by_score,
        "next_sim": similarity(t.transcript, nxt.transcript) / 100 if nxt is not None else 0.0,
        "later_done": float(any(g.status == "done" and g.substantive for g in later)),
        "last_sub_done": float(last_sub.status == "done" and last_sub is not t),
        "goal_single": float(len(goal) == 1),
        "after_gap_log": math.log1p(max(0.0, after.started_at - t.ended_at)) if after is not None else 8.0,
        "heur_defect": float(t.heuristic == "defect"),
        "heur_ok": float(t.heuristic == "ok"),
        "sig_rephrase": float(any(s["type"] == "rephrase" for s in t.signals)),
        "sig_abandon": float(any(s["type"] == "abandonment" for s in t.signals)),
        "prev_in_goal_clarify": float(pos > 0 and goal[pos - 1].status == "clarify"),
        "prev_in_goal_feedback": float(pos > 0 and goal[pos - 1].asks_feedback),
    }
    for s in STATUSES:
        f[f"st_{s}"] = float(t.status == s)
    f["st_other"] = float(t.status not in STATUSES)
    for s in ERROR_STAGES:
        f[f"err_{s}"] = float(t.error_stage == s)
    # No intent-family indicators: they taught the models the simulator's per-skill failure rates (a turn of the lists
    # skill looked right whatever happened after it); how often an intent fails comes from the store being labelled
    # (`xs_intent_fail_rate`).
    f.update(cf)
    # a few interactions the linear model cannot form itself
    f["done_x_later_done"] = f["st_done"] * f["later_done"]
    f["failed_x_conf"] = f["st_failed"] * f["nlu_conf"] * f["asr_conf"]
    f["single_x_qa"] = f["goal_single"] * f["qa_like"]
    f["odd_x_lowasr"] = f["odd_share"] * (1.0 - f["asr_conf"])
    f["clarify_answer_x_unres"] = f["prev_in_goal_clarify"] * float(t.status != "done")
    subs = [g for g in goal if g.substantive]
    f["goal_consistent_intent"] = float(len(subs) > 1 and all(g.intent == t.intent for g in subs))
    f["consistent_x_failed"] = f["goal_consistent_intent"] * float(t.status in ("failed", "unsupported"))
    f["goal_all_failed"] = float(len(subs) > 1 and all(g.status != "done" for g in subs))
    f["repeats_retried_answer"] = float(t.substantive and repeats_a_retried_answer(goal, pos))
    return f


def _no(text: str) -> bool:
    return bool(re.match(r"^\W*(?:no|nope|not really|that'?s wrong|you didn'?t)\b", text, re.IGNORECASE))


def goal_features(goal: list[TurnView], turn_ok: list[float], after: TurnView | None) -> dict[str, float]:
    """Did the goal succeed? `turn_ok`: the turn model's P(turn correct) for each of the goal's turns."""
    subs = [i for i, g in enumerate(goal) if g.substantive] or [len(goal) - 1]
    last_i = subs[-1]
    last = goal[last_i]
    fb = [g.feedback for g in goal if g.feedback] + [
        ("no" if _no(g.transcript) else "yes") for g in goal if g.is_feedback_answer
    ]
    f = {
        "n_turns": min(len(goal), 6),
        "n_sub": min(len(subs), 5),
        "last_ok": turn_ok[last_i],
        "max_ok": max(turn_ok[i] for i in subs),
        "first_ok": turn_ok[subs[0]],
        "last_logit": math.log(max(turn_ok[last_i], 1e-4) / max(1 - turn_ok[last_i], 1e-4)),
        "last_conf": last.intent_conf,
        "last_asr": last.asr_conf if last.asr_conf is not None else 0.8,
        "last_expects_reply": float(last.expects_reply),
        "last_barge": float(last.barge_in),
        "ends_cancel": float(goal[-1].is_cancel),
        "has_cancel": float(any(g.is_cancel for g in goal)),
        "fb_no": float("no" in fb),
        "fb_yes": float("yes" in fb and "no" not in fb),
        "after_gap_log": math.log1p(max(0.0, after.started_at - goal[-1].ended_at)) if after is not None else 8.0,
        "after_sim": similarity(last.transcript, after.transcript) / 100 if after is not None else 0.0,
        "all_control": float(all(g.is_control for g in goal)),
        "qa_like": float((last.intent or "").startswith(("qa_", "general_quirky", "news_", "social_"))),
        "n_words": min(len(_norm_words(last.transcript)), 30),
    }
    for s in STATUSES:
        f[f"last_{s}"] = float(last.status == s)
    f["last_error"] = float(last.error_code is not None)
    f["last_repeats_retried_answer"] = float(repeats_a_retried_answer(goal, last_i))
    return f


def key_words_present(values: list[str], transcript: str) -> float:
    """Share of the slot values whose content words all appear (fuzzily) in the transcript."""
    if not values:
        return 1.0
    tw = _norm_words(transcript)
    ok = 0
    for v in values:
        words = [w for w in _norm_words(v) if w not in ("the", "a", "my", "to", "of")]
        if all(any(w == t or (len(w) > 3 and fuzz.ratio(w, t) >= 80) for t in tw) for w in words):
            ok += 1
    return ok / len(values)
