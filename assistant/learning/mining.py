"""Reformulation mining: relational steps (SQL) over the exported turns (Parquet or JSONL, see
assistant/trace/export_schema.json), on an embedded engine (DuckDB) by default.

Every step is a plain SELECT over the previous one (windows, joins, GROUP BY, no UDFs), so the same job moves to a
distributed SQL engine (Spark SQL, Trino, BigQuery) by changing where `turns` comes from; only the text
normalisation (`regexp_replace`) and `levenshtein` / JSON functions need their dialect's spelling.

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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.learning.sources import export_source
from assistant.text import normalize_sql

_REWRITE_TEXT = (
    'CASE WHEN spans LIKE \'%"stage":"rewrite"%\' THEN json_extract_string('
    "[x FOR x IN CAST(json_extract(spans, '$[*]') AS JSON[]) "
    "IF json_extract_string(x, '$.stage') = 'rewrite' "
    "AND json_extract(x, '$.output.applied')::BOOLEAN][1], '$.output.text') END"
)


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


def steps_sql(source: str, config: MiningConfig = MiningConfig(), learned: bool = False) -> dict[str, str]:
    """The relational steps as named SQL views (in order). `source` is a table expression over exported turns.
    learned=True: rephrase links come from the table `lp(src_id, dst_id, span)` (the learned detector's pairs)."""
    if learned:
        return _learned_steps(source, config)
    controls = ", ".join("'" + c + "'" for c in config.control_intents)
    rewrite_text = _REWRITE_TEXT
    return {
        "t": f"""
            SELECT turn_id, session_id, turn_index, epoch(started_at) AS t0, epoch(coalesce(ended_at, started_at)) AS t1,
                   user_pseudonym AS user_id, intent, {normalize_sql("transcript")} AS utt,
                   {normalize_sql(f"coalesce({rewrite_text}, transcript)")} AS exec_utt,
                   CASE WHEN label = 'ok' OR (coalesce(label, '') <> 'defect' AND action_status = 'done'
                                             AND error_code IS NULL) THEN 'success'
                        WHEN label = 'defect' OR action_status IN ('failed', 'unsupported')
                             OR error_code IS NOT NULL THEN 'failure' END AS outcome,
                   CASE WHEN signals LIKE '%"rephrase"%' THEN
                        [json_extract_string(x, '$.by_turn') FOR x IN CAST(json_extract(signals, '$[*]') AS JSON[])
                         IF json_extract_string(x, '$.type') = 'rephrase'][1] END AS rephrased_by
            FROM {source}
            WHERE transcript IS NOT NULL AND coalesce(intent, '') NOT IN ({controls})
              AND length({normalize_sql("transcript")}) > 0""",
        "corr": _corr_sql("t", config),
        "nx": """
            SELECT *, lead(turn_id) OVER w AS next_id, lead(utt) OVER w AS next_utt, lead(t0) OVER w AS next_t0
            FROM t WINDOW w AS (PARTITION BY session_id ORDER BY turn_index)""",
        "linked": f"""
            SELECT * REPLACE (CASE WHEN corrected THEN 'failure' ELSE outcome END AS outcome) FROM (
            SELECT *, coalesce(corrected OR (next_id IS NOT NULL AND coalesce(outcome, '') <> 'success' AND (
                       coalesce(rephrased_by = next_id, false) OR (next_t0 - t1 <= {config.gap_seconds}
                       AND 1.0 - levenshtein(exec_utt, next_utt) / greatest(length(exec_utt), length(next_utt), 1)
                           >= {config.min_similarity}))), false) AS link
            FROM (SELECT nx.*, c.corr_id IS NOT NULL AS corrected FROM nx LEFT JOIN corr c USING (turn_id)))""",
        "chains": """
            SELECT *, session_id || ':' || sum(CASE WHEN prev_link THEN 0 ELSE 1 END) OVER (
                       PARTITION BY session_id ORDER BY turn_index ROWS UNBOUNDED PRECEDING) AS chain_id
            FROM (SELECT *, coalesce(lag(link) OVER (PARTITION BY session_id ORDER BY turn_index), false) AS prev_link
                  FROM linked)""",
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
        # how each user's own turns of an utterance went, said as is: succeeded (not rephrased) or not
        "user_utt": """
            SELECT user_id, utt, count(*) AS n,
                   count(*) FILTER (WHERE outcome = 'success' AND NOT link AND utt = exec_utt) AS ok
            FROM chains WHERE user_id IS NOT NULL GROUP BY user_id, utt""",
    }


def _learned_steps(source: str, config: MiningConfig) -> dict[str, str]:
    base = steps_sql(source, config)
    controls = ", ".join("'" + c + "'" for c in config.control_intents)
    t = base["t"]
    # the utterance of a detected rephrase is its span; pairs come from lp, not from the labeller's signal
    t = t.replace(f"{normalize_sql('transcript')} AS utt,", f"{normalize_sql('coalesce(tg.span, transcript)')} AS utt,")
    t = t.replace(
        f"{normalize_sql(f'coalesce({_REWRITE_TEXT}, transcript)')} AS exec_utt,",
        f"{normalize_sql(f'coalesce({_REWRITE_TEXT}, tg.span, transcript)')} AS exec_utt,",
    )
    head, _, _ = t.partition("CASE WHEN signals LIKE")
    t = (
        head + "lp.dst_id AS rephrased_by,\n"
        "                   lp.dst_id IS NOT NULL AND coalesce(signals, '') NOT LIKE '%explicit-yes%' AS detected\n"
        f"            FROM {source} s LEFT JOIN lp ON lp.src_id = s.turn_id\n"
        "            LEFT JOIN (SELECT dst_id, any_value(span) AS span FROM lp GROUP BY dst_id) tg ON tg.dst_id = s.turn_id\n"
        f"            WHERE transcript IS NOT NULL AND (coalesce(intent, '') NOT IN ({controls}) OR tg.dst_id IS NOT NULL)\n"
        f"              AND length({normalize_sql('coalesce(tg.span, transcript)')}) > 0"
    )
    return {
        "t_raw": t,
        # a detected rephrase means the request failed (the person re-asked it), whatever the label says - unless they
        # said "yes" to "Did I answer your question?"
        "corr": _corr_sql("t_raw", config),
        "t": """
            SELECT turn_id, session_id, turn_index, t0, t1, user_id, intent, utt, exec_utt,
                   CASE WHEN detected OR c.corr_id IS NOT NULL THEN 'failure' ELSE outcome END AS outcome,
                   coalesce(rephrased_by, c.corr_id) AS rephrased_by
            FROM t_raw LEFT JOIN corr c USING (turn_id)""",
        "nx": """
            SELECT a.*, b.turn_id AS next_id, b.utt AS next_utt, b.t0 AS next_t0
            FROM t a LEFT JOIN t b ON b.turn_id = a.rephrased_by AND b.session_id = a.session_id""",
        "linked": """
            SELECT *, coalesce(next_id IS NOT NULL AND coalesce(outcome, '') <> 'success', false) AS link FROM nx""",
        "chains": """
            WITH RECURSIVE walk(turn_id, cur, depth) AS (
                SELECT turn_id, turn_id, 0 FROM linked
                UNION ALL
                SELECT w.turn_id, l.next_id, w.depth + 1 FROM walk w JOIN linked l ON l.turn_id = w.cur WHERE l.link),
            root AS (SELECT turn_id, arg_max(cur, depth) AS last_id FROM walk GROUP BY turn_id)
            SELECT linked.*, linked.session_id || ':' || root.last_id AS chain_id
            FROM linked JOIN root USING (turn_id)""",
        **{k: v for k, v in base.items() if k not in ("t", "corr", "nx", "linked", "chains")},
    }


def _corr_sql(t: str, config: MiningConfig) -> str:
    """Corrections (see `MiningConfig.correction_seconds`): turn_id -> corr_id, the same user's next turn."""
    if config.correction_seconds <= 0:
        return "SELECT NULL::VARCHAR AS turn_id, NULL::VARCHAR AS corr_id WHERE false"
    words = "list_distinct(string_split({}, ' '))"
    a, b = words.format("utt"), words.format("nu")
    return f"""
            SELECT turn_id, nt AS corr_id FROM (
                SELECT turn_id, utt, intent, user_id, t0, outcome, lead(turn_id) OVER w AS nt, lead(utt) OVER w AS nu,
                       lead(intent) OVER w AS ni, lead(user_id) OVER w AS nuser, lead(t0) OVER w AS nt0
                FROM {t} WINDOW w AS (PARTITION BY session_id ORDER BY turn_index))
            WHERE nt IS NOT NULL AND nt0 - t0 <= {config.correction_seconds} AND ni = intent AND nuser = user_id
              AND outcome IS NOT NULL
              AND nu <> utt AND len(list_intersect({a}, {b})) / greatest(len(list_distinct(list_concat({a}, {b}))), 1)
                  >= {config.correction_overlap}"""


def detect_pairs(path: Path, detector: Any, con: Any = None) -> list[tuple[str, str, str, float]]:
    """The learned detector over every session of an export: (src turn, rephrase turn, span, score)."""
    from assistant.learning.rephrase_data import sessions_from_export

    return [tuple(p) for s in sessions_from_export(path, con) for p in detector.detect(s)]


def mine(
    path: Path, config: MiningConfig = MiningConfig(), con: Any = None, threads: int | None = None, detector: Any = None
) -> Mined:
    """Run the steps over an export (a turns.parquet / turns.jsonl file or the directory holding it). `detector`: a
    `RephraseDetector` (learned links) or None (lexical links)."""
    import duckdb

    t0 = time.perf_counter()
    con = con or duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    det_stats: dict[str, Any] = {"rephrase_detector": "lexical"}
    if detector is not None:
        t_det = time.perf_counter()
        pairs = detect_pairs(path, detector, con)
        con.execute("CREATE OR REPLACE TEMP TABLE lp (src_id VARCHAR, dst_id VARCHAR, span VARCHAR, score DOUBLE)")
        if pairs:
            con.executemany("INSERT INTO lp VALUES (?, ?, ?, ?)", pairs)
        det_stats = {
            "rephrase_detector": "learned",
            "rephrase_model": getattr(detector, "version", None),
            "detected_pairs": len(pairs),
            "detect_seconds": round(time.perf_counter() - t_det, 3),
        }
    steps = steps_sql(export_source(path), config, learned=detector is not None)
    for name, sql in steps.items():
        # Materialise the wide per-turn steps once; the aggregates read them.
        kind = "TABLE" if name in ("chains", "edges") else "VIEW"
        con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {sql}")

    def cols(sql: str) -> dict[str, Any]:
        return {k: (v.tolist() if v.dtype == object else v) for k, v in con.execute(sql).fetchnumpy().items()}

    edges = cols("SELECT * FROM edges ORDER BY src, dst")
    absorb = cols("SELECT * FROM absorb ORDER BY utt")
    pairs = cols("SELECT * FROM pairs ORDER BY src, dst")
    user_pairs = cols("SELECT * FROM user_pairs ORDER BY user_id, src, dst")
    user_utt = cols("SELECT * FROM user_utt WHERE n >= 2 ORDER BY user_id, utt")
    turns, chained = con.execute("SELECT count(*), count(*) FILTER (WHERE link) FROM chains").fetchone()
    stats = {
        "turns": int(turns),
        "linked_turns": int(chained),
        "edges": len(edges["src"]),
        "states": len(set(edges["src"]) | set(edges["dst"])),
        "pairs": len(pairs["src"]),
        "seconds": round(time.perf_counter() - t0, 3),
        **det_stats,
    }
    return Mined(
        {k: np.asarray(v) if not isinstance(v, list) else v for k, v in edges.items()},
        absorb,
        pairs,
        stats,
        user_pairs,
        user_utt,
    )
