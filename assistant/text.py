"""Text normalisation and the stop/cancel vocabulary, in one place.

Normalisers (they differ on purpose; stored data is keyed on each, so none may change its output):

    function            keeps                          curly ' -> '   accents     used for
    norm_key            a-z 0-9 ("&" -> "and")         n/a (dropped)  folded      catalog ids, skill name matching
    normalize           a-z 0-9 and '                  yes            dropped     the trace store's learning jobs:
                                                                                  mining (NORMALIZE_SQL, its SQL
                                                                                  twin), rewrite tables, the online
                                                                                  index, rephrase evaluation
    normalize_unicode   any Unicode word char and '    yes            kept        feedback and rephrase signals
    normalize_dataset   a-z 0-9 and '                  no (a space)   dropped     NLU data sets: training dedup,
                                                                                  slot scoring, simulator goals

Every normaliser lower-cases, turns every other character into a space, collapses runs of spaces and strips. The
rewrite tables and the online index are keyed on `normalize`, and mining computes the same key in SQL
(`NORMALIZE_SQL`): change one, change both, and re-learn.

Stop / cancel words: one vocabulary (`CANCEL_WORDS`, `QUIET_WORDS`, `DECLINE_WORDS`); each matcher uses the part of
it its caller used before:

    is_stop_reply(text)      the whole answer is, or starts with, a cancel or decline word (a reply to "which one?")
    is_stop_command(text)    a cancel or quiet word anywhere in the text, except "forget it" (while the assistant
                             speaks: live barge-in)
    starts_with_cancel(text) the text starts with a cancel or quiet word, or "forget about it", "that's enough",
                             "abort" (the trace labeller's cancel signal)
"""

from __future__ import annotations

import re
import unicodedata

# -- normalisers -------------------------------------------------------------------------------------------------


def norm_key(text: str) -> str:
    """Dedup key: accents folded, lower case, letters and digits only."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    t = t.replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", " ", t).strip()


def normalize(text: str | None) -> str:
    """Lower case, curly apostrophes straight, apostrophes kept, every other non [a-z0-9] character -> space.
    The same as NORMALIZE_SQL."""
    t = (text or "").lower().replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]+", " ", t)).strip()


NORMALIZE_SQL = (
    "trim(regexp_replace(regexp_replace(lower(replace({x}, '’', '''')), '[^a-z0-9'' ]+', ' ', 'g'), '\\s+', ' ', 'g'))"
)
"""`normalize` in SQL (DuckDB spelling); `{x}` is the column expression (see `normalize_sql`)."""


def normalize_sql(expr: str) -> str:
    """The SQL expression normalising `expr` as `normalize` does."""
    return NORMALIZE_SQL.format(x=expr)


def normalize_unicode(text: str | None) -> str:
    """Like `normalize` but keeps every Unicode word character (accented letters, other scripts, digits, "_")."""
    t = (text or "").lower().replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^\w' ]+", " ", t)).strip()


_DATASET_RE = re.compile(r"[^a-z0-9']+")


def normalize_dataset(text: str) -> str:
    """Lowercase; every char other than letters, digits, apostrophe -> space; collapse spaces. Unlike `normalize`,
    a curly apostrophe is not straightened (it becomes a space): the shipped NLU training data was de-duplicated
    against SLURP with this."""
    return " ".join(_DATASET_RE.sub(" ", text.lower()).split())


# -- stop / cancel words -----------------------------------------------------------------------------------------

CANCEL_WORDS = ("never mind", "nevermind", "cancel", "forget it", "stop")
"""Drop the request."""
DECLINE_WORDS = ("nothing", "no", "none", "neither")
"""An answer to "which one?" that picks none."""
QUIET_WORDS = ("quiet", "enough", "shut up", "be quiet")
"""Stop talking."""

STOP_WORDS = CANCEL_WORDS + DECLINE_WORDS
"""What ends a clarifying exchange (`is_stop_reply`)."""


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in words)


_STOP_COMMAND_WORDS = tuple(w for w in CANCEL_WORDS if w != "forget it") + QUIET_WORDS
_CANCEL_START_WORDS = CANCEL_WORDS + QUIET_WORDS + ("forget about it", "that's enough", "thats enough", "abort")
_STOP_COMMAND_RE = re.compile(rf"\b({_alternation(_STOP_COMMAND_WORDS)})\b", re.IGNORECASE)
_CANCEL_START_RE = re.compile(rf"^\W*(?:{_alternation(_CANCEL_START_WORDS)})\b", re.IGNORECASE)


def is_stop_reply(text: str) -> bool:
    """The reply, end punctuation aside, is a stop word or starts with one ("never mind", "no thanks")."""
    t = text.lower().strip(" .!?")
    return any(t == w or t.startswith(w + " ") for w in STOP_WORDS)


def is_stop_command(text: str) -> bool:
    """A cancel or quiet word anywhere in `text` (case-insensitive, whole words), "forget it" excepted."""
    return _STOP_COMMAND_RE.search(text) is not None


def starts_with_cancel(text: str) -> bool:
    """`text` (leading punctuation aside) starts with a cancel or quiet word, "forget about it", "that's enough" or
    "abort" (case-insensitive, whole words)."""
    return _CANCEL_START_RE.match(text) is not None
