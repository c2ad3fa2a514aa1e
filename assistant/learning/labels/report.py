"""`assistant report defects`: what an engineer reads on Monday morning, from the goal labels in the trace store
(`assistant learn labels` first): the defect rate by failing stage, intent, device and day, failed goals, and the
requests that fail most often at each stage; and by taught concept at work (issue 15: does what people taught work?).

A turn is defective when its label has a failure point (P(defect) >= 0.5). Rates are over the labelled turns of
the period; "share" is the stage's part of all defective turns.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any


def _norm(text: str | None) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w' ]+", " ", (text or "").lower())).strip()


def _taught(value: str | None) -> str:
    """Whether taught concepts were at work (the record's `taught`, issue 15): "use: routine", "teaching", "(none)"."""
    if not value:
        return "(none)"
    import json

    t = json.loads(value)
    kinds = sorted({a.get("kind", "?") for a in t.get("applied") or [] if a.get("how") != "defined"})
    if kinds:
        return "use: " + "+".join(kinds)
    return "teaching" if t.get("teaching") else "(none)"


def defect_report(store: Any, since: float | None = None, top: int = 5) -> dict[str, Any]:
    sql = (
        "SELECT t.turn_id, t.started_at, t.transcript, t.intent, s.device_id, g.goal_id, g.goal_success, g.defect, "
        "g.failure_point, g.labeler_version, json_extract(t.record, '$.taught') "
        "FROM turns t JOIN sessions s ON s.session_id = t.session_id "
        "JOIN goal_labels g ON g.turn_id = t.turn_id WHERE t.started_at >= ? ORDER BY t.started_at"
    )
    n = 0
    defects = 0
    dims = ("stage", "intent", "device", "day", "taught")
    by: dict[str, dict[str, list[int]]] = {k: defaultdict(lambda: [0, 0]) for k in dims}
    goals: dict[str, float] = {}
    requests: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[tuple[str, str], str] = {}
    versions: Counter[str] = Counter()
    first = last = None
    for batch in store.iter_query(sql, (since if since is not None else float("-inf"),)):
        for tid, started, transcript, intent, device, gid, gsucc, _p, fp, ver, taught in batch:
            n += 1
            versions[ver] += 1
            first = started if first is None else first
            last = started
            day = datetime.fromtimestamp(started, tz=timezone.utc).date().isoformat()
            keys = {"intent": intent or "(none)", "device": device or "(none)", "day": day, "taught": _taught(taught)}
            for k, v in keys.items():
                by[k][v][0] += 1
                by[k][v][1] += fp is not None
            goals[gid] = gsucc
            if fp is not None:
                defects += 1
                by["stage"][fp][1] += 1
                text = _norm(transcript) or "(nothing heard)"
                requests[fp][text] += 1
                examples.setdefault((fp, text), tid)

    def table(k: str) -> list[dict[str, Any]]:
        rows = [
            {"key": key, "turns": c[0], "defects": c[1], "defect_rate": round(c[1] / c[0], 4) if c[0] else None}
            for key, c in by[k].items()
        ]
        return sorted(rows, key=lambda r: (-r["defects"], r["key"]))

    stages = [
        {
            "stage": st,
            "defects": c[1],
            "share": round(c[1] / defects, 4) if defects else 0.0,
            "defect_rate": round(c[1] / n, 4) if n else 0.0,
        }
        for st, c in sorted(by["stage"].items(), key=lambda kv: -kv[1][1])
    ]
    return {
        "since": since,
        "first_turn": first,
        "last_turn": last,
        "turns": n,
        "defective_turns": defects,
        "defect_rate": round(defects / n, 4) if n else None,
        "goals": len(goals),
        "failed_goals": sum(p < 0.5 for p in goals.values()),
        "goal_failure_rate": round(sum(p < 0.5 for p in goals.values()) / len(goals), 4) if goals else None,
        "by_stage": stages,
        "by_intent": table("intent"),
        "by_device": table("device"),
        "by_day": sorted(table("day"), key=lambda r: r["key"]),
        "by_taught": table("taught"),
        "top_failing_requests": {
            st: [{"text": t, "count": c, "example_turn": examples[(st, t)]} for t, c in cnt.most_common(top)]
            for st, cnt in requests.items()
        },
        "labeler_versions": dict(versions),
    }


def to_text(r: dict[str, Any], rows: int = 10) -> str:
    if not r["turns"]:
        return "no labelled turns in this period: run `assistant learn labels` first"
    head = (
        f"{r['turns']} turns, {r['defective_turns']} defective (rate {r['defect_rate']:.3f}); "
        f"{r['goals']} goals, {r['failed_goals']} failed (rate {r['goal_failure_rate']:.3f})"
    )
    out = [head, "", "by stage:"]
    out += [
        f"  {s['stage']:<18} {s['defects']:>6}  share {s['share']:.3f}  rate {s['defect_rate']:.3f}"
        for s in r["by_stage"]
    ]
    for k in ("intent", "device", "day", "taught"):
        if k not in r:  # a report from before issue 15
            continue
        out.append(f"by {k}:")
        out += [
            f"  {x['key']:<28} {x['defects']:>5} / {x['turns']:<5} rate {x['defect_rate']:.3f}"
            for x in r[f"by_{k}"][:rows]
        ]
    out.append("top failing requests per stage:")
    for st, items in r["top_failing_requests"].items():
        out.append(f"  {st}:")
        out += [f"    {i['count']:>4}x  {i['text']!r}  (e.g. turn {i['example_turn'][:8]})" for i in items]
    return "\n".join(out)
