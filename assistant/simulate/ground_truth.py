"""Ground truth for one simulated turn: did it achieve the goal, and if not, which stage failed first.

Each stage's output in the turn record is compared with the true goal:

- ASR: word error rate against the spoken text, and whether the key slot words survived;
- NLU: intent (or an equivalent one) and the key slot values;
- entity resolution: the room, device, artist, genre ... the slots resolved to;
- result: the action's name, status and target against the goal's expected outcome.

The failure point is the first stage that failed *irrecoverably*: a turn whose outcome is right is `correct` whatever
happened on the way (an ASR error the NLU shrugged off is no defect). If the outcome is wrong, the NLU is also run on
the spoken text itself (an oracle transcript): if it would have understood, ASR is to blame; if the transcript lost a
key word, ASR is to blame; otherwise NLU. A turn the user never addressed to the assistant is a `false_wake`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from assistant.home.model import Home
from assistant.simulate.goals import Goal
from assistant.simulate.household import areas_for_place, devices_for, named_devices
from assistant.text import normalize

STAGES = ("false_wake", "asr", "nlu", "entity_resolution", "result")
FAILURE_POINTS = (*STAGES, "correct")
_NUM = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
}


def _norm(text: str | None) -> str:
    words = normalize(text).split()
    return " ".join(_NUM.get(w, w) for w in words)


def wer(ref: str, hyp: str) -> float:
    """Word error rate of `hyp` against `ref` (normalised, number words as digits)."""
    r, h = _norm(ref).split(), _norm(hyp).split()
    if not r:
        return 0.0 if not h else 1.0
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(h, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
            prev, d[j] = d[j], cur
    return round(d[len(h)] / len(r), 3)


def _similar(a: str, b: str) -> float:
    a, b = _norm(a), _norm(b)
    if not a or not b:
        return 0.0
    return max(fuzz.ratio(a, b), fuzz.token_set_ratio(a, b) if min(len(a), len(b)) >= 4 else 0.0)


def slot_similarity(a: str, b: str) -> float:
    """How alike two slot values are (0-100), as the NLU check below compares them (labels are judged the same way)."""
    return _similar(a, b)


def words_survived(value: str, transcript: str) -> bool:
    """Every content word of a slot value appears (fuzzily) in the transcript."""
    tw = _norm(transcript).split()
    for w in _norm(value).split():
        if w in ("the", "a", "my", "to", "of"):
            continue
        if not any(w == t or (len(w) > 3 and fuzz.ratio(w, t) >= 80) for t in tw):
            return False
    return True


@dataclass
class Verdict:
    outcome: str
    """achieved | clarify | wrong | unsupported-ok | false-wake"""
    defect: bool
    failure_point: str
    stages: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "defect": self.defect,
            "failure_point": self.failure_point,
            "stages": self.stages,
            "reason": self.reason,
        }


def nlu_ok(
    goal: Goal, intent: str | None, slots: dict[str, Any], confidence: float | None = None, min_confidence: float = 0.0
) -> tuple[bool, str]:
    spec = goal.spec
    if not goal.supported:
        from assistant.simulate.goals import SPECS

        if intent in SPECS and (confidence is None or confidence >= min_confidence):
            return False, f"intent {intent} instead of an unsupported one"
        return True, ""
    if intent != goal.intent and intent not in spec.intents:
        return False, f"intent {intent} != {goal.intent}"
    if confidence is not None and confidence < min_confidence:
        return False, f"confidence {confidence:.2f} below {min_confidence}"
    if (goal.expect or {}).get("area") and not slots.get("house_place"):
        return False, "slot house_place missing"  # a room called by a word the home lacks: the NLU must still find it
    for k, v in goal.key_slots().items():
        got = slots.get(k)
        if got is None:
            return False, f"slot {k} missing"
        if _similar(str(got), v) < 75:
            return False, f"slot {k}={got!r} != {v!r}"
    return True, ""


def _targets(action: dict[str, Any]) -> list[str]:
    params = action.get("params") or {}
    if params.get("device_ids"):
        return list(params["device_ids"])
    t = action.get("target") or ""
    if t.startswith("group:"):
        return []
    return [x for x in t.split("+") if x]


def entities_ok(goal: Goal, rec: dict[str, Any], home: Home) -> tuple[bool, str]:
    ents = {e.get("slot"): e for e in rec.get("entities") or []}
    place = goal.slots.get("house_place")
    if place and goal.spec.home:
        want = set(areas_for_place(home, place))
        e = ents.get("house_place")
        if e is not None and e.get("entity_id") not in want:
            return False, f"room {place!r} resolved to {e.get('entity_id')}"
    area = (goal.expect or {}).get("area")
    if area:
        e = ents.get("house_place") or {}
        if e.get("entity_id") != area:
            return False, f"room {(goal.expect or {}).get('phrase')!r} resolved to {e.get('entity_id')}, not {area}"
    for k in ("artist_name", "music_genre", "song_name"):
        v = goal.slots.get(k)
        if v and goal.intent == "play_music":
            e = ents.get(k)
            if e is None or not e.get("entity_id"):
                return False, f"{k} {v!r} not resolved"
            name = e.get("name") or str(e.get("entity_id")).split(":", 1)[-1].replace("-", " ")
            if _similar(name, v) < 75:
                return False, f"{k} {v!r} resolved to {e.get('entity_id')}"
    return True, ""


def result_ok(goal: Goal, rec: dict[str, Any], home: Home) -> tuple[bool, str]:
    spec = goal.spec
    action = rec.get("action") or {}
    name, status = action.get("name") or "", action.get("status") or ""
    if not goal.supported:
        return (status == "unsupported", f"{name} [{status}] for an unsupported request")
    if status not in spec.statuses:
        return False, f"{name} [{status}]"
    if not any(name == a or (a.startswith("*.") and name.endswith(a[1:])) for a in spec.actions):
        return False, f"action {name} not in {spec.actions}"
    if spec.home:
        targets = _targets(action)
        place = goal.slots.get("house_place")
        if place:
            areas = set(areas_for_place(home, place))
            if not targets or any(home.devices[t].area not in areas for t in targets if t in home.devices):
                return False, f"target {targets} not in {place!r}"
        dev = goal.slots.get("device_type")
        if dev:
            ok = set(devices_for(home, dev))
            if ok and targets and not set(targets) & ok:
                return False, f"target {targets} is not a {dev!r}"
        if spec.named_device and not confirms_the_named_device(goal, action, home):
            return False, f"target {targets} is not the {dev!r}"
    if goal.expect:
        ok, why = expect_ok(goal.expect, rec, targets=_targets(action))
        if not ok:
            return False, why
    if goal.intent == "play_music":
        target = str(action.get("target") or "")
        for k in ("artist_name", "music_genre"):
            v = goal.slots.get(k)
            if v and _similar(target.split(":", 1)[-1].replace("-", " "), v) < 70 and not target.startswith("track:"):
                return False, f"playing {target} instead of {v!r}"
    return True, ""


def confirms_the_named_device(goal: Goal, action: dict[str, Any], home: Home) -> bool:
    """A request for a named device (Spec.named_device) acts on, or asks to confirm, exactly that device: opening the
    back door when the garage door was asked for is no success, however the question was answered."""
    named = set(named_devices(home, goal.slots.get("device_type") or ""))
    targets = set(_targets(action))
    return bool(targets) and (not named or targets <= named)


def expect_ok(expect: dict[str, Any], rec: dict[str, Any], targets: list[str]) -> tuple[bool, str]:
    """A personal meaning (`Goal.expect`): the action targets exactly the meant devices (or the meant catalog target:
    "my usual" -> artist:adele, not some track); the slot resolved to the meant catalog entry ("portland" ->
    Portland, Maine for this person)."""
    want = expect.get("devices")
    if want and set(targets) != set(want):
        return False, f"target {targets} but {expect.get('phrase') or 'it'} means {want}"
    target = expect.get("target")
    if target and str((rec.get("action") or {}).get("target") or "") != target:
        return False, f"playing {(rec.get('action') or {}).get('target')} but {expect.get('phrase')!r} means {target}"
    ent = expect.get("entity")
    if ent:
        got = [e.get("entity_id") for e in rec.get("entities") or [] if e.get("slot") == ent.get("slot")]
        if ent.get("id") not in got:
            return False, f"{ent.get('slot')} resolved to {got or None} but {expect.get('phrase')!r} means {ent['id']}"
    return True, ""


def assess(
    goal: Goal | None,
    spoken: str,
    rec: dict[str, Any],
    home: Home,
    oracle=None,
    min_confidence: float = 0.5,
    role: str = "request",
) -> Verdict:
    """The verdict for one turn. `goal` None = the user did not address the assistant (false wake).
    `oracle(text) -> (intent, slots, confidence)` parses the spoken text (the NLU on a perfect transcript)."""
    transcript = rec.get("transcript") or ""
    stages: dict[str, Any] = {"wer": wer(spoken, transcript) if spoken else None}
    if goal is None:
        return Verdict("false-wake", True, "false_wake", stages, "the user did not speak to the assistant")
    action = rec.get("action") or {}
    stages["key_words_survived"] = all(words_survived(v, transcript) for v in goal.key_slots().values())
    n_ok, n_why = nlu_ok(goal, rec.get("intent"), rec.get("slots") or {}, rec.get("intent_confidence"), min_confidence)
    e_ok, e_why = entities_ok(goal, rec, home) if n_ok else (False, "not reached")
    r_ok, r_why = result_ok(goal, rec, home)
    if e_ok and action.get("name") == "confirm" and not confirms_the_named_device(goal, action, home):
        e_ok, e_why = False, f"asked to confirm {_targets(action)} for {goal.slots.get('device_type')!r}"
    stages.update(nlu_ok=n_ok, entities_ok=e_ok, result_ok=r_ok)
    if action.get("status") == "clarify" and n_ok and goal.supported and (e_ok or action.get("name") != "confirm"):
        return Verdict("clarify", False, "correct", stages, "asked a clarifying question")
    if r_ok:
        return Verdict("unsupported-ok" if not goal.supported else "achieved", False, "correct", stages)
    err = rec.get("error") or {}
    if err.get("stage") == "asr" or not transcript.strip():
        return Verdict("wrong", True, "asr", stages, err.get("code") or "no transcript")
    if role == "clarify_answer":
        # The answer to "which one?" is matched by the skill's follow-up, not by the NLU: if the device's name was
        # heard, picking the wrong one (or none) is the resolution's fault.
        if not words_survived(spoken, transcript):
            return Verdict("wrong", True, "asr", stages, f"answer heard as {transcript!r}")
        return Verdict("wrong", True, "entity_resolution", stages, f"answer {spoken!r} not matched: {r_why}")
    if role == "confirm_answer":
        # "Yes" to "are you sure?": the skill's follow-up takes it; a yes that was heard and still did nothing is the
        # action's failure.
        if not words_survived(spoken, transcript):
            return Verdict("wrong", True, "asr", stages, f"answer heard as {transcript!r}")
        return Verdict("wrong", True, "result", stages, f"confirmed, yet {r_why}")
    # The failure point is the earliest stage that failed beyond recovery (the seed article's definition: "ASR is the
    # failure point, despite the other models' subsequent failure"). Misheard words failed beyond recovery when a key
    # word was lost or when they changed the parse: the context-free NLU on what was heard and on what was said
    # disagrees on the intent or on a slot, or is right for the goal on one and not on the other (a device "bright
    # and light" from "brighten lights", "I want a tattoo" from "a quarter to two"). Words misheard without changing
    # the parse ("contact lists" for "contact list") were recovered from, and the stage after them is to blame.
    changed = (
        bool(stages["wer"])
        and oracle is not None
        and words_changed_the_parse(goal, spoken, transcript, oracle, min_confidence)
    )
    if not n_ok:
        if oracle is not None:
            o_intent, o_slots, o_conf = oracle(spoken)
            stages["nlu_on_spoken_text_ok"] = nlu_ok(goal, o_intent, o_slots, o_conf, min_confidence)[0]
        if misheard_beyond_recovery(stages["wer"], stages["key_words_survived"], changed):
            stages["words_changed_the_parse"] = changed
            return Verdict("wrong", True, "asr", stages, f"{n_why} (heard {transcript!r})")
        return Verdict("wrong", True, "nlu", stages, n_why)
    # Understood as the goal's intent and key slots, yet not done: the same test of the words as above.
    if changed:
        stages["words_changed_the_parse"] = True
        return Verdict("wrong", True, "asr", stages, f"{e_why or r_why} (heard {transcript!r})")
    if not e_ok:
        return Verdict("wrong", True, "entity_resolution", stages, e_why)
    return Verdict("wrong", True, "result", stages, r_why)


def caching_oracle(nlu: Any) -> Callable[[str], tuple[str | None, dict[str, Any], float]]:
    """`assess`'s oracle: the context-free NLU (`nlu.parse(text, None)`) as (intent, slots, confidence), cached per
    text."""
    cache: dict[str, tuple[str | None, dict[str, Any], float]] = {}

    def oracle(text: str) -> tuple[str | None, dict[str, Any], float]:
        if text not in cache:
            r = nlu.parse(text, None)
            cache[text] = (r.intent, r.slot_dict(), r.confidence)
        return cache[text]

    return oracle


def words_changed_the_parse(
    goal: Goal, spoken: str, heard: str, oracle: Callable[[str], Any], min_confidence: float = 0.5
) -> bool:
    """The context-free NLU (`oracle`) on the heard and on the said words: a different intent or slot, or a parse right
    for the goal on one and not on the other (e.g. a confidence pushed under the threshold)."""
    a, b = oracle(heard), oracle(spoken)
    return not same_parse(a, b) or nlu_ok(goal, *a, min_confidence)[0] != nlu_ok(goal, *b, min_confidence)[0]


def misheard_beyond_recovery(wer_: float | None, key_words_survived: bool, words_changed_the_parse: bool) -> bool:
    """A request the NLU got wrong: were the words misheard so that no NLU could have recovered (then the ASR is the
    failure point), or heard well enough (the NLU is)?"""
    return bool(wer_) and (words_changed_the_parse or not key_words_survived)


def same_parse(a: tuple[str | None, dict[str, Any], Any], b: tuple[str | None, dict[str, Any], Any]) -> bool:
    """Two NLU parses (intent, slots, confidence) name the same intent and the same slots with similar values."""
    (ia, sa, _), (ib, sb, _) = a, b
    if ia != ib or set(sa) != set(sb):
        return False
    return all(_similar(str(sa[k]), str(sb[k])) >= 75 for k in sa)


def response_seconds(text: str | None) -> float:
    """How long the spoken answer lasts (about 2.7 words a second, plus a short lead-in)."""
    words = len(re.findall(r"\w+", text or ""))
    return 0.3 + words / 2.7 if words else 0.0
