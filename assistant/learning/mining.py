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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NORM_SQL = "trim(regexp_replace(regexp_replace(lower(replace({x}, '’', '''')), '[^a-z0-9'' ]+', ' ', 'g'), '\\s+', ' ', 'g'))"


def norm_sql(expr: str) -> str:
    return NORM_SQL.format(x=expr)


@dataclass(frozen=True)
class MiningConfig:
    gap_seconds: float = 30.0
    """A next turn starting within this many seconds of the end of a failed one, with similar text, is a rephrase."""
    min_similarity: float = 0.6
    """0-1, 1 - levenshtein / longer length, on normalised text (besides the labeller's own rephrase signal)."""
    control_intents: tuple[str, ...] = ("general_commandstop", "general_repeat", "general_affirm", "general_negate",
                                        "general_confirm", "general_dontcare", "general_praise", "general_greet",
                                        "feedback")


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


def _source(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        for name in ("turns.parquet", "turns.jsonl"):
            if (path / name).exists():
                path = path / name
                break
    p = str(path).replace("'", "''")
    if p.endswith(".jsonl") or p.endswith(".json"):
        return f"read_json_auto('{p}', format='newline_delimited')"
    return f"read_parquet('{p}')"


def steps_sql(source: str, config: MiningConfig = MiningConfig()) -> dict[str, str]:
    """The relational steps as named SQL views (in order). `source` is a table expression over exported turns."""
    controls = ", ".join("'" + c + "'" for c in config.control_intents)
    rewrite_text = ("CASE WHEN spans LIKE '%\"stage\":\"rewrite\"%' THEN json_extract_string("
                    "[x FOR x IN CAST(json_extract(spans, '$[*]') AS JSON[]) "
                    "IF json_extract_string(x, '$.stage') = 'rewrite' "
                    "AND json_extract(x, '$.output.applied')::BOOLEAN][1], '$.output.text') END")
    return {
        "t": f"""
            SELECT turn_id, session_id, turn_index, epoch(started_at) AS t0, epoch(coalesce(ended_at, started_at)) AS t1,
                   user_pseudonym AS user_id, {norm_sql('transcript')} AS utt,
                   {norm_sql(f'coalesce({rewrite_text}, transcript)')} AS exec_utt,
                   CASE WHEN label = 'ok' OR (coalesce(label, '') <> 'defect' AND action_status = 'done'
                                             AND error_code IS NULL) THEN 'success'
                        WHEN label = 'defect' OR action_status IN ('failed', 'unsupported')
                             OR error_code IS NOT NULL THEN 'failure' END AS outcome,
                   CASE WHEN signals LIKE '%"rephrase"%' THEN
                        [json_extract_string(x, '$.by_turn') FOR x IN CAST(json_extract(signals, '$[*]') AS JSON[])
                         IF json_extract_string(x, '$.type') = 'rephrase'][1] END AS rephrased_by
            FROM {source}
            WHERE transcript IS NOT NULL AND coalesce(intent, '') NOT IN ({controls})
              AND length({norm_sql('transcript')}) > 0""",
        "nx": """
            SELECT *, lead(turn_id) OVER w AS next_id, lead(utt) OVER w AS next_utt, lead(t0) OVER w AS next_t0
            FROM t WINDOW w AS (PARTITION BY session_id ORDER BY turn_index)""",
        "linked": f"""
            SELECT *, coalesce(next_id IS NOT NULL AND coalesce(outcome, '') <> 'success' AND (
                       coalesce(rephrased_by = next_id, false) OR (next_t0 - t1 <= {config.gap_seconds}
                       AND 1.0 - levenshtein(exec_utt, next_utt) / greatest(length(exec_utt), length(next_utt), 1)
                           >= {config.min_similarity})), false) AS link
            FROM nx""",
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
    }


def mine(path: Path, config: MiningConfig = MiningConfig(), con: Any = None, threads: int | None = None) -> Mined:
    """Run the steps over an export (a turns.parquet / turns.jsonl file or the directory holding it)."""
    import duckdb

    t0 = time.perf_counter()
    con = con or duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    steps = steps_sql(_source(path), config)
    for name, sql in steps.items():
        # Materialise the wide per-turn steps once; the aggregates read them.
        kind = "TABLE" if name in ("chains", "edges") else "VIEW"
        con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {sql}")
    def cols(sql: str) -> dict[str, Any]:
        return {k: (v.tolist() if v.dtype == object else v) for k, v in con.execute(sql).fetchnumpy().items()}

    edges = cols("SELECT * FROM edges ORDER BY src, dst")
    absorb = cols("SELECT * FROM absorb ORDER BY utt")
    pairs = cols("SELECT * FROM pairs ORDER BY src, dst")
    turns, chained = con.execute("SELECT count(*), count(*) FILTER (WHERE link) FROM chains").fetchone()
    stats = {"turns": int(turns), "linked_turns": int(chained), "edges": len(edges["src"]),
             "states": len(set(edges["src"]) | set(edges["dst"])), "pairs": len(pairs["src"]),
             "seconds": round(time.perf_counter() - t0, 3)}
    return Mined({k: np.asarray(v) if not isinstance(v, list) else v for k, v in edges.items()}, absorb, pairs, stats)
