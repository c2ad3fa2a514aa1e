"""The embedded trace store: SQLite in WAL mode, one transaction per turn, schema migrated on open."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.trace.schema import MIGRATIONS, SCHEMA_VERSION


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class Span:
    stage: str
    backend: str | None
    version: str | None
    start_ms: float
    end_ms: float
    input: Any = None
    output: Any = None
    confidence: float | None = None
    error_code: str | None = None

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass
class TurnTrace:
    """Everything recorded about one turn; written in one transaction."""

    turn_id: str
    session_id: str
    device_id: str
    user_id: str
    started_at: float
    ended_at: float
    source: dict[str, Any]
    pipeline: dict[str, Any]
    context: dict[str, Any]
    record: dict[str, Any]
    spans: list[Span] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class TraceStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise AssistantError(
                "trace-store-unreadable",
                f"{self.path} is not a readable trace database ({err}). Move it aside; a new one will be created.",
            ) from err

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise AssistantError(
                "trace-store-newer",
                f"{self.path} has schema version {current}, newer than this release ({SCHEMA_VERSION}). Upgrade the assistant.",
            )
        for version in range(current, SCHEMA_VERSION):
            self._db.execute("BEGIN")
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {version + 1}")
            self._db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    # -- writing -----------------------------------------------------------------------------------
    def write_turn(self, trace: TurnTrace) -> None:
        """Write a turn, its spans and events atomically: a crash leaves either all of it or none."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO sessions(session_id, device_id, user_id, started_at, last_turn_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(session_id) DO UPDATE SET last_turn_at=excluded.last_turn_at",
                (trace.session_id, trace.device_id, trace.user_id, trace.started_at, trace.ended_at),
            )
            seq = db.execute("SELECT COUNT(*) FROM turns WHERE session_id=?", (trace.session_id,)).fetchone()[0] + 1
            rec = trace.record
            err = rec.get("error") or {}
            db.execute(
                "INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    trace.turn_id, trace.session_id, seq, trace.started_at, trace.ended_at, _json(trace.source),
                    rec.get("transcript"), rec.get("intent"), rec.get("intent_confidence"), _json(rec.get("action")),
                    rec.get("response_text"), rec.get("response_audio"), err.get("code"), err.get("message"),
                    _json(trace.pipeline), _json(trace.context), _json(rec),
                ),
            )
            db.executemany(
                "INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (trace.turn_id, i, s.stage, s.backend, s.version, s.start_ms, s.end_ms, _json(s.input),
                     _json(s.output), s.confidence, s.error_code)
                    for i, s in enumerate(trace.spans)
                ],
            )
            for ev in trace.events:
                db.execute(
                    "INSERT INTO events(turn_id, type, t_ms, data, created_at) VALUES (?,?,?,?,?)",
                    (trace.turn_id, ev["type"], ev.get("t_ms"), _json(ev.get("data", {})), time.time()),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add_event(self, turn_id: str, type_: str, data: dict[str, Any], t_ms: float | None = None) -> None:
        """Attach later feedback (barge-in, rephrase, yes/no) to a turn already stored."""
        with self._db:
            self._db.execute(
                "INSERT INTO events(turn_id, type, t_ms, data, created_at) VALUES (?,?,?,?,?)",
                (turn_id, type_, t_ms, _json(data), time.time()),
            )

    # -- reading -----------------------------------------------------------------------------------
    def list_turns(self, limit: int = 20, session_id: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT turn_id, session_id, seq, started_at, transcript, intent, intent_confidence, response_text, "
            "error_code FROM turns"
        )
        args: tuple[Any, ...] = ()
        if session_id:
            sql += " WHERE session_id=?"
            args = (session_id,)
        sql += " ORDER BY started_at DESC, seq DESC LIMIT ?"
        cols = ["turn_id", "session_id", "seq", "started_at", "transcript", "intent", "intent_confidence",
                "response_text", "error_code"]
        return [dict(zip(cols, row)) for row in self._db.execute(sql, (*args, limit))]

    def find_turn_id(self, prefix: str) -> str | None:
        rows = self._db.execute("SELECT turn_id FROM turns WHERE turn_id LIKE ? LIMIT 2", (prefix + "%",)).fetchall()
        return rows[0][0] if len(rows) == 1 else None

    def get_turn(self, turn_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT turn_id, session_id, seq, started_at, ended_at, source, pipeline, context, record FROM turns "
            "WHERE turn_id=?",
            (turn_id,),
        ).fetchone()
        if row is None:
            return None
        out: dict[str, Any] = {
            "turn_id": row[0], "session_id": row[1], "seq": row[2], "started_at": row[3], "ended_at": row[4],
            "source": json.loads(row[5]), "pipeline": json.loads(row[6]), "context": json.loads(row[7]),
            "record": json.loads(row[8]),
        }
        out["spans"] = [
            {"stage": r[0], "backend": r[1], "version": r[2], "start_ms": r[3], "end_ms": r[4],
             "input": json.loads(r[5]), "output": json.loads(r[6]), "confidence": r[7], "error_code": r[8]}
            for r in self._db.execute(
                "SELECT stage, backend, version, start_ms, end_ms, input, output, confidence, error_code FROM spans "
                "WHERE turn_id=? ORDER BY idx", (turn_id,))
        ]
        out["events"] = [
            {"type": r[0], "t_ms": r[1], "data": json.loads(r[2])}
            for r in self._db.execute("SELECT type, t_ms, data FROM events WHERE turn_id=? ORDER BY event_id", (turn_id,))
        ]
        return out

    def iter_records(self, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Stream turn records in order (for export), never loading them all."""
        cur = self._db.execute(
            "SELECT record FROM turns WHERE started_at >= ? ORDER BY started_at, seq", (since or 0.0,)
        )
        for (rec,) in cur:
            yield json.loads(rec)

    def count_turns(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM turns").fetchone()[0])

    def last_session(self, device_id: str, user_id: str) -> tuple[str, float] | None:
        row = self._db.execute(
            "SELECT session_id, last_turn_at FROM sessions WHERE device_id=? AND user_id=? "
            "ORDER BY last_turn_at DESC LIMIT 1",
            (device_id, user_id),
        ).fetchone()
        return (row[0], row[1]) if row else None
