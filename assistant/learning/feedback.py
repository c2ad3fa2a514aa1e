"""Explicit feedback: which turns to ask "Did I answer your question?" about, what the reply means, and where it goes.

The pipeline decides *when* to ask (after a turn that `should_ask`); this module only samples, classifies and
records. A recorded answer is a `feedback` event on the turn it is about; `assistant.learning.signals` reads it back.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Literal

from assistant.text import normalize_unicode

if TYPE_CHECKING:
    from assistant.trace.store import TraceStore

FEEDBACK_QUESTION = "Did I answer your question?"
Answer = Literal["yes", "no", "unclear"]


def should_ask(turn_id: str, rate: float, salt: str = "feedback-v1") -> bool:
    """Deterministic sampling: the same turn id always gives the same decision, and about `rate` of turns are asked.

    Hash-based rather than random, so a replay of the same traces asks about the same turns.
    """
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{salt}:{turn_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


# Order matters: negative phrases are checked first ("not really" contains no "yes", "yes but no" is unclear).
_NO = re.compile(
    r"^(?:no+|nope|nah|not really|not quite|not at all|not exactly|not even close|negative|wrong|incorrect|"
    r"you didn'?t|you did not|that'?s (?:wrong|not (?:right|it|what i (?:asked|said|meant|wanted)))|"
    r"that (?:is|was)n'?t (?:right|it|what i (?:asked|said|meant|wanted))|that was wrong|"
    r"not what i (?:asked|said|meant|wanted)|no (?:you )?didn'?t|absolutely not|definitely not|not at all)\b"
)
_YES = re.compile(
    r"^(?:yes+|yeah|yep|yup|ya|sure|correct|right|exactly|absolutely|definitely|of course|it did|you did|"
    r"that'?s (?:right|it|correct|perfect|great)|that (?:was|is) (?:right|it|correct|perfect|great|helpful)|"
    r"perfect|great|thanks|thank you|cheers|good|affirmative|indeed|totally|yes you did)\b"
)


def classify_reply(text: str) -> Answer:
    """The user's reply to "Did I answer your question?": yes / no / unclear.

    >>> [classify_reply(t) for t in ("yes thanks", "nope", "not really", "you did", "what's the weather")]
    ['yes', 'no', 'no', 'yes', 'unclear']
    """
    t = normalize_unicode(text)
    if not t:
        return "unclear"
    is_no, is_yes = bool(_NO.match(t)), bool(_YES.match(t))
    if is_no and not is_yes:
        # "no thanks" after a yes/no question is still "no"; "no, yes it did" is a self-correction -> unclear
        return "unclear" if re.search(r"\b(?:yes|yeah|yep)\b", t[3:]) and t.startswith("no ") else "no"
    if is_yes and not is_no:
        # "yes but you turned on the wrong light": the tail decides
        m = re.search(r"\bbut\b\s*(.*)", t)
        if m:
            tail = m.group(1)
            return "no" if is_correction(tail) or _NO.match(tail) or re.search(r"\bwrong\b", tail) else "unclear"
        return "yes"
    return "unclear"


_CORRECTION = re.compile(
    r"^(?:(?:no+|nope|nah)\b[ ,]*(?:i said|i meant|i asked|i wanted|not (?:that|the|this|my)|the\b|i mean|"
    r"wrong|that'?s wrong|that'?s not)|"
    r"i said\b|i meant\b|i asked for\b|i didn'?t (?:say|ask|mean|want)\b|that'?s (?:wrong|not (?:right|it|what i))|"
    r"that (?:is|was)n'?t (?:right|it|what i)|that was wrong|not that one|not that\b|not the\b|wrong (?:one|light|"
    r"room|device|song|answer|thing|timer)|you got it wrong|that'?s the wrong|you misunderstood|"
    r"no no\b|incorrect\b|not what i (?:asked|said|meant|wanted))"
)


def is_correction(text: str) -> bool:
    """A spontaneous correction at the start of a turn: "no, I said the kitchen light", "that's wrong",
    "not that one". A bare "no" is not (it answers a question as often as it corrects)."""
    return bool(_CORRECTION.match(normalize_unicode(text)))


def record_feedback(
    store: TraceStore, turn_id: str, answer: str, reply_text: str | None = None, t_ms: float | None = None
) -> Answer:
    """Write the user's answer to the feedback question as a `feedback` event on `turn_id`.

    `answer` may be "yes" / "no" / "unclear" or the raw reply, which is classified. Returns the stored answer.
    """
    value: Answer = answer if answer in ("yes", "no", "unclear") else classify_reply(answer)  # type: ignore[assignment]
    if reply_text is None and answer not in ("yes", "no", "unclear"):
        reply_text = answer
    data = {"question": FEEDBACK_QUESTION, "answer": value}
    if reply_text is not None:
        data["reply"] = reply_text
    store.add_event(turn_id, "feedback", data, t_ms)
    return value
