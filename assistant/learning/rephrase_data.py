"""Examples for the contextual rephrase detector: a query turn, the turns that follow it in its session, and which of
them (and which span of it) restates the query.

The detector sees what the traces hold, nothing else: each turn's transcript, when it started and ended, and its
outcome (action status, pipeline error, barge-in, a question asked back). The input is a question-answering pair
("SQuAD 2.0" style, as in the seed article's rephrase detection):

    [CLS] <query transcript> ( <query outcome markers> ) [SEP]
          after 4 s : <candidate 1 transcript> ( <its outcome> ) | after 21 s : <candidate 2 transcript> ( ... ) [SEP]

Candidates are the later turns of the same session that start within `window_seconds` of the end of the query, at
most `max_candidates` of them. The gold answer is the token span of the candidate that rephrases the query (for
"no, I said X" corrections just X), or null (the [CLS] token) when none does.

Gold from the household simulator's truth (`sim_truth.jsonl`): a candidate rephrases the query when it pursues the
same goal again (same episode, role rephrase or repeat), or, for an answer to a clarifying question, when it gives
the same answer again (`restates`). When several do, the gold target is the first one that succeeded, else the last
one in the window (the seed's "best rewrite candidate").
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

WINDOW_SECONDS = 45.0
MAX_CANDIDATES = 3
MAX_LENGTH = 128
REPHRASE_ROLES = ("rephrase", "repeat")
QUERY_ROLES = ("request", "rephrase", "repeat")
SUCCESS = ("achieved", "unsupported-ok")

_CORRECTION_PREFIX = re.compile(
    r"^\W*(?:(?:no+|nope|nah)\W+)?(?:(?:i|I) (?:said|meant|asked for|wanted)|not that(?: one)?\W+(?:i (?:said|meant))?)"
    r"\W*",
    re.IGNORECASE,
)
_TRAIL = " .,!?;:\"'()[]{}"


@dataclass
class Turn:
    """What the detector knows about a turn (from the trace store or the export)."""

    turn_id: str
    session_id: str
    t0: float
    """start, epoch seconds"""
    t1: float
    """end of processing, epoch seconds"""
    text: str
    status: str | None = None
    """action status: done, failed, unsupported, clarify, unavailable ..."""
    error: str | None = None
    barge_in: bool = False
    expects_reply: bool = False
    intent: str | None = None
    """not read by the model; the lexical baseline needs it"""


@dataclass
class Example:
    query_id: str
    session_id: str
    text_a: str
    text_b: str
    candidate_ids: list[str]
    candidate_ranges: list[tuple[int, int]]
    """char range of each candidate's transcript inside text_b"""
    gaps: list[float]
    gold_turn: str | None = None
    gold_chars: tuple[int, int] | None = None
    """char range of the gold span inside text_b"""
    rephrase_turns: list[str] = field(default_factory=list)
    """every candidate that re-asks the same goal (any of them counts as 'right turn found')"""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- turns from traces / exports
def outcome_markers(turn: Turn) -> str:
    """Short words for the turn's outcome, as the model reads them."""
    words = []
    if turn.error:
        words.append("error")
    elif turn.status:
        words.append(
            {
                "done": "done",
                "failed": "failed",
                "unsupported": "unsupported",
                "clarify": "question",
                "unavailable": "unavailable",
            }.get(turn.status, turn.status)
        )
    else:
        words.append("nothing")
    if turn.expects_reply and "question" not in words:
        words.append("question")
    if turn.barge_in:
        words.append("interrupted")
    return " ".join(words)


def turn_from_trace(t: dict[str, Any]) -> Turn:
    """A turn as `TraceStore.iter_turn_batches` returns it."""
    rec = t.get("record") or {}
    action = rec.get("action") or {}
    return Turn(
        turn_id=t["turn_id"],
        session_id=t.get("session_id", ""),
        t0=float(t["started_at"]),
        t1=float(t.get("ended_at") or t["started_at"]),
        text=(rec.get("transcript") or "").strip(),
        status=action.get("status") if isinstance(action, dict) else None,
        error=(rec.get("error") or {}).get("code"),
        barge_in=any(e.get("type") == "barge-in" for e in t.get("events") or ()),
        expects_reply=bool(rec.get("expects_reply")),
        intent=rec.get("intent"),
    )


def sessions_from_store(db: Path) -> list[list[Turn]]:
    from assistant.trace.store import TraceStore

    store = TraceStore(Path(db))
    try:
        sessions: dict[str, list[Turn]] = {}
        for batch in store.iter_turn_batches(order="session", spans=False, labels=False):
            for t in batch:
                sessions.setdefault(t["session_id"], []).append(turn_from_trace(t))
        return list(sessions.values())
    finally:
        store.close()


def sessions_from_export(path: Path, con: Any = None) -> list[list[Turn]]:
    """Sessions of an export (turns.parquet / turns.jsonl or its folder), read with DuckDB."""
    import duckdb

    from assistant.learning.sources import export_source

    con = con or duckdb.connect()
    src = export_source(path)
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}

    def col(expr: str, name: str, default: str = "NULL") -> str:
        return expr if name in have else default

    rows = con.execute(f"""
        SELECT turn_id, session_id, epoch(started_at), epoch(coalesce(ended_at, started_at)), coalesce(transcript, ''),
               {col("action_status", "action_status")}, {col("error_code", "error_code")},
               {col("coalesce(CAST(events AS VARCHAR), '') LIKE '%barge-in%'", "events", "false")},
               {col("coalesce(expects_reply, false)", "expects_reply", "false")}, {col("intent", "intent")}
        FROM {src} ORDER BY session_id, turn_index""").fetchall()
    sessions: dict[str, list[Turn]] = {}
    for r in rows:
        sessions.setdefault(r[1], []).append(
            Turn(r[0], r[1], float(r[2]), float(r[3]), r[4].strip(), r[5], r[6], bool(r[7]), bool(r[8]), r[9])
        )
    return list(sessions.values())


# ----------------------------------------------------------------------------- the model's input
def candidates(
    session: list[Turn], i: int, window_seconds: float = WINDOW_SECONDS, max_candidates: int = MAX_CANDIDATES
) -> list[tuple[Turn, float]]:
    q = session[i]
    out = []
    for later in session[i + 1 :]:
        gap = later.t0 - q.t1
        if gap > window_seconds or len(out) >= max_candidates:
            break
        if later.text:
            out.append((later, max(0.0, gap)))
    return out


def build_input(query: Turn, cands: list[tuple[Turn, float]]) -> tuple[str, str, list[tuple[int, int]]]:
    text_a = f"{query.text} ( {outcome_markers(query)} )"
    parts, ranges, pos = [], [], 0
    for k, (c, gap) in enumerate(cands):
        head = (" | " if k else "") + f"after {int(round(gap))} s : "
        parts.append(head)
        pos += len(head)
        ranges.append((pos, pos + len(c.text)))
        parts.append(c.text)
        pos += len(c.text)
        tail = f" ( {outcome_markers(c)} )"
        parts.append(tail)
        pos += len(tail)
    return text_a, "".join(parts), ranges


def correction_tail(text: str) -> tuple[int, int]:
    """Char range of what matters in a rephrase: the text without a leading "no, I said" and trailing punctuation."""
    m = _CORRECTION_PREFIX.match(text)
    start = m.end() if m and m.end() < len(text) else 0
    end = len(text)
    while end > start and text[end - 1] in _TRAIL:
        end -= 1
    while start < end and text[start] in _TRAIL:
        start += 1
    return start, end


def make_example(
    session: list[Turn],
    i: int,
    truth: dict[str, dict[str, Any]] | None = None,
    window_seconds: float = WINDOW_SECONDS,
    max_candidates: int = MAX_CANDIDATES,
) -> Example | None:
    """The example for query turn `i` (None when no later turn falls in the window). With `truth` (turn_id ->
    sim_truth line) the gold answer is filled in."""
    q = session[i]
    if not q.text:
        return None
    cands = candidates(session, i, window_seconds, max_candidates)
    if not cands:
        return None
    text_a, text_b, ranges = build_input(q, cands)
    ex = Example(
        q.turn_id, q.session_id, text_a, text_b, [c.turn_id for c, _ in cands], ranges, [round(g, 2) for _, g in cands]
    )
    if truth is not None:
        gold = gold_target(q, [c for c, _ in cands], truth)
        if gold is not None:
            k, rephrases = gold
            ex.rephrase_turns = rephrases
            ex.gold_turn = cands[k][0].turn_id
            a, b = correction_tail(cands[k][0].text)
            off = ranges[k][0]
            ex.gold_chars = (off + a, off + b)
    return ex


def restates(tq: dict[str, Any] | None, tj: dict[str, Any] | None) -> bool:
    """Truth: does turn j restate turn q? A request (or an earlier attempt) is restated by a later rephrase / repeat
    of the same episode (goal); an answer to a clarifying question by a later answer of the same episode (the person
    said it again because it was not understood). An answer is never a rephrase of the request it answers."""
    if not tq or not tj or tq.get("episode") is None or tj.get("episode") != tq.get("episode") or not tq.get("goal"):
        return False
    if tq.get("role") in QUERY_ROLES:
        return tj.get("role") in REPHRASE_ROLES
    return tq.get("role") == "clarify_answer" and tj.get("role") == "clarify_answer"


def gold_target(q: Turn, cands: list[Turn], truth: dict[str, dict[str, Any]]) -> tuple[int, list[str]] | None:
    """(index of the gold candidate, ids of every candidate that restates the query) or None."""
    tq = truth.get(q.turn_id)
    same = [k for k, c in enumerate(cands) if restates(tq, truth.get(c.turn_id))]
    if not same:
        return None
    ok = [k for k in same if truth[cands[k].turn_id].get("outcome") in SUCCESS]
    return (ok[0] if ok else same[-1]), [cands[k].turn_id for k in same]


def load_truth(path: Path) -> dict[str, dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / "sim_truth.jsonl"
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out[r["turn_id"]] = r
    return out


def examples_from_sessions(
    sessions: Iterable[list[Turn]],
    truth: dict[str, dict[str, Any]] | None = None,
    window_seconds: float = WINDOW_SECONDS,
    max_candidates: int = MAX_CANDIDATES,
) -> Iterator[Example]:
    for s in sessions:
        for i in range(len(s)):
            ex = make_example(s, i, truth, window_seconds, max_candidates)
            if ex is not None:
                yield ex


def examples_from_run(
    run_dir: Path, window_seconds: float = WINDOW_SECONDS, max_candidates: int = MAX_CANDIDATES
) -> list[Example]:
    """Every example of a simulator run folder (traces.db + sim_truth.jsonl), gold filled in from the truth."""
    run_dir = Path(run_dir)
    truth = load_truth(run_dir / "sim_truth.jsonl")
    return list(
        examples_from_sessions(sessions_from_store(run_dir / "traces.db"), truth, window_seconds, max_candidates)
    )


# ----------------------------------------------------------------------------- augmentation
CORRECTION_PREFIXES = ["no I said ", "No, I said ", "no i meant ", "I said ", "no, I asked for "]


def augment_correction(ex: Example, rng: random.Random) -> Example | None:
    """A copy of a positive example whose gold candidate starts with "no, I said ..." (the span stays the request):
    the simulator's people never correct that way, real ones do."""
    if ex.gold_turn is None:
        return None
    k = ex.candidate_ids.index(ex.gold_turn)
    a, b = ex.candidate_ranges[k]
    prefix = rng.choice(CORRECTION_PREFIXES)
    cand_text = ex.text_b[a:b]
    ga, gb = ex.gold_chars
    text_b = ex.text_b[:a] + prefix + cand_text + ex.text_b[b:]
    shift = len(prefix)
    ranges = [
        (x, y) if j < k else (x, y + shift) if j == k else (x + shift, y + shift)
        for j, (x, y) in enumerate(ex.candidate_ranges)
    ]
    return Example(
        ex.query_id + "+corr",
        ex.session_id,
        ex.text_a,
        text_b,
        list(ex.candidate_ids),
        ranges,
        list(ex.gaps),
        ex.gold_turn,
        (ga + shift, gb + shift),
        list(ex.rephrase_turns),
    )


# ----------------------------------------------------------------------------- tokens
def load_tokenizer(path: Path) -> Any:
    """The MiniLM WordPiece tokenizer (tokenizers, no torch), without the file's own padding / truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode(tokenizer: Any, ex: Example, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """Token ids (pair encoding, second segment truncated), per-token char offsets in text_b (-1 outside it), the
    candidate index of each token (-1 outside candidates) and the gold start/end token (0, 0 = null)."""
    enc = tokenizer.encode(ex.text_a, ex.text_b)
    ids = list(enc.ids)
    types = list(enc.type_ids)
    seq = list(enc.sequence_ids)
    offsets = list(enc.offsets)
    if len(ids) > max_length:  # cut the second segment, keep the final [SEP]
        ids = ids[: max_length - 1] + [ids[-1]]
        types = types[:max_length]
        seq = seq[: max_length - 1] + [None]
        offsets = offsets[: max_length - 1] + [(0, 0)]
    cand = []
    for (s, e), sid in zip(offsets, seq):
        k = -1
        if sid == 1 and e > s:
            for j, (a, b) in enumerate(ex.candidate_ranges):
                if a <= s and e <= b:
                    k = j
                    break
        cand.append(k)
    start = end = 0
    if ex.gold_chars is not None:
        ga, gb = ex.gold_chars
        toks = [i for i, ((s, e), sid) in enumerate(zip(offsets, seq)) if sid == 1 and e > s and s >= ga and e <= gb]
        if toks:
            start, end = toks[0], toks[-1]
    return {
        "ids": ids,
        "types": types,
        "offsets": [(s, e) if sid == 1 else (-1, -1) for (s, e), sid in zip(offsets, seq)],
        "cand": cand,
        "start": start,
        "end": end,
    }
