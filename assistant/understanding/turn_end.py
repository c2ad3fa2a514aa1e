"""Is what was said so far a whole request? The semantic half of endpointing.

At a pause the runner decodes the audio so far (speculatively) and asks this module:
- `incomplete`: the words stop where a request cannot ("turn on the", "set a timer for", "play something by",
  "um"), or Whisper marked a trailing-off ("..."): wait longer for the rest;
- `complete`: a request the NLU understands with confidence and whose last word can end one: end the turn now;
- `unsure`: anything else: end on silence as usual.
As the semantic turn detectors of voice-agent frameworks do, but from the words and the NLU we already run, with no
extra model.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.text import normalize

# Words a spoken request does not end on (articles, prepositions, conjunctions, possessives, verbs of command that
# need an object, fillers).
CONTINUES = frozenset(
    """the a an this that these those my your our his her their its some any
    to in on at for of with by from into onto about around after before until till than
    and or but plus also then so because if when while
    set turn switch play put add remind tell give make start stop open close lock unlock dim raise lower show find
    call text send what's whats what how where who when which is are was can could would will should please
    um uh er erm hmm mm like
    too bye""".split()
)
# "too" and "bye": Whisper's spelling of a trailing "to" / "by" when the speaker paused after it ("turn the heating
# up too", "play some music, bye"); none of SLURP's 29,104 request texts (lm.txt) ends on either.
MIN_CONFIDENCE = 0.85
"""NLU confidence above which a request that ends on a final word counts as complete."""


@dataclass(frozen=True)
class Verdict:
    kind: str
    """`complete`, `incomplete` or `unsure`."""
    reason: str


def judge(text: str, intent_confidence: float | None) -> Verdict:
    """Whether `text` (a speculative transcript) is a whole request; `intent_confidence` from the NLU on it."""
    stripped = (text or "").strip()
    words = normalize(stripped).split()
    if not words:
        return Verdict("incomplete", "no words yet")
    if stripped.endswith(("...", "…", ",", "-", ";", ":")):
        return Verdict("incomplete", "trails off")
    if words[-1] in CONTINUES:
        return Verdict("incomplete", f"ends on {words[-1]!r}")
    if intent_confidence is not None and intent_confidence >= MIN_CONFIDENCE:
        return Verdict("complete", f"understood ({intent_confidence:.2f})")
    return Verdict("unsure", "not understood with confidence")
