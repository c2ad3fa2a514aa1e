"""The defect report as an engine job: the same aggregates as `report.defect_report` (defect rate by failing stage,
intent, device and day, goals, top failing requests per stage), computed by the chosen engine (DuckDB or Spark)
from an export's goal-label columns instead of the trace store, so it scales with the fleet (docs/scale.md).

Requests are grouped by the mining normalisation (`sources.Dialect.normalize`: [a-z0-9' ] only), so a request with
letters outside a-z groups differently from `report.defect_report`'s Unicode-aware one; ties rank by first seen,
as there. On the seed-28 simulator run's labelled export the result equals `defect_report` on its store.
"""

from __future__ import annotations

from typing import Any


def defect_report_job(export: Any, engine: Any, top: int = 5) -> dict[str, Any]:
    """`report.defect_report`'s dict (without `since`) from the export at `export`, computed on `engine`."""
    eng = engine
    eng.load_export(export)
    d = eng.dialect
    eng.create(
        "g",
        f"""SELECT turn_id, started_at, {d.epoch("started_at")} AS t, coalesce(intent, '(none)') AS intent,
                   coalesce(device_id, '(none)') AS device, {d.day("started_at")} AS day, goal_id, goal_success,
                   failure_point, goal_labeler_version AS version,
                   coalesce(nullif({d.normalize("coalesce(transcript, '')")}, ''), '(nothing heard)') AS text
            FROM turns WHERE goal_labeler_version IS NOT NULL""",
        cache=True,
    )
    n, defects, first, last = eng.rows("SELECT count(*), count(failure_point), min(t), max(t) FROM g")[0]
    goals = eng.rows(
        "SELECT count(*), count(*) FILTER (WHERE p < 0.5) "
        "FROM (SELECT goal_id, max(goal_success) AS p FROM g GROUP BY goal_id)"
    )[0]

    def table(key: str) -> list[dict[str, Any]]:
        rows = eng.rows(f"SELECT {key}, count(*), count(failure_point) FROM g GROUP BY {key}")
        out = [
            {"key": k, "turns": int(c), "defects": int(f), "defect_rate": round(f / c, 4) if c else None}
            for k, c, f in rows
        ]
        return sorted(out, key=lambda r: (-r["defects"], r["key"]))

    stages = eng.rows("SELECT failure_point, count(*) FROM g WHERE failure_point IS NOT NULL GROUP BY failure_point")
    ranked = eng.rows(
        f"""SELECT failure_point, text, n, example FROM (
                SELECT failure_point, text, count(*) AS n, min_by(turn_id, t) AS example, min(t) AS seen,
                       row_number() OVER (PARTITION BY failure_point ORDER BY count(*) DESC, min(t), text) AS r
                FROM g WHERE failure_point IS NOT NULL GROUP BY failure_point, text)
            WHERE r <= {int(top)} ORDER BY failure_point, n DESC, seen, text"""
    )
    requests: dict[str, list[dict[str, Any]]] = {}
    for st, text, c, ex in ranked:
        requests.setdefault(st, []).append({"text": text, "count": int(c), "example_turn": ex})
    n, defects = int(n), int(defects)
    return {
        "first_turn": first,
        "last_turn": last,
        "turns": n,
        "defective_turns": defects,
        "defect_rate": round(defects / n, 4) if n else None,
        "goals": int(goals[0]),
        "failed_goals": int(goals[1]),
        "goal_failure_rate": round(goals[1] / goals[0], 4) if goals[0] else None,
        "by_stage": [
            {
                "stage": st,
                "defects": int(c),
                "share": round(c / defects, 4) if defects else 0.0,
                "defect_rate": round(c / n, 4) if n else 0.0,
            }
            for st, c in sorted(stages, key=lambda r: (-r[1], r[0]))
        ],
        "by_intent": table("intent"),
        "by_device": table("device"),
        "by_day": sorted(table("day"), key=lambda r: r["key"]),
        "top_failing_requests": requests,
        "labeler_versions": {v: int(c) for v, c in eng.rows("SELECT version, count(*) FROM g GROUP BY version")},
    }
