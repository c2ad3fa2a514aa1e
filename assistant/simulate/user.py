"""The simulated person: judges each answer against their goal and reacts as people do.

After an answer that did not achieve the goal the person may barge in (when the wrong answer is long), then
rephrases with another way of saying the same goal, repeats themselves, says "never mind", or gives up - and gives
up for good after `max_tries` attempts. A clarifying question is answered with the device they meant, or now and then
left unanswered (they walk away). "Are you sure?" before a garage door opens or a door unlocks is mostly answered
yes; sometimes the person has changed their mind (no) or walks away. "Did I answer your question?" is answered yes/no
(truthfully, mostly) or ignored. An "I can't do that" for a request no skill
handles is usually accepted.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from assistant.home.model import Home
from assistant.learning.feedback import FEEDBACK_QUESTION
from assistant.simulate.goals import Goal
from assistant.simulate.ground_truth import Verdict, response_seconds
from assistant.simulate.household import Member, areas_for_place, devices_for, named_devices
from assistant.text import CANCEL_WORDS

YES_REPLIES = ["yes", "yes thanks", "yeah", "yep that's right", "yes you did"]
NO_REPLIES = ["no", "no you didn't", "not really", "nope", "that's wrong"]
CANCEL_REPLIES = [w for w in CANCEL_WORDS if w != "nevermind"]  # never mind, cancel, forget it, stop
CONFIRM_YES = ["yes", "yes please", "yeah go ahead", "yes do it", "sure", "yep"]
CONFIRM_NO = ["no", "no thanks", "no leave it", "nope", "no don't"]
P_CONFIRM_NO = 0.08
"""Answering "are you sure?" with no: the person changed their mind (a right answer, an unmet goal)."""
P_WALK_AWAY = {"confirm": 0.1, "clarify": 0.05}
"""Leaving a question unanswered (called away, changed their mind): "are you sure?" and "which one?"."""


@dataclass
class Reaction:
    kind: str
    """done | give-up | rephrase | repeat | cancel | clarify-answer | confirm-answer | walk-away | feedback-answer |
    ignore-feedback"""
    text: str | None = None
    barge_in_ms: float | None = None
    """Set when the person spoke over the answer: how far into it (ms)."""
    feedback: str | None = None
    """yes | no, for feedback answers."""


class SimUser:
    def __init__(self, member: Member, rng: random.Random, habitual: float = 0.0) -> None:
        self.m = member
        self.rng = rng
        self.habitual = habitual
        """Probability that a rephrasing is the habitual one (the same across the population for a goal: "the other
        common way to say it"); otherwise a random other utterance of the goal."""

    def first_utterance(self, goal: Goal) -> str:
        idx = self.m.phrasing.get(goal.goal_id)
        if idx is None or idx >= len(goal.utterances):
            idx = self.rng.randrange(len(goal.utterances))
        return goal.utterances[idx]

    def _other_phrasing(self, goal: Goal, tried: list[str]) -> str | None:
        rest = [u for u in goal.utterances if u not in tried]
        if not rest:
            return None
        if self.habitual and self.rng.random() < self.habitual:
            return min(rest, key=lambda u: hashlib.sha1(f"{goal.goal_id}|{u}".encode()).hexdigest())
        return self.rng.choice(rest)

    def _barge_in(self, rec: dict[str, Any], verdict: Verdict) -> float | None:
        """Speak over a long answer: mostly wrong ones, occasionally a right one the person has heard enough of."""
        dur = response_seconds(rec.get("response_text"))
        if dur < 2.5:
            return None
        p = self.m.p_barge_in if verdict.defect else 0.05
        if self.rng.random() >= p:
            return None
        return round(self.rng.uniform(0.8, min(dur - 0.3, 0.6 * dur + 0.8)) * 1000, 0)

    def react(self, goal: Goal, verdict: Verdict, rec: dict[str, Any], tried: list[str], home: Home) -> Reaction:
        """What the person does after hearing (part of) the answer to an attempt at `goal`."""
        text = rec.get("response_text") or ""
        barge = self._barge_in(rec, verdict)
        action = rec.get("action") or {}
        if action.get("name") == "confirm" and rec.get("expects_reply") and not verdict.defect:
            r = self.rng.random()
            if r < P_WALK_AWAY["confirm"]:
                return Reaction("walk-away", barge_in_ms=barge)
            if r < P_WALK_AWAY["confirm"] + P_CONFIRM_NO:
                return Reaction("cancel", self.rng.choice(CONFIRM_NO), barge)
            return Reaction("confirm-answer", self.rng.choice(CONFIRM_YES), barge)
        if action.get("status") == "clarify" and rec.get("expects_reply"):
            if not verdict.defect and self.rng.random() < P_WALK_AWAY["clarify"]:
                return Reaction("walk-away", barge_in_ms=barge)
            answer = self._clarify_answer(goal, rec, home)
            if answer:
                return Reaction("clarify-answer", answer, barge)
        if not verdict.defect:
            if FEEDBACK_QUESTION in text and barge is None:
                if self.rng.random() < self.m.p_answer_feedback:
                    truthful = self.rng.random() < 0.95
                    return Reaction(
                        "feedback-answer",
                        self.rng.choice(YES_REPLIES if truthful else NO_REPLIES),
                        feedback="yes" if truthful else "no",
                    )
                return Reaction("ignore-feedback", barge_in_ms=barge)
            if (
                verdict.outcome == "unsupported-ok"
                and self.rng.random() >= self.m.p_accept_unsupported
                and len(tried) < 2
            ):
                alt = self._other_phrasing(goal, tried)
                if alt:
                    return Reaction("rephrase", alt, barge)
            return Reaction("done", barge_in_ms=barge)
        # -- the goal was not achieved
        if FEEDBACK_QUESTION in text and barge is None and self.rng.random() < self.m.p_answer_feedback:
            truthful = self.rng.random() < 0.95
            return Reaction(
                "feedback-answer",
                self.rng.choice(NO_REPLIES if truthful else YES_REPLIES),
                feedback="no" if truthful else "yes",
            )
        if len(tried) >= self.m.max_tries:
            return Reaction("give-up", barge_in_ms=barge)
        r = self.rng.random()
        if r < self.m.p_cancel:
            return Reaction("cancel", self.rng.choice(CANCEL_REPLIES), barge)
        r = self.rng.random()
        if r < self.m.p_rephrase:
            alt = self._other_phrasing(goal, tried)
            if alt:
                return Reaction("rephrase", alt, barge)
            return Reaction("repeat", tried[-1], barge)
        if r < self.m.p_rephrase + self.m.p_repeat:
            return Reaction("repeat", tried[-1], barge)
        return Reaction("give-up", barge_in_ms=barge)

    def after_feedback(self, goal: Goal, last_verdict: Verdict, tried: list[str]) -> Reaction:
        """After answering "no" to the feedback question, try again (or not)."""
        if last_verdict.defect and len(tried) < self.m.max_tries and self.rng.random() < self.m.p_rephrase:
            alt = self._other_phrasing(goal, tried)
            return Reaction("rephrase", alt) if alt else Reaction("give-up")
        return Reaction("done" if not last_verdict.defect else "give-up")

    def _clarify_answer(self, goal: Goal, rec: dict[str, Any], home: Home) -> str | None:
        cands = [
            c for c in ((rec.get("action") or {}).get("params") or {}).get("candidates") or [] if c in home.devices
        ]
        if not cands:  # "For how long?" / "What time?": answer with the value the goal has
            value = next(
                (goal.slots[k] for k in ("duration", "time", "date", "list_name", "device_type") if goal.slots.get(k)),
                None,
            )
            return value
        dev = goal.slots.get("device_type")
        meant = set(named_devices(home, dev) or devices_for(home, dev)) if dev else set()
        place = goal.slots.get("house_place")
        areas = set(areas_for_place(home, place)) if place else set(self.m.preferred_rooms)
        fits = [c for c in cands if c in meant] or [c for c in cands if home.devices[c].area in areas] or cands
        name = home.devices[self.rng.choice(fits)].name
        return self.rng.choice([f"the {name}", name, f"the {name} please"])
