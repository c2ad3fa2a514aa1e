"""The UI's read side: its own read-only SQLite connection to the trace store, filters, keyset pagination, full-text
search (an in-memory FTS5 index of transcripts, rebuilt from the store at start and caught up on each search: nothing
the UI indexes is written to disk, so a deleted user's words leave no copy behind), and the opted-out users' turns
hidden from every query.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from assistant.trace.privacy import Pseudonymizer, opted_out_pseudonyms

PAGE_SIZE = 50
COUNT_CAP = 1000
FILTER_KEYS = ("q", "device", "user", "intent", "label", "fp", "rewrite", "since", "until", "session")
STAGE_ORDER = ("wake", "vad", "endpoint_wait", "asr", "rewrite", "nlu", "resolve", "rerank", "respond", "tts")


def parse_time(value: str | None, end: bool = False) -> float | None:
    """'2026-12-01', '2026-12-01T08:00' (UTC) or a unix time -> unix seconds; a bare date as `until` means its end."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    ts = dt.timestamp()
    if end and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        ts += 86400
    return ts


def fts_query(text: str) -> str:
    """Words typed by a person -> an FTS5 query: every word must occur, each as a prefix; no FTS syntax leaks."""
    words = re.findall(r"\w+", text.lower())
    return " ".join(f'"{w}"*' for w in words)


def loads(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass
class Filters:
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_query(cls, params: Any) -> Filters:
        return cls({k: str(params.get(k)).strip() for k in FILTER_KEYS if params.get(k) not in (None, "")})

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def query_string(self, **extra: Any) -> str:
        items = {**self.values, **{k: v for k, v in extra.items() if v not in (None, "")}}
        return "&".join(f"{k}={quote(str(v))}" for k, v in items.items())


class Reader:
    """Read-only queries over `traces.db`; one connection shared by the server's threads under a lock."""

    def __init__(self, db_path: Path, data_dir: Path) -> None:
        self.db_path = Path(db_path)
        self.data_dir = Path(data_dir)
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()  # one index build at a time
        self._scan_db = sqlite3.connect(
            f"file:{quote(str(self.db_path.resolve()))}?mode=ro", uri=True, check_same_thread=False
        )
        self._db = sqlite3.connect(
            f"file:{quote(str(self.db_path.resolve()))}?mode=ro", uri=True, check_same_thread=False
        )
        self.fts5 = self._has_fts5()
        self._fts_state: tuple[int, int] | None = None  # (max rowid, count) indexed
        self._pseudo = Pseudonymizer(self.data_dir)
        self._users: tuple[float, dict[str, str]] | None = None
        self._intents: tuple[float, list[str]] | None = None
        self._db.execute("ATTACH ':memory:' AS ui")
        self._db.execute("CREATE TABLE ui.rewritten(id INTEGER PRIMARY KEY)")
        if self.fts5:
            self._db.execute(
                "CREATE VIRTUAL TABLE ui.fts USING fts5(transcript, tokenize='unicode61 remove_diacritics 2')"
            )

    def _has_fts5(self) -> bool:
        try:
            self._db.execute("CREATE VIRTUAL TABLE temp.probe USING fts5(x)")
            self._db.execute("DROP TABLE temp.probe")
            return True
        except sqlite3.OperationalError:
            return False

    def close(self) -> None:
        with self._sync_lock, self._lock:
            self._db.close()
            self._scan_db.close()

    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def iter_query(
        self, sql: str, args: tuple[Any, ...] = (), batch_size: int = 1000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Like TraceStore.iter_query, without the turns of opted-out users (their turn id is a row's first column)."""
        hidden = self.hidden_turn_ids()
        rows = self.query(sql, args)
        for i in range(0, len(rows), batch_size):
            batch = [r for r in rows[i : i + batch_size] if r[0] not in hidden]
            if batch:
                yield batch

    # -- users, privacy ------------------------------------------------------------------------------------
    def users(self) -> dict[str, str]:
        """user id -> pseudonym, for the users with sessions (cached for a few seconds)."""
        now = time.monotonic()
        if self._users is None or now - self._users[0] > 5.0:
            ids = [r[0] for r in self.query("SELECT DISTINCT user_id FROM sessions")]
            self._users = (now, {u: self._pseudo(u) or "" for u in ids})
        return self._users[1]

    def hidden_users(self) -> list[str]:
        """User ids whose pseudonym is opted out: the UI never shows their turns."""
        out = opted_out_pseudonyms(self.data_dir)
        return sorted(u for u, p in self.users().items() if p in out) if out else []

    def hidden_turn_ids(self) -> frozenset[str]:
        hidden = self.hidden_users()
        if not hidden:
            return frozenset()
        marks = ",".join("?" * len(hidden))
        return frozenset(
            r[0]
            for r in self.query(
                "SELECT t.turn_id FROM turns t JOIN sessions s ON s.session_id = t.session_id "
                f"WHERE s.user_id IN ({marks})",
                hidden,
            )
        )

    def user_for_pseudonym(self, pseudonym: str) -> str | None:
        for u, p in self.users().items():
            if p == pseudonym:
                return u
        return None

    # -- full-text search ----------------------------------------------------------------------------------
    def sync_fts(self, chunk: int = 5_000) -> float:
        """Index the turns added since the last call (all of them the first time): transcripts for full-text search,
        and which turns had a rewrite applied (a JSON field of the record: scanning it per query takes seconds at
        100k turns). Works in chunks of rowids, so the pages that need no index are served meanwhile; a search
        waits for it. Returns the seconds taken."""
        t0 = time.perf_counter()
        with self._sync_lock:
            with self._lock:
                db = self._db
                mx, n = db.execute("SELECT coalesce(max(rowid), 0), count(*) FROM main.turns").fetchone()
                last = self._fts_state
                if last == (mx, n):
                    return 0.0
                if last is not None:
                    added = db.execute("SELECT count(*) FROM main.turns WHERE rowid > ?", (last[0],)).fetchone()[0]
                    if last[1] + added != n:  # something was deleted: rowids may be reused, start again
                        last = None
                if last is None:
                    with db:
                        db.execute("DELETE FROM ui.rewritten")
                        if self.fts5:
                            db.execute("DELETE FROM ui.fts")
            pos = last[0] if last else 0
            scan = self._scan_db  # the store is read on a connection of its own, outside the shared lock
            while pos < mx:
                hi = min(pos + chunk, mx)
                rows = scan.execute(
                    "SELECT rowid, transcript, instr(record, '\"rewrite\": {') > 0 AND "
                    "json_extract(record, '$.rewrite') IS NOT NULL FROM main.turns WHERE rowid > ? AND rowid <= ?",
                    (pos, hi),
                ).fetchall()
                with self._lock, self._db as db:
                    if self.fts5:
                        db.executemany(
                            "INSERT INTO ui.fts(rowid, transcript) VALUES (?, ?)",
                            [(r[0], r[1]) for r in rows if r[1] is not None],
                        )
                    db.executemany("INSERT INTO ui.rewritten(id) VALUES (?)", [(r[0],) for r in rows if r[2]])
                pos = hi
            self._fts_state = (mx, n)
        return time.perf_counter() - t0

    # -- lists ---------------------------------------------------------------------------------------------
    def _where(self, f: Filters) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        hidden = self.hidden_users()
        if hidden:
            where.append(f"s.user_id NOT IN ({','.join('?' * len(hidden))})")
            args += hidden
        if f.get("device"):
            where.append("s.device_id = ?")
            args.append(f.get("device"))
        if f.get("user"):
            ids = [u for u, p in self.users().items() if p == f.get("user")]
            where.append(f"s.user_id IN ({','.join('?' * len(ids))})" if ids else "0")
            args += ids
        if f.get("session"):
            where.append("t.session_id = ?")
            args.append(f.get("session"))
        if f.get("intent"):
            where.append("t.intent = ?")
            args.append(f.get("intent"))
        if f.get("label"):
            where.append("l.label = ?")
            args.append(f.get("label"))
        fp = f.get("fp")
        if fp == "any":
            where.append("g.failure_point IS NOT NULL")
        elif fp == "none":
            where.append("g.turn_id IS NOT NULL AND g.failure_point IS NULL")
        elif fp:
            where.append("g.failure_point = ?")
            args.append(fp)
        if f.get("rewrite") in ("yes", "no"):
            self.sync_fts()
            cond = "t.rowid IN (SELECT id FROM ui.rewritten)"
            where.append(cond if f.get("rewrite") == "yes" else "NOT " + cond)
        since, until = parse_time(f.get("since")), parse_time(f.get("until"), end=True)
        if since is not None:
            where.append("t.started_at >= ?")
            args.append(since)
        if until is not None:
            where.append("t.started_at < ?")
            args.append(until)
        if f.get("q"):
            if self.fts5:
                self.sync_fts()
                where.append("t.rowid IN (SELECT rowid FROM ui.fts WHERE fts MATCH ?)")
                args.append(fts_query(f.get("q") or "") or '""')
            else:
                where.append("t.transcript LIKE ? ESCAPE '\\'")
                q = (f.get("q") or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args.append(f"%{q}%")
        return where, args

    _FROM = (
        "FROM turns t CROSS JOIN sessions s ON s.session_id = t.session_id "
        "LEFT JOIN labels l ON l.turn_id = t.turn_id LEFT JOIN goal_labels g ON g.turn_id = t.turn_id"
    )

    def turns(self, f: Filters, before: str | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
        """One page of turns, newest first. `before` is the cursor 'started_at:rowid' of the last row shown."""
        where, args = self._where(f)
        if before:
            try:
                ts, rid = before.split(":")
                where.append("(t.started_at < ? OR (t.started_at = ? AND t.rowid < ?))")
                args += [float(ts), float(ts), int(rid)]
            except ValueError:
                pass
        # The page's rowids first (cheap columns only: a search may match 10k+ turns that SQLite sorts), then the
        # details of those rows alone.
        sql = (
            "WITH page AS (SELECT t.rowid AS rid, t.started_at AS ts "
            + self._FROM
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY t.started_at DESC, t.rowid DESC LIMIT ?) "
            "SELECT t.rowid, t.turn_id, t.session_id, t.seq, t.started_at, t.transcript, t.intent, "
            "t.intent_confidence, t.response_text, t.error_code, s.device_id, s.user_id, l.label, g.failure_point, "
            "g.defect, json_extract(t.record, '$.latency_ms.end_to_end'), json_extract(t.record, '$.rewrite.text') "
            "FROM page p JOIN turns t ON t.rowid = p.rid JOIN sessions s ON s.session_id = t.session_id "
            "LEFT JOIN labels l ON l.turn_id = t.turn_id LEFT JOIN goal_labels g ON g.turn_id = t.turn_id "
            "ORDER BY p.ts DESC, p.rid DESC"
        )
        rows = self.query(sql, [*args, limit + 1])
        users = self.users()
        keys = (
            "rowid",
            "turn_id",
            "session_id",
            "seq",
            "started_at",
            "transcript",
            "intent",
            "intent_confidence",
            "response_text",
            "error_code",
            "device_id",
            "user_id",
            "label",
            "failure_point",
            "defect",
            "end_to_end_ms",
            "rewritten_to",
        )
        out = []
        for r in rows[:limit]:
            d = dict(zip(keys, r))
            d["user"] = users.get(d.pop("user_id")) or "?"
            out.append(d)
        nxt = f"{out[-1]['started_at']!r}:{out[-1]['rowid']}" if len(rows) > limit and out else None
        return {"turns": out, "next": nxt}

    def count(self, f: Filters, cap: int = COUNT_CAP) -> int:
        """Turns matching `f`; with filters, counted up to `cap` only (cap + 1 means "more than cap")."""
        where, args = self._where(f)
        needs_labels = any(f.get(k) for k in ("label", "fp"))
        frm = self._FROM if needs_labels else "FROM turns t JOIN sessions s ON s.session_id = t.session_id"
        if not where:
            return int(self.query("SELECT count(*) FROM turns")[0][0])
        return int(
            self.query(f"SELECT count(*) FROM (SELECT 1 {frm} WHERE {' AND '.join(where)} LIMIT ?)", [*args, cap + 1])[
                0
            ][0]
        )

    def facets(self) -> dict[str, list[str]]:
        """The values offered in the filter menus. The intents need a scan of the turns (about 0.2 s at 100k), so
        they are kept for a minute; the rest is read each time (small tables and indexes)."""
        now = time.monotonic()
        if self._intents is None or now - self._intents[0] > 60:
            self._intents = (
                now,
                [r[0] for r in self.query("SELECT DISTINCT intent FROM turns WHERE intent IS NOT NULL ORDER BY 1")],
            )
        hidden = set(self.hidden_users())
        return {
            "device": [r[0] for r in self.query("SELECT DISTINCT device_id FROM sessions ORDER BY 1")],
            "user": sorted({p for u, p in self.users().items() if u not in hidden}),
            "intent": self._intents[1],
            "label": ["defect", "ok", "unknown"],  # the labeller's values (assistant/learning/signals.py)
            "fp": [
                r[0]
                for r in self.query(
                    "SELECT DISTINCT failure_point FROM goal_labels WHERE failure_point IS NOT NULL ORDER BY 1"
                )
            ],
        }

    def sessions(self, before: float | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
        hidden = self.hidden_users()
        where, args = [], []
        if hidden:
            where.append(f"s.user_id NOT IN ({','.join('?' * len(hidden))})")
            args += hidden
        if before is not None:
            where.append("s.last_turn_at < ?")
            args.append(before)
        rows = self.query(
            "WITH page AS (SELECT * FROM sessions s"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY s.last_turn_at DESC LIMIT ?) "
            "SELECT s.session_id, s.device_id, s.user_id, s.started_at, s.last_turn_at, "
            "(SELECT count(*) FROM turns t WHERE t.session_id = s.session_id), "
            "(SELECT t.transcript FROM turns t WHERE t.session_id = s.session_id ORDER BY t.seq LIMIT 1) "
            "FROM page s ORDER BY s.last_turn_at DESC",
            [*args, limit + 1],
        )
        users = self.users()
        keys = ("session_id", "device_id", "user", "started_at", "last_turn_at", "turns", "first")
        out = [dict(zip(keys, r)) for r in rows[:limit]]
        for d in out:
            d["user"] = users.get(d["user"]) or "?"
        return {"sessions": out, "next": out[-1]["last_turn_at"] if len(rows) > limit and out else None}

    # -- one turn ------------------------------------------------------------------------------------------
    def turn(self, turn_id: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT t.turn_id, t.session_id, t.seq, t.started_at, t.ended_at, t.source, t.pipeline, t.context, "
            "t.record, t.response_audio, s.device_id, s.user_id FROM turns t JOIN sessions s ON "
            "s.session_id = t.session_id WHERE t.turn_id = ?",
            (turn_id,),
        )
        if not rows:
            rows = self.query(
                "SELECT t.turn_id, t.session_id, t.seq, t.started_at, t.ended_at, t.source, t.pipeline, t.context, "
                "t.record, t.response_audio, s.device_id, s.user_id FROM turns t JOIN sessions s ON "
                "s.session_id = t.session_id WHERE t.turn_id LIKE ? LIMIT 2",
                (turn_id + "%",),
            )
            if len(rows) != 1:
                return None
        r = rows[0]
        if r[11] in self.hidden_users():
            return None
        keys = (
            "turn_id",
            "session_id",
            "seq",
            "started_at",
            "ended_at",
            "source",
            "pipeline",
            "context",
            "record",
            "response_audio",
            "device_id",
            "user_id",
        )
        d = dict(zip(keys, r))
        for k in ("source", "pipeline", "context", "record"):
            d[k] = loads(d[k]) or {}
        d["user"] = self.users().get(d.pop("user_id")) or "?"
        tid = d["turn_id"]
        d["spans"] = [
            {
                "stage": s[0],
                "backend": s[1],
                "version": s[2],
                "start_ms": s[3],
                "end_ms": s[4],
                "input": loads(s[5]),
                "output": loads(s[6]),
                "confidence": s[7],
                "error_code": s[8],
            }
            for s in self.query(
                "SELECT stage, backend, version, start_ms, end_ms, input, output, confidence, "
                "error_code FROM spans WHERE turn_id = ? ORDER BY idx",
                (tid,),
            )
        ]
        d["events"] = [
            {"type": e[0], "t_ms": e[1], "data": loads(e[2]), "created_at": e[3]}
            for e in self.query(
                "SELECT type, t_ms, data, created_at FROM events WHERE turn_id = ? ORDER BY event_id", (tid,)
            )
        ]
        lab = self.query(
            "SELECT label, confidence, signals, labeler_version, created_at FROM labels WHERE turn_id = ?", (tid,)
        )
        d["label"] = (
            {
                "label": lab[0][0],
                "confidence": lab[0][1],
                "signals": loads(lab[0][2]) or [],
                "labeler_version": lab[0][3],
                "created_at": lab[0][4],
            }
            if lab
            else None
        )
        g = self.query(
            "SELECT goal_id, goal_index, goal_success, defect, failure_point, stage_probs, labeler_version "
            "FROM goal_labels WHERE turn_id = ?",
            (tid,),
        )
        d["goal"] = (
            dict(
                zip(
                    (
                        "goal_id",
                        "goal_index",
                        "goal_success",
                        "defect",
                        "failure_point",
                        "stage_probs",
                        "labeler_version",
                    ),
                    g[0],
                )
            )
            if g
            else None
        )
        if d["goal"]:
            d["goal"]["stage_probs"] = loads(d["goal"]["stage_probs"]) or {}
        d["session_turns"] = self.query(
            "SELECT turn_id, seq, started_at, transcript, intent, response_text, error_code FROM turns "
            "WHERE session_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (d["session_id"], d["seq"] - 5, d["seq"] + 5),
        )
        d["session_size"] = self.query("SELECT count(*) FROM turns WHERE session_id = ?", (d["session_id"],))[0][0]
        d["waterfall"] = waterfall(d["spans"], d["record"].get("latency_ms") or {})
        d["home_change"] = home_change(d["context"], d["record"].get("action"))
        return d

    # -- aggregates ----------------------------------------------------------------------------------------
    def label_summary(self, since: float | None = None) -> dict[str, Any]:
        """Defect rates from the signal labels (`assistant traces label`): the fallback when no goal labels exist."""
        hidden = self.hidden_users()
        where = ["t.started_at >= ?"]
        args: list[Any] = [since if since is not None else float("-inf")]
        if hidden:
            where.append(f"s.user_id NOT IN ({','.join('?' * len(hidden))})")
            args += hidden
        w = " WHERE " + " AND ".join(where)
        frm = "FROM turns t JOIN sessions s ON s.session_id = t.session_id JOIN labels l ON l.turn_id = t.turn_id"

        def by(expr: str) -> list[dict[str, Any]]:
            rows = self.query(f"SELECT {expr}, count(*), sum(l.label = 'defect') {frm}{w} GROUP BY 1", args)
            out = [
                {
                    "key": k if k is not None else "(none)",
                    "turns": n,
                    "defects": int(d or 0),
                    "defect_rate": round((d or 0) / n, 4) if n else None,
                }
                for k, n, d in rows
            ]
            return sorted(out, key=lambda r: (-r["defects"], str(r["key"])))

        n, defects = self.query(f"SELECT count(*), sum(l.label = 'defect') {frm}{w}", args)[0]
        return {
            "turns": n,
            "defective_turns": int(defects or 0),
            "defect_rate": round((defects or 0) / n, 4) if n else None,
            "by_intent": by("t.intent"),
            "by_device": by("s.device_id"),
            "by_day": sorted(by("date(t.started_at, 'unixepoch')"), key=lambda r: r["key"]),
        }

    def latency(self, since: float | None = None, sample: int = 20000) -> dict[str, list[float]]:
        """Span durations per stage (ms) of the newest `sample` turns (and the end-to-end latency)."""
        hidden = self.hidden_users()
        where = ["t.started_at >= ?"]
        args: list[Any] = [since if since is not None else float("-inf")]
        if hidden:
            where.append(f"s.user_id NOT IN ({','.join('?' * len(hidden))})")
            args += hidden
        rows = self.query(
            "WITH recent AS (SELECT t.turn_id, t.started_at FROM turns t "
            "JOIN sessions s ON s.session_id = t.session_id "
            f"WHERE {' AND '.join(where)} ORDER BY t.started_at DESC LIMIT ?) "
            "SELECT sp.stage, sp.end_ms - sp.start_ms, r.started_at FROM recent r "
            "JOIN spans sp ON sp.turn_id = r.turn_id",
            [*args, sample],
        )
        out: dict[str, list[tuple[float, float]]] = {}
        for stage, ms, ts in rows:
            if ms is not None and ms > 0:
                out.setdefault(stage, []).append((ts, float(ms)))
        return {k: v for k, v in sorted(out.items(), key=lambda kv: _stage_key(kv[0]))}  # type: ignore[misc]

    def rewrite_use(self) -> dict[str, dict[str, int]]:
        """Per rewrite table version: turns whose rewrite was applied, and how their labels came out."""
        hidden = self.hidden_turn_ids()
        rows = self.query(
            "SELECT sp.turn_id, json_extract(sp.output, '$.rewrite_version'), json_extract(sp.output, '$.layer'), "
            "l.label FROM spans sp LEFT JOIN labels l ON l.turn_id = sp.turn_id "
            "WHERE sp.stage = 'rewrite' AND json_extract(sp.output, '$.applied') = 1"
        )
        out: dict[str, dict[str, int]] = {}
        for tid, ver, layer, label in rows:
            if tid in hidden:
                continue
            key = str(ver) if ver is not None else f"online ({layer or '?'})"
            c = out.setdefault(key, {"applied": 0, "ok": 0, "defect": 0, "unknown": 0})
            c["applied"] += 1
            c[label if label in ("ok", "defect") else "unknown"] += 1
        return out


def _stage_key(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)


def waterfall(spans: list[dict[str, Any]], latency: dict[str, Any]) -> dict[str, Any]:
    """Bars for the timeline: each span's offset and width as % of the turn (from the end of speech, with the
    endpointing wait drawn before it)."""
    wait = float(latency.get("endpoint_wait") or 0.0)
    bars = []
    if wait > 0:
        bars.append({"stage": "endpoint_wait", "start_ms": -wait, "end_ms": 0.0, "backend": "endpointer"})
    for s in spans:
        if s["end_ms"] is None or s["start_ms"] is None:
            continue
        bars.append(
            {
                "stage": s["stage"],
                "start_ms": float(s["start_ms"]),
                "end_ms": float(s["end_ms"]),
                "backend": s.get("backend"),
                "error_code": s.get("error_code"),
                "confidence": s.get("confidence"),
            }
        )
    if not bars:
        return {"bars": [], "total_ms": 0.0}
    lo = min(b["start_ms"] for b in bars)
    hi = max(b["end_ms"] for b in bars)
    span = max(hi - lo, 1e-6)
    for b in bars:
        b["ms"] = b["end_ms"] - b["start_ms"]
        b["left"] = round(100 * (b["start_ms"] - lo) / span, 3)
        b["width"] = max(round(100 * b["ms"] / span, 3), 0.25)
    return {"bars": bars, "total_ms": hi - lo, "start_ms": lo}


def home_change(context: dict[str, Any], action: dict[str, Any] | None) -> list[dict[str, Any]]:
    """[{device, before, after}] for the devices the action changed (before: the context's home snapshot)."""
    if not action or not isinstance(action.get("result"), dict):
        return []
    changed = action["result"].get("changed")
    if not isinstance(changed, dict):
        return []
    states = ((context or {}).get("home") or {}).get("states") or {}
    out = []
    for dev, ch in changed.items():
        before = states.get(dev) or {}
        after = {**before, **(ch if isinstance(ch, dict) else {})}
        out.append(
            {
                "device": dev,
                "before": before,
                "after": after,
                "changed_keys": sorted(k for k in after if before.get(k) != after.get(k)),
            }
        )
    return out
