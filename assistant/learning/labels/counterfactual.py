"""Cheap counterfactual re-runs for failure point isolation (offline, on what the trace holds).

For a turn of a goal that was later reached (or at least retried), the later attempt is the *target*: what the person
meant, as far as the trace can tell. Evidence:

- compare what the ASR heard with what the person said next: transcript similarity, whether the target's slot values
  survive in this transcript (a lost key word is an ASR error), whether the target's intent was in this turn's n-best;
- **re-run the NLU** on a *repaired* transcript: this transcript with each word the target does not have replaced by
  the target's closest-sounding word (a misheard word put right). If the NLU now gets the target's intent, the words
  were to blame (ASR); if it still does not, the understanding was (NLU);
- re-run the NLU on the target's own transcript (the recorded one may have been rewritten before NLU).

When request audio is stored (`record.request_audio`), a wider-beam re-decode would be the next piece of evidence; the
simulator does not store audio, so it is not used here (see MODEL_CARD.md).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import jellyfish
from rapidfuzz import fuzz

from assistant.learning.labels.features import TurnView, key_words_present
from assistant.learning.signals import similarity

CF_FEATURES = (
    "cf_has_target",
    "cf_target_done",
    "cf_same_intent",
    "cf_nbest_target",
    "cf_keywords",
    "cf_sim",
    "cf_repair_fixes",
    "cf_repair_conf",
    "cf_repair_changed",
    "cf_words_changed",
    "cf_target_nlu_same",
    "cf_same_slots",
)


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def repair(text: str, target: str) -> tuple[str, int]:
    """`text` with each word missing from `target` replaced by target's most similar word (spelling or sound);
    returns (repaired text, words changed)."""
    tw = _words(target)
    if not tw:
        return text, 0
    keys = {w: jellyfish.metaphone(w) for w in tw}
    tset = set(tw)
    out, changed = [], 0
    for w in _words(text):
        if w in tset:
            out.append(w)
            continue
        mk = jellyfish.metaphone(w)
        best, best_s = w, 0.0
        for cand in tw:
            s = max(fuzz.ratio(w, cand), fuzz.ratio(mk, keys[cand]) if mk and keys[cand] else 0.0)
            if s > best_s:
                best, best_s = cand, s
        if best_s >= 60:
            out.append(best)
            changed += best != w
        else:
            out.append(w)
    return " ".join(out), changed


class Counterfactuals:
    """Runs the NLU (the pipeline's model, onnxruntime) on counterfactual texts; results are cached per text."""

    def __init__(self, nlu: Any = None, enabled: bool = True) -> None:
        self._nlu = nlu
        self.enabled = enabled
        self._cache: dict[str, tuple[str | None, float]] = {}
        self.runs = 0

    @property
    def nlu(self) -> Any:
        if self._nlu is None and self.enabled:
            from assistant.backends.nlu.onnx_joint import OnnxJointNlu

            self._nlu = OnnxJointNlu(threads=1)
        return self._nlu

    def parse(self, text: str) -> tuple[str | None, float]:
        if text not in self._cache:
            if not self.enabled or not text.strip():
                return None, 0.0
            r = self.nlu.parse(text, None)
            self.runs += 1
            self._cache[text] = (r.intent, float(r.confidence))
        return self._cache[text]

    def features(self, t: TurnView, target: TurnView | None) -> dict[str, float]:
        f = dict.fromkeys(CF_FEATURES, 0.0)
        if target is None or not target.transcript:
            f["cf_keywords"] = 1.0
            return f
        f["cf_has_target"] = 1.0
        f["cf_target_done"] = float(target.status == "done")
        f["cf_same_intent"] = float(t.intent == target.intent)
        f["cf_nbest_target"] = next((p for i, p in t.nbest if i == target.intent), 0.0)
        values = [str(v) for v in target.slots.values() if v]
        f["cf_keywords"] = key_words_present(values, t.transcript)
        f["cf_same_slots"] = float(
            bool(values) and all(str(t.slots.get(k, "")).lower() == str(v).lower() for k, v in target.slots.items())
        )
        f["cf_sim"] = similarity(t.transcript, target.transcript) / 100
        if not self.enabled or t.intent == target.intent or not t.transcript:
            return f
        fixed, changed = repair(t.transcript, target.transcript)
        f["cf_words_changed"] = min(changed, 5)
        if changed:
            intent, conf = self.parse(fixed)
            f["cf_repair_fixes"] = float(intent == target.intent)
            f["cf_repair_conf"] = conf if intent == target.intent else 0.0
            f["cf_repair_changed"] = float(intent != t.intent)
        tgt_intent, _ = self.parse(target.transcript)
        f["cf_target_nlu_same"] = float(tgt_intent == target.intent)
        return f


def default_vocab_path() -> Path:
    from assistant.backends.nlu.onnx_joint import DEFAULT_MODEL_DIR

    return Path(DEFAULT_MODEL_DIR) / "tokenizer.json"


class History:
    """What each user said successfully elsewhere in the store (other goals, other days): for a failed turn, the most
    similar request of the same user that was carried out is a second *target* ("what they usually mean by this").
    Habits repeat, so a transcript that differs from the one that usually works points at the words (ASR), one that
    matches it points at the understanding."""

    def __init__(self) -> None:
        self.by_user: dict[str, dict[str, list[Any]]] = {}
        """user -> normalised transcript -> [count, intent, slots, a turn id]"""
        self.intent_outcomes: dict[str, list[int]] = {}
        """intent -> [confidently heard and understood turns, of which failed or unsupported]: an intent that keeps
        failing however clearly it is asked points at the skill (result), not at the words or the understanding"""

    def intent_fail_rate(self, intent: str | None) -> tuple[float, float]:
        n, bad = self.intent_outcomes.get(intent or "", (0, 0))
        return (bad + 0.5) / (n + 2.0), math.log1p(n)

    @classmethod
    def from_store(cls, store: Any) -> History:
        h = cls()
        sql = (
            "SELECT t.turn_id, s.user_id, t.transcript, t.intent, json_extract(t.record, '$.slots'), "
            "json_extract(t.record, '$.action.status'), t.intent_confidence, "
            "json_extract(t.record, '$.asr_confidence') FROM turns t JOIN sessions s ON s.session_id = t.session_id"
        )
        import json

        for batch in store.iter_query(sql):
            for tid, user, text, intent, slots, status, nconf, aconf in batch:
                if intent and (nconf or 0) >= 0.8 and (aconf or 0) >= 0.8:
                    c = h.intent_outcomes.setdefault(intent, [0, 0])
                    c[0] += 1
                    c[1] += status in ("failed", "unsupported")
                if status != "done" or not text or intent in _CONTROL:
                    continue
                key = " ".join(_words(text))
                e = h.by_user.setdefault(user or "", {}).setdefault(key, [0, intent, json.loads(slots or "{}"), tid])
                e[0] += 1
        return h

    def target(self, user: str, t: TurnView, exclude: set[str]) -> tuple[str, int, str | None, dict[str, Any]] | None:
        """(text, count, intent, slots) of the user's most similar successful request (similarity >= 70), not one of
        `exclude` (the turn's own goal)."""
        texts = self.by_user.get(user or "")
        if not texts or not t.transcript:
            return None
        from rapidfuzz import process

        key = " ".join(_words(t.transcript))
        best = None
        for text, score, _ in process.extract(key, list(texts), scorer=fuzz.ratio, limit=5):
            e = texts[text]
            if score < 70 or e[3] in exclude or text == key:
                continue
            if best is None or (score, e[0]) > (best[0], best[1][0]):
                best = (score, e, text)
        if best is None:
            return None
        _s, e, text = best
        return text, e[0], e[1], e[2]

    def features(self, cf: Counterfactuals, user: str, t: TurnView, exclude: set[str]) -> dict[str, float]:
        f = dict.fromkeys(XS_FEATURES, 0.0)
        f["xs_intent_fail_rate"], f["xs_intent_n"] = self.intent_fail_rate(t.intent)
        tgt = self.target(user, t, exclude) if t.substantive else None
        if tgt is None:
            return f
        text, count, intent, slots = tgt
        f["xs_has"] = 1.0
        f["xs_count"] = math.log1p(count)
        f["xs_sim"] = similarity(t.transcript, text) / 100
        f["xs_same_intent"] = float(intent == t.intent)
        f["xs_keywords"] = key_words_present([str(v) for v in slots.values() if v], t.transcript)
        if cf.enabled and intent != t.intent:
            fixed, changed = repair(t.transcript, text)
            if changed:
                got, _conf = cf.parse(fixed)
                f["xs_repair_fixes"] = float(got == intent)
        return f


XS_FEATURES = (
    "xs_has",
    "xs_count",
    "xs_sim",
    "xs_same_intent",
    "xs_keywords",
    "xs_repair_fixes",
    "xs_intent_fail_rate",
    "xs_intent_n",
)
_CONTROL = frozenset(
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
