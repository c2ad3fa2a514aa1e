"""Reformulation mining: relational steps (SQL) over the exported turns (Parquet or JSONL, see
assistant/trace/export_schema.json), on the engine chosen with `--engine` (assistant/learning/engines/): embedded
DuckDB by default, Apache Spark for clusters.

One definition: every step is a plain SELECT over the previous one (windows, joins, GROUP BY, a recursive CTE, no
UDFs) over `sources.prepared` (the export as plain typed columns), in the SQL both engines speak; the dialect
(`sources.Dialect`) spells the one non-portable expression here, the text normalisation. The learned rephrase
detector is the one Python step: `detect_partition`, run by the engine once per partition of sessions
(`Engine.map_partitions`: in-process on DuckDB, `mapInArrow` on Spark executors).

Steps:

1. ``t``: one row per turn: the normalised utterance the user said (``utt``) and the one that was executed
   (``exec_utt``: differs only when a rewrite was applied in that turn: the `rewrite` span's output), and the outcome:
   ``success`` (label ok, or action done and not a defect), ``failure`` (label defect, action failed/unsupported,
   pipeline error) or NULL (unknown: e.g. a clarifying question).
2. ``linked``: a turn is linked to the next turn of its session when it did not succeed and the next one restates it:
   the labeller's rephrase signal points at it, or it starts within ``gap_seconds`` with similar text
   (normalised Levenshtein similarity >= ``min_similarity``).
3. ``chains``: a reformulation chain = a run of linked turns (a running sum over the session of "not linked from the
   previous turn").
4. ``edges``: transition counts utterance_a -> utterance_b (a rephrase; and said -> executed for applied rewrites),
   with the number of distinct chains / users behind them.
5. ``absorb``: per utterance that takes part in some edge, the turns that ended a chain there: success / failure counts
   (a turn that failed and was not rephrased = the user gave up or the session ended after a defect).
6. ``pairs``: path support: in how many chains (and for how many users) utterance a was followed later in the same
   chain by utterance b that succeeded. `markov.py` uses it as the support of a rewrite a -> b.

Rephrase detector: ``lexical`` (above: the labeller's signal or similar next text) or ``learned``: the contextual
span model (`rephrase_model.RephraseDetector`) is run over the export's sessions first, and its pairs
(turn -> the later turn that rephrases it, span) are a table ``lp`` that replaces step 2's rule: a turn that did not
succeed links to the turn the detector points at (not necessarily the next one; the seed's "best rewrite
candidate", e.g. the later attempt that succeeded), the target's utterance is the detected span ("no, I said X" ->
X), and a chain is everything that points, transitively, to the same last turn (a recursive CTE). A turn the
detector says was rephrased counts as a failure whatever its label (the `completed` signal calls many wrong answers
ok), unless the person answered "yes" to the feedback question.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.learning.sources import DUCKDB, Dialect


@dataclass(frozen=True)
class MiningConfig:
    gap_seconds: float = 30.0
    """A next turn starting within this many seconds of the end of a failed one, with similar text, is a rephrase."""
    min_similarity: float = 0.6
    """0-1, 1 - levenshtein / longer length, on normalised text (besides the labeller's own rephrase signal)."""
    correction_seconds: float = 8.0
    """A correction: the same user's next turn starts within this many seconds of the start of a turn, with the same
    intent, other words but some in common (word Jaccard >= `correction_overlap`, 0.2): "turn on the big light" (the
    assistant turned on the ceiling light, status done) -> "turn on the floor lamp" 5 s later. The first turn counts
    as a failure whatever its label, and links to the correction; not after a clarifying question (no outcome: the
    next turn answers it). 0 turns corrections off."""
    correction_overlap: float = 0.2
    goal_correction_seconds: float = 30.0
    """The same, for two turns the goal labeller put in one goal: it already judged that the second serves the first's
    goal, so the person may take longer (a feedback question and its "Nope" in between, a slow answer). On seed 96's
    training store, 8 s missed 2 of the 4 corrections of "turn on the big light" to the floor lamp (8.6 s and 15.5 s
    apart)."""
    same_goal: bool = True
    """Where the goal labeller has run (`assistant learn labels`: the export's `goal_id`), a rephrase or correction
    links two turns only inside one goal. Without it, a request chained right after an answer ("turn on the big
    light", then "what time is it in Paris" 2 s later) was mined as a rewrite of the first (issue 16: the precomputed
    table lost 6:21 on seeds 15+16). Turns without a goal id link as before."""
    control_intents: tuple[str, ...] = (
        "general_commandstop",
        "general_repeat",
        "general_affirm",
        "general_negate",
        "general_confirm",
        "general_dontcare",
        "general_praise",
        "general_greet",
        "feedback",
    )


@dataclass
class Mined:
    """The mining result: numpy/list columns, small (one row per distinct utterance or utterance pair)."""

    edges: dict[str, Any]
    """src, dst, n (transitions), chains, users"""
    absorb: dict[str, Any]
    """utt, success, failure"""
    pairs: dict[str, Any]
    """src, dst, chains, users (dst succeeded later in the same chain)"""
    stats: dict[str, Any] = field(default_factory=dict)
    user_pairs: dict[str, Any] = field(default_factory=dict)
    """user_id, src, dst, chains: the pairs of each user's own chains"""
    user_utt: dict[str, Any] = field(default_factory=dict)
    """user_id, utt, n, ok: each user's turns of an utterance and how many succeeded as said"""
    meanings: dict[str, str] = field(default_factory=dict)
    """utterance -> what it did when it worked (the action and its target, `sources.prepared`'s `meaning`), the most
    frequent one; utterances that never worked are absent"""


def steps_sql(
    source: str = "src", config: MiningConfig = MiningConfig(), learned: bool = False, dialect: Dialect = DUCKDB
) -> dict[str, str]:
    """The relational steps as named SQL views (in order), in `dialect`. `source`: a table (expression) with
    `sources.PREPARED_COLUMNS` (an engine's `src` view, or `sources.prepared(...)`).
    learned=True: rephrase links come from the table `lp(src_id, dst_id, span)` (the learned detector's pairs)."""
    n = dialect.normalize
    controls = ", ".join("'" + c + "'" for c in config.control_intents)

    def same_goal(a: str, b: str) -> str:
        return f"({a} IS NULL OR {b} IS NULL OR {a} = {b})" if config.same_goal else "true"

    outcome = """CASE WHEN label = 'ok' OR (coalesce(label, '') <> 'defect' AND action_status = 'done'
                                             AND error_code IS NULL) THEN 'success'
                        WHEN label = 'defect' OR action_status IN ('failed', 'unsupported')
                             OR error_code IS NOT NULL THEN 'failure' END"""
    aggregates = {
        "steps": """
            SELECT chain_id, user_id, utt AS src, exec_utt AS dst FROM chains WHERE utt <> exec_utt
            UNION ALL
            SELECT chain_id, user_id, exec_utt AS src, next_utt AS dst FROM chains WHERE link""",
        "edges": """
            SELECT src, dst, count(*) AS n, count(DISTINCT chain_id) AS chains, count(DISTINCT user_id) AS users
            FROM steps GROUP BY src, dst""",
        "states": "SELECT src AS utt FROM edges UNION SELECT dst FROM edges",
        "absorb": """
            SELECT c.exec_utt AS utt, count(*) FILTER (WHERE outcome = 'success') AS success,
                   count(*) FILTER (WHERE outcome = 'failure') AS failure
            FROM chains c SEMI JOIN states s ON s.utt = c.exec_utt
            WHERE NOT c.link AND c.outcome IS NOT NULL GROUP BY c.exec_utt""",
        "pairs": """
            WITH pos AS (SELECT chain_id, user_id, turn_index, utt, exec_utt, outcome, link FROM chains
                         WHERE chain_id IN (SELECT chain_id FROM steps))
            SELECT a.utt AS src, b.exec_utt AS dst, count(DISTINCT a.chain_id) AS chains,
                   count(DISTINCT a.user_id) AS users
            FROM pos a JOIN pos b ON a.chain_id = b.chain_id AND b.turn_index >= a.turn_index
            WHERE b.outcome = 'success' AND a.utt <> b.exec_utt
              AND (a.utt <> a.exec_utt OR coalesce(a.outcome, '') <> 'success')
            GROUP BY a.utt, b.exec_utt""",
        # the same per user: the personal table (markov.personal_table) is this user's own reformulations
        "user_pairs": """
            WITH pos AS (SELECT chain_id, user_id, turn_index, utt, exec_utt, outcome, link FROM chains
                         WHERE chain_id IN (SELECT chain_id FROM steps) AND user_id IS NOT NULL)
            SELECT a.user_id AS user_id, a.utt AS src, b.exec_utt AS dst, count(DISTINCT a.chain_id) AS chains
            FROM pos a JOIN pos b ON a.chain_id = b.chain_id AND b.turn_index >= a.turn_index
            WHERE b.outcome = 'success' AND a.utt <> b.exec_utt
              AND (a.utt <> a.exec_utt OR coalesce(a.outcome, '') <> 'success')
            GROUP BY a.user_id, a.utt, b.exec_utt""",
        # what each executed utterance did when it worked (markov.py groups rewrite targets that did the same)
        "meanings": f"""
            SELECT {n("coalesce(rewrite_text, transcript)")} AS utt, meaning, count(*) AS n FROM {source}
            WHERE meaning IS NOT NULL AND transcript IS NOT NULL AND ({outcome}) = 'success'
            GROUP BY 1, 2""",
        # how each user's own turns of an utterance went, said as is: succeeded (not rephrased) or not
        "user_utt": """
            SELECT user_id, utt, count(*) AS n,
                   count(*) FILTER (WHERE outcome = 'success' AND NOT link AND utt = exec_utt) AS ok
            FROM chains WHERE user_id IS NOT NULL GROUP BY user_id, utt""",
    }
    if learned:
        gate = same_goal("a.goal_id", "b.goal_id")
        return {**_learned_steps(source, config, dialect, outcome, controls, gate), **aggregates}
    return {
        "t": f"""
            SELECT turn_id, session_id, turn_index, t0, t1, user_id, intent, {n("transcript")} AS utt,
                   {n("coalesce(rewrite_text, transcript)")} AS exec_utt, {outcome} AS outcome, rephrased_by, goal_id
            FROM {source}
            WHERE transcript IS NOT NULL AND coalesce(intent, '') NOT IN ({controls})
              AND length({n("transcript")}) > 0""",
        "corr": _corr_sql("t", config, dialect),
        "nx": """
            SELECT *, lead(turn_id) OVER w AS next_id, lead(utt) OVER w AS next_utt, lead(t0) OVER w AS next_t0,
                   lead(goal_id) OVER w AS next_goal
            FROM t WINDOW w AS (PARTITION BY session_id ORDER BY turn_index)""",
        # a corrected turn failed whatever its label, and links to its correction
        "linked": f"""
            SELECT turn_id, session_id, turn_index, t0, t1, user_id, intent, utt, exec_utt,
                   CASE WHEN corrected THEN 'failure' ELSE outcome END AS outcome, rephrased_by, next_id, next_utt,
                   next_t0, coalesce(corrected OR (next_id IS NOT NULL AND coalesce(outcome, '') <> 'success'
                       AND {same_goal("goal_id", "next_goal")} AND (
                       coalesce(rephrased_by = next_id, false) OR (next_t0 - t1 <= {config.gap_seconds}
                       AND 1.0 - levenshtein(exec_utt, next_utt) / greatest(length(exec_utt), length(next_utt), 1)
                           >= {config.min_similarity}))), false) AS link
            FROM (SELECT nx.*, c.corr_id IS NOT NULL AS corrected FROM nx LEFT JOIN corr c ON c.turn_id = nx.turn_id)""",
        "chains": """
            SELECT *, session_id || ':' || CAST(sum(CASE WHEN prev_link THEN 0 ELSE 1 END) OVER (
                       PARTITION BY session_id ORDER BY turn_index ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                       AS STRING) AS chain_id
            FROM (SELECT *, coalesce(lag(link) OVER (PARTITION BY session_id ORDER BY turn_index), false) AS prev_link
                  FROM linked)""",
        **aggregates,
    }


def _learned_steps(
    source: str, config: MiningConfig, dialect: Dialect, outcome: str, controls: str, gate: str
) -> dict[str, str]:
    n = dialect.normalize
    return {
        # the detector's pairs inside one goal (where the goal labeller has run: `MiningConfig.same_goal`)
        "lpg": f"""
            SELECT lp.* FROM lp JOIN {source} a ON a.turn_id = lp.src_id JOIN {source} b ON b.turn_id = lp.dst_id
            WHERE {gate}""",
        # the utterance of a detected rephrase is its span; pairs come from lp, not from the labeller's signal.
        # (several queries may point at one rephrase: its span is the one the earliest of them found)
        "t_raw": f"""
            SELECT turn_id, session_id, turn_index, t0, t1, user_id, intent, {n("coalesce(tg.span, transcript)")} AS utt,
                   {n("coalesce(rewrite_text, tg.span, transcript)")} AS exec_utt, {outcome} AS outcome,
                   lp.dst_id AS rephrased_by, lp.dst_id IS NOT NULL AND NOT explicit_yes AS detected, goal_id
            FROM {source} s LEFT JOIN lpg lp ON lp.src_id = s.turn_id
            LEFT JOIN (SELECT dst_id, min_by(span, src_index) AS span FROM lpg GROUP BY dst_id) tg
                ON tg.dst_id = s.turn_id
            WHERE transcript IS NOT NULL AND (coalesce(intent, '') NOT IN ({controls}) OR tg.dst_id IS NOT NULL)
              AND length({n("coalesce(tg.span, transcript)")}) > 0""",
        # a detected rephrase means the request failed (the person re-asked it), whatever the label says - unless they
        # said "yes" to "Did I answer your question?"
        "corr": _corr_sql("t_raw", config, dialect),
        "t": """
            SELECT r.turn_id, session_id, turn_index, t0, t1, user_id, intent, utt, exec_utt,
                   CASE WHEN detected OR c.corr_id IS NOT NULL THEN 'failure' ELSE outcome END AS outcome,
                   coalesce(rephrased_by, c.corr_id) AS rephrased_by
            FROM t_raw r LEFT JOIN corr c ON c.turn_id = r.turn_id""",
        "nx": """
            SELECT a.*, b.turn_id AS next_id, b.utt AS next_utt, b.t0 AS next_t0
            FROM t a LEFT JOIN t b ON b.turn_id = a.rephrased_by AND b.session_id = a.session_id""",
        "linked": """
            SELECT *, coalesce(next_id IS NOT NULL AND coalesce(outcome, '') <> 'success', false) AS link FROM nx""",
        # a chain: every turn that points, transitively, at the same last turn
        "chains": """
            WITH RECURSIVE walk(turn_id, cur, depth) AS (
                SELECT turn_id, turn_id, 0 FROM linked
                UNION ALL
                SELECT w.turn_id, l.next_id, w.depth + 1 FROM walk w JOIN linked l ON l.turn_id = w.cur WHERE l.link),
            root AS (SELECT turn_id, max_by(cur, depth) AS last_id FROM walk GROUP BY turn_id)
            SELECT linked.*, linked.session_id || ':' || root.last_id AS chain_id
            FROM linked JOIN root ON root.turn_id = linked.turn_id""",
    }


def _corr_sql(t: str, config: MiningConfig, dialect: Dialect) -> str:
    """Corrections (see `MiningConfig.correction_seconds`): turn_id -> corr_id, the same user's next turn."""
    if config.correction_seconds <= 0:
        return "SELECT CAST(NULL AS STRING) AS turn_id, CAST(NULL AS STRING) AS corr_id WHERE false"
    same = "(goal_id IS NULL OR ngoal IS NULL OR goal_id = ngoal)" if config.same_goal else "true"
    window = (
        f"CASE WHEN goal_id = ngoal THEN {max(config.goal_correction_seconds, config.correction_seconds)} "
        f"ELSE {config.correction_seconds} END"
        if config.same_goal
        else str(config.correction_seconds)
    )
    return f"""
            SELECT turn_id, nt AS corr_id FROM (
                SELECT turn_id, utt, intent, user_id, t0, outcome, goal_id, lead(turn_id) OVER w AS nt,
                       lead(utt) OVER w AS nu, lead(intent) OVER w AS ni, lead(user_id) OVER w AS nuser,
                       lead(t0) OVER w AS nt0, lead(goal_id) OVER w AS ngoal
                FROM {t} WINDOW w AS (PARTITION BY session_id ORDER BY turn_index)) x
            WHERE nt IS NOT NULL AND nt0 - t0 <= {window} AND ni = intent AND nuser = user_id
              AND {same}
              AND outcome IS NOT NULL AND nu <> utt AND {dialect.word_jaccard("utt", "nu")} >= {config.correction_overlap}"""


# -- the learned detector, batched per partition -----------------------------------------------------------------
DETECT_SQL = """
    SELECT turn_id, session_id, turn_index, t0, t1, coalesce(transcript, '') AS transcript, action_status, error_code,
           barge_in, expects_reply, intent
    FROM src"""
LP_SCHEMA = "src_id string, dst_id string, span string, score double, src_index int"


def detect_partition(detector: Any, batches: Iterable[Any]) -> Iterator[tuple[str, str, str, float, int]]:
    """The detector over one partition's turns (Arrow record batches of DETECT_SQL, sorted by session and turn
    index, a session never split across partitions): (src turn, rephrase turn, span, score, src turn index) per
    detected pair. Both engines run exactly this, so they find the same pairs."""
    from assistant.learning.rephrase_data import Turn

    session: list[Turn] = []
    index: dict[str, int] = {}

    def found() -> Iterator[tuple[str, str, str, float, int]]:
        for p in detector.detect(session):
            src, dst, span, score = p
            yield (src, dst, span, score, index[src])

    for batch in batches:
        cols = batch.to_pydict()
        for r in zip(*(cols[k] for k in cols)):
            tid, sid, _i, t0, t1, text, status, err, barge, expects, intent = r
            if session and session[0].session_id != sid:
                yield from found()
                session, index = [], {}
            index[tid] = int(r[2])
            session.append(
                Turn(tid, sid, float(t0), float(t1), text.strip(), status, err, bool(barge), bool(expects), intent)
            )
    if session:
        yield from found()


def detect_pairs(path: Path, detector: Any, con: Any = None) -> list[tuple[str, str, str, float, int]]:
    """The learned detector over every session of an export (DuckDB): (src turn, rephrase turn, span, score)."""
    from assistant.learning.engines.duckdb import DuckDbEngine

    eng = DuckDbEngine(con)
    eng.load_export(path)
    eng.map_partitions(
        "lp",
        DETECT_SQL,
        functools.partial(detect_partition, detector),
        LP_SCHEMA,
        "session_id",
        ["session_id", "turn_index"],
    )
    return [tuple(r) for r in eng.rows("SELECT * FROM lp")]


def mine(
    path: Path | str,
    config: MiningConfig = MiningConfig(),
    con: Any = None,
    threads: int | None = None,
    detector: Any = None,
    engine: Any = None,
) -> Mined:
    """Run the steps over an export (a turns.parquet / turns.jsonl file, the directory holding it, or a day-partitioned
    folder; with Spark any URI it reads). `detector`: a `RephraseDetector` (learned links) or None (lexical links).
    `engine`: an engine from `assistant.learning.engines.create` (default: DuckDB on `con`)."""
    from assistant.learning.engines.duckdb import DuckDbEngine

    t0 = time.perf_counter()
    eng = engine or DuckDbEngine(con, threads)
    eng.load_export(path)
    det_stats: dict[str, Any] = {"rephrase_detector": "lexical"}
    if detector is not None:
        t_det = time.perf_counter()
        eng.map_partitions(
            "lp",
            DETECT_SQL,
            functools.partial(detect_partition, detector),
            LP_SCHEMA,
            "session_id",
            ["session_id", "turn_index"],
        )
        (n_pairs,) = eng.rows("SELECT count(*) FROM lp")[0]
        det_stats = {
            "rephrase_detector": "learned",
            "rephrase_model": getattr(detector, "version", None),
            "detected_pairs": int(n_pairs),
            "detect_seconds": round(time.perf_counter() - t_det, 3),
        }
    for name, sql in steps_sql("src", config, learned=detector is not None, dialect=eng.dialect).items():
        # Materialise the wide per-turn steps once; the aggregates read them. `lpg` too: on Spark the recursive chain
        # walk would otherwise re-plan its joins with the export (and broadcast it) at every step: out of memory.
        eng.create(name, sql, cache=name in ("chains", "edges", "lpg"))
    edges = eng.columns("SELECT * FROM edges ORDER BY src, dst")
    absorb = eng.columns("SELECT * FROM absorb ORDER BY utt")
    pairs = eng.columns("SELECT * FROM pairs ORDER BY src, dst")
    user_pairs = eng.columns("SELECT * FROM user_pairs ORDER BY user_id, src, dst")
    user_utt = eng.columns("SELECT * FROM user_utt WHERE n >= 2 ORDER BY user_id, utt")
    meanings: dict[str, str] = {}
    for utt, meaning, _n in eng.rows("SELECT utt, meaning, n FROM meanings ORDER BY utt, n DESC, meaning"):
        meanings.setdefault(utt, meaning)
    turns, chained = eng.rows("SELECT count(*), count(*) FILTER (WHERE link) FROM chains")[0]
    (with_goal,) = eng.rows("SELECT count(*) FILTER (WHERE goal_id IS NOT NULL) FROM src")[0]
    stats = {
        "engine": eng.name,
        "turns": int(turns),
        "linked_turns": int(chained),
        # links are gated by goal only where the labeller ran (MiningConfig.same_goal); 0 means not at all
        "turns_with_goal_id": int(with_goal),
        "edges": len(edges["src"]),
        "states": len(set(edges["src"]) | set(edges["dst"])),
        "pairs": len(pairs["src"]),
        "seconds": round(time.perf_counter() - t0, 3),
        **det_stats,
    }
    if engine is None:
        eng.close()
    return Mined(
        {k: np.asarray(v) if not isinstance(v, list) else v for k, v in edges.items()},
        absorb,
        pairs,
        stats,
        user_pairs,
        user_utt,
        meanings,
    )
