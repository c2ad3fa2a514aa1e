"""The embedded trace store: SQLite in WAL mode, one transaction per turn, schema migrated on open."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.trace.schema import MIGRATIONS, SCHEMA_VERSION

_LOGGER = logging.getLogger(__name__)
_SQLITE_HEADER = b"SQLite format 3\x00"
_OUR_TABLES = {"sessions", "turns", "spans", "events"}
QUICK_CHECK_MAX_BYTES = 256 * 1024 * 1024
"""Stores up to this size get `PRAGMA quick_check` when opened (0.12 s for 63 MB here, cached); larger ones are
checked only as far as their header and schema, so a big store still opens fast."""
BUSY_TIMEOUT_S = 30.0
"""How long one statement waits for another process's write lock (SQLite's busy handler)."""
RETRY_FOR_S = 120.0
"""How long a write keeps retrying "database is locked/busy" before it gives up with a coded error."""
_FULL_OR_READONLY = ("database or disk is full", "readonly database", "disk i/o error", "unable to open database")


class _Reader:
    """One thread's read connection and the lock its every use holds: `close()` from another thread waits for the
    statement in flight (closing a connection while another thread steps on it crashes CPython's sqlite3)."""

    def __init__(self, db: sqlite3.Connection, thread: threading.Thread) -> None:
        self.db = db
        self.thread = thread
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.db.close()


class TraceNotSaved(AssistantError):
    """The store cannot be written (full disk, read-only data dir): the turn is answered but not recorded."""


def _is_busy(err: BaseException) -> bool:
    msg = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _cannot_write(err: BaseException) -> bool:
    """A full disk, a read-only medium or directory, or no permission: retrying will not help."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)
    msg = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and any(m in msg for m in _FULL_OR_READONLY)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return f"{os.strerror(err.errno).lower()}"
    return str(err)


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
    """One SQLite file in WAL mode: any number of processes read and write it at once.

    Opening takes an exclusive lock file (`traces.db.lock`) while it checks and migrates, so two processes starting
    together never both migrate or both move a damaged file aside. A file that is not a trace store (not SQLite,
    damaged, or another program's database) is moved aside to `traces.db.corrupt-<time>` with a warning naming both
    paths, and a new store is created; a store from a newer release is refused. Writes are short IMMEDIATE
    transactions retried while another process holds the lock, so "database is locked" never reaches a user. When the
    store cannot be written at all (read-only or full disk) it still opens, `writable` is False, and each write
    raises TraceNotSaved (code `trace-not-saved`) saying why.

    Threads (the Wyoming pool, the live loop): no sqlite3 connection is ever used by two threads at once. Writes share
    one connection behind `_lock`; reads use one connection per thread (`_reader()`), each behind its own lock;
    `close()` takes every lock, so it never closes a connection under a running statement, and a read or write after
    `close()` is a coded error (`trace-store-closed`) instead of a reopened connection.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.writable = not read_only
        self.unsaved_reason: str | None = None
        self.moved_aside: Path | None = None
        self._lock = threading.RLock()  # the write connection: one transaction at a time, whatever the thread
        self._readers: dict[threading.Thread, _Reader] = {}
        self._readers_lock = threading.Lock()
        self._closed = False
        self._wdb: sqlite3.Connection | None = None
        """Writes go through their own connection: a read cursor left open on `_db` (a streamed batch) pins an old
        WAL snapshot, and a write on that connection would get SQLITE_BUSY_SNAPSHOT until the cursor is done, which
        no waiting fixes (label_store writes labels between the batches it streams)."""
        if read_only:
            self._adopt(self._connect_read_only())
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._open_lock():
                self._adopt(self._open_checked())
        except (OSError, sqlite3.OperationalError) as err:
            if _is_busy(err) or not _cannot_write(err):
                raise AssistantError(
                    "trace-store-unavailable", f"{self.path}: cannot open the trace store ({err})."
                ) from err
            self._degrade(f"{self.path} cannot be written ({_reason(err)})")

    # -- opening -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _open_lock(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # in WAL: a committed turn survives a killed process
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _open_checked(self) -> sqlite3.Connection:
        problem = self._foreign_or_corrupt()
        if problem is not None:
            self._move_aside(problem)
        db = self._connect()
        try:
            self._migrate(db)
        except AssistantError:
            db.close()
            raise
        except sqlite3.DatabaseError as err:
            with contextlib.suppress(Exception):
                db.close()
            if isinstance(err, sqlite3.OperationalError) and (_is_busy(err) or _cannot_write(err)):
                raise
            self._move_aside(f"it cannot be read ({err})")  # damage the first checks missed
            db = self._connect()
            self._migrate(db)
        return db

    def _foreign_or_corrupt(self) -> str | None:
        """Why the file at `path` is not a usable trace store, or None (absent or fine)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with self.path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
        if header != _SQLITE_HEADER:
            return "it is not an SQLite database"
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if self.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                    check = db.execute("PRAGMA quick_check").fetchone()[0]
                    if check != "ok":
                        return f"it is damaged (quick_check: {check})"
            finally:
                db.close()
        except sqlite3.OperationalError as err:
            if _is_busy(err) or _cannot_write(err):
                return None  # not a verdict on the file; the normal open below reports it
            return f"it cannot be read ({err})"
        except sqlite3.DatabaseError as err:
            return f"it is damaged ({err})"
        if version == 0 and tables - {"sqlite_sequence"}:
            return f"it is another program's database (tables {', '.join(sorted(tables)[:5])})"
        if version > 0 and not _OUR_TABLES <= tables:
            return f"it is not a trace store (no {', '.join(sorted(_OUR_TABLES - tables))} table)"
        return None

    def _move_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            n += 1
            aside = aside.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):  # a damaged store's journal belongs with it, not with the new store
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
        self.moved_aside = aside
        _LOGGER.warning(
            "%s is not a usable trace store: %s. Moved it aside to %s; a new store is created at %s.",
            self.path,
            why,
            aside,
            self.path,
        )

    def _connect_read_only(self) -> sqlite3.Connection:
        if self.path.exists():
            with contextlib.suppress(sqlite3.DatabaseError):
                db = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return db
            with contextlib.suppress(sqlite3.DatabaseError):  # WAL without -shm on a read-only medium
                db = sqlite3.connect(
                    f"file:{self.path}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
                )
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return db
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        for version in range(SCHEMA_VERSION):  # an empty store in memory: readers see no turns
            db.executescript(MIGRATIONS[version])
        return db

    def _degrade(self, reason: str) -> None:
        self.writable = False
        self.unsaved_reason = reason
        self._adopt(self._connect_read_only())
        _LOGGER.info("traces are not being saved: %s", reason)  # the recorder tells the user

    # -- per-thread read connections ----------------------------------------------------------------
    def _adopt(self, db: sqlite3.Connection) -> None:
        """The connection opened (and checked) by the constructor becomes the opening thread's reader."""
        with self._readers_lock:
            self._readers[threading.current_thread()] = _Reader(db, threading.current_thread())

    def _reader(self) -> _Reader:
        """This thread's read connection, opened on first use; readers of threads that ended are closed here."""
        me = threading.current_thread()
        with self._readers_lock:
            if self._closed:
                raise AssistantError("trace-store-closed", f"{self.path}: the trace store was closed; reopen it.")
            reader = self._readers.get(me)
            if reader is not None:
                return reader
            for thread in [t for t in self._readers if not t.is_alive()]:
                self._readers.pop(thread).close()  # waits for a statement a generator may still run on it
            db = self._connect_read_only() if not self.writable else self._connect()
            reader = self._readers[me] = _Reader(db, me)
            return reader

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's read connection (tests and maintenance statements; the store's reads go through `_one`,
        `_all` and `_stream`, which hold the reader's lock)."""
        return self._reader().db

    def _one(self, sql: str, args: Any = ()) -> Any:
        reader = self._reader()
        with reader.lock:
            return reader.db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Any = ()) -> list[Any]:
        reader = self._reader()
        with reader.lock:
            return reader.db.execute(sql, args).fetchall()

    def _stream(self, sql: str, args: Any = (), batch_size: int = 1000) -> Iterator[list[Any]]:
        """Rows in batches; the cursor stays on the connection of the thread that started the stream."""
        reader = self._reader()
        with reader.lock:
            cur = reader.db.execute(sql, args)
        while True:
            with reader.lock:
                rows = cur.fetchmany(batch_size)
            if not rows:
                return
            yield rows

    def _migrate(self, db: sqlite3.Connection) -> None:
        current = db.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise AssistantError(
                "trace-store-newer",
                f"{self.path} has schema version {current}, newer than this release ({SCHEMA_VERSION}). Upgrade the "
                "assistant (or give another --data-dir); the store is left untouched.",
            )
        if current == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            current = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")  # a failed migration leaves the store at the previous version
            raise
        db.execute("COMMIT")

    # -- writing: short transactions, retried while another process holds the lock -----------------
    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(db)` in one IMMEDIATE transaction; retry on "locked"/"busy"; full or read-only -> TraceNotSaved."""
        if not self.writable:
            raise TraceNotSaved("trace-not-saved", f"Traces are not being saved: {self.unsaved_reason}.")
        deadline = time.monotonic() + RETRY_FOR_S
        delay = 0.01
        while True:
            with self._lock:
                if self._closed:
                    raise AssistantError("trace-store-closed", f"{self.path}: the trace store was closed; not saved.")
                if self._wdb is None:
                    self._wdb = self._connect()
                db = self._wdb
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        out = fn(db)
                        db.execute("COMMIT")
                        return out
                    except BaseException:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        raise
                except (sqlite3.OperationalError, OSError) as err:
                    if _is_busy(err) and time.monotonic() < deadline:
                        pass  # retried below, outside the lock
                    elif _is_busy(err):
                        raise AssistantError(
                            "trace-store-busy",
                            f"{self.path} stayed locked by another process for "
                            f"{RETRY_FOR_S:.0f} s; the turn was not saved.",
                        ) from err
                    elif _cannot_write(err):
                        raise TraceNotSaved(
                            "trace-not-saved", f"Traces are not being saved: {self.path}: {_reason(err)}."
                        ) from err
                    else:
                        raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)

    @property
    def schema_version(self) -> int:
        return int(self._one("PRAGMA user_version")[0])

    def close(self) -> None:
        """Close every connection, after the write and the reads in flight on other threads have finished."""
        with self._lock:
            with self._readers_lock:
                if self._closed:
                    return
                self._closed = True
                readers, self._readers = list(self._readers.values()), {}
            if self._wdb is not None:
                self._wdb.close()
                self._wdb = None
        for reader in readers:
            reader.close()

    # -- writing -----------------------------------------------------------------------------------
    def write_turn(self, trace: TurnTrace) -> None:
        """Write a turn, its spans and events atomically: a crash leaves either all of it or none."""

        def write(db: sqlite3.Connection) -> None:
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
                    trace.turn_id,
                    trace.session_id,
                    seq,
                    trace.started_at,
                    trace.ended_at,
                    _json(trace.source),
                    rec.get("transcript"),
                    rec.get("intent"),
                    rec.get("intent_confidence"),
                    _json(rec.get("action")),
                    rec.get("response_text"),
                    rec.get("response_audio"),
                    err.get("code"),
                    err.get("message"),
                    _json(trace.pipeline),
                    _json(trace.context),
                    _json(rec),
                ),
            )
            db.executemany(
                "INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        trace.turn_id,
                        i,
                        s.stage,
                        s.backend,
                        s.version,
                        s.start_ms,
                        s.end_ms,
                        _json(s.input),
                        _json(s.output),
                        s.confidence,
                        s.error_code,
                    )
                    for i, s in enumerate(trace.spans)
                ],
            )
            for ev in trace.events:
                db.execute(
                    "INSERT INTO events(turn_id, type, t_ms, data, created_at) VALUES (?,?,?,?,?)",
                    (trace.turn_id, ev["type"], ev.get("t_ms"), _json(ev.get("data", {})), time.time()),
                )

        self._write(write)

    def add_event(self, turn_id: str, type_: str, data: dict[str, Any], t_ms: float | None = None) -> None:
        """Attach later feedback (barge-in, rephrase, yes/no) to a turn already stored."""
        self._write(
            lambda db: db.execute(
                "INSERT INTO events(turn_id, type, t_ms, data, created_at) VALUES (?,?,?,?,?)",
                (turn_id, type_, t_ms, _json(data), time.time()),
            )
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
        cols = [
            "turn_id",
            "session_id",
            "seq",
            "started_at",
            "transcript",
            "intent",
            "intent_confidence",
            "response_text",
            "error_code",
        ]
        return [dict(zip(cols, row)) for row in self._all(sql, (*args, limit))]

    def find_turn_id(self, prefix: str) -> str | None:
        rows = self._all("SELECT turn_id FROM turns WHERE turn_id LIKE ? LIMIT 2", (prefix + "%",))
        return rows[0][0] if len(rows) == 1 else None

    def get_turn(self, turn_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT turn_id, session_id, seq, started_at, ended_at, source, pipeline, context, record FROM turns "
            "WHERE turn_id=?",
            (turn_id,),
        )
        if row is None:
            return None
        out: dict[str, Any] = {
            "turn_id": row[0],
            "session_id": row[1],
            "seq": row[2],
            "started_at": row[3],
            "ended_at": row[4],
            "source": json.loads(row[5]),
            "pipeline": json.loads(row[6]),
            "context": json.loads(row[7]),
            "record": json.loads(row[8]),
        }
        out["spans"] = [
            {
                "stage": r[0],
                "backend": r[1],
                "version": r[2],
                "start_ms": r[3],
                "end_ms": r[4],
                "input": json.loads(r[5]),
                "output": json.loads(r[6]),
                "confidence": r[7],
                "error_code": r[8],
            }
            for r in self._all(
                "SELECT stage, backend, version, start_ms, end_ms, input, output, confidence, error_code FROM spans "
                "WHERE turn_id=? ORDER BY idx",
                (turn_id,),
            )
        ]
        out["events"] = [
            {"type": r[0], "t_ms": r[1], "data": json.loads(r[2])}
            for r in self._all("SELECT type, t_ms, data FROM events WHERE turn_id=? ORDER BY event_id", (turn_id,))
        ]
        return out

    def iter_records(self, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Stream turn records in order (for export), never loading them all."""
        for rows in self._stream(
            "SELECT record FROM turns WHERE started_at >= ? ORDER BY started_at, seq", (since or 0.0,)
        ):
            for (rec,) in rows:
                yield json.loads(rec)

    def count_turns(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM turns")[0])

    def last_session(self, device_id: str, user_id: str) -> tuple[str, float] | None:
        row = self._one(
            "SELECT session_id, last_turn_at FROM sessions WHERE device_id=? AND user_id=? "
            "ORDER BY last_turn_at DESC LIMIT 1",
            (device_id, user_id),
        )
        return (row[0], row[1]) if row else None

    # -- labels, batched streaming, retention (assistant/learning, assistant/trace/export.py) ----------------
    _TURN_COLS = (
        "turn_id",
        "session_id",
        "seq",
        "started_at",
        "ended_at",
        "source",
        "response_audio",
        "pipeline",
        "context",
        "record",
        "device_id",
        "user_id",
    )

    def iter_turn_batches(
        self,
        since: float | None = None,
        until: float | None = None,
        order: str = "time",
        batch_size: int = 1000,
        spans: bool = True,
        events: bool = True,
        labels: bool = True,
    ) -> Iterator[list[dict[str, Any]]]:
        """Stream turns (with their spans, events and label) in batches; memory is one batch, whatever the store size.

        order="time": by start time (export); order="session": by session then seq (signals need a session's turns
        together). JSON columns are returned parsed.
        """
        where, args = [], []
        if since is not None:
            where.append("t.started_at >= ?")
            args.append(since)
        if until is not None:
            where.append("t.started_at < ?")
            args.append(until)
        sql = (
            "SELECT t.turn_id, t.session_id, t.seq, t.started_at, t.ended_at, t.source, t.response_audio, t.pipeline, "
            "t.context, t.record, s.device_id, s.user_id FROM turns t JOIN sessions s ON s.session_id = t.session_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + (" ORDER BY t.started_at, t.seq" if order == "time" else " ORDER BY t.session_id, t.seq")
        )
        for rows in self._stream(sql, args, batch_size):
            batch = []
            for row in rows:
                d = dict(zip(self._TURN_COLS, row))
                for key in ("source", "pipeline", "context", "record"):
                    d[key] = json.loads(d[key]) if d[key] else None
                d["spans"], d["events"], d["label"] = [], [], None
                batch.append(d)
            by_id = {d["turn_id"]: d for d in batch}
            marks = ",".join("?" * len(by_id))
            ids = list(by_id)
            if spans:
                for r in self._all(
                    "SELECT turn_id, stage, backend, version, start_ms, end_ms, input, output, confidence, error_code "
                    f"FROM spans WHERE turn_id IN ({marks}) ORDER BY turn_id, idx",
                    ids,
                ):
                    by_id[r[0]]["spans"].append(
                        {
                            "stage": r[1],
                            "backend": r[2],
                            "version": r[3],
                            "start_ms": r[4],
                            "end_ms": r[5],
                            "input": json.loads(r[6]) if r[6] else None,
                            "output": json.loads(r[7]) if r[7] else None,
                            "confidence": r[8],
                            "error_code": r[9],
                        }
                    )
            if events:
                for r in self._all(
                    f"SELECT turn_id, type, t_ms, data, created_at FROM events WHERE turn_id IN ({marks}) "
                    "ORDER BY event_id",
                    ids,
                ):
                    by_id[r[0]]["events"].append(
                        {"type": r[1], "t_ms": r[2], "data": json.loads(r[3]) if r[3] else {}, "created_at": r[4]}
                    )
            if labels:
                for r in self._all(
                    "SELECT turn_id, label, confidence, signals, labeler_version, created_at FROM labels "
                    f"WHERE turn_id IN ({marks})",
                    ids,
                ):
                    by_id[r[0]]["label"] = {
                        "label": r[1],
                        "confidence": r[2],
                        "signals": json.loads(r[3]),
                        "labeler_version": r[4],
                        "created_at": r[5],
                    }
            yield batch

    def write_labels(self, rows: list[tuple[str, str, float, list[dict[str, Any]], str]]) -> None:
        """(turn_id, label, confidence, signals, labeler_version) rows; replaces a turn's previous label."""
        now = time.time()
        self._write(
            lambda db: db.executemany(
                "INSERT OR REPLACE INTO labels(turn_id, label, confidence, signals, labeler_version, created_at) "
                "VALUES (?,?,?,?,?,?)",
                [(t, lab, conf, _json(sig), ver, now) for t, lab, conf, sig, ver in rows],
            )
        )

    def write_goal_labels(self, rows: list[Any], labeler_version: str) -> None:
        """Goal labels (assistant/learning/labels `TurnLabel`s: turn_id, goal_id, goal_index, goal_success, defect,
        failure_point, stage_probs); replaces a turn's previous row."""
        now = time.time()
        self._write(
            lambda db: db.executemany(
                "INSERT OR REPLACE INTO goal_labels(turn_id, goal_id, goal_index, goal_success, defect, failure_point, "
                "stage_probs, labeler_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        r.turn_id,
                        r.goal_id,
                        r.goal_index,
                        r.goal_success,
                        r.defect,
                        r.failure_point,
                        _json(r.stage_probs),
                        labeler_version,
                        now,
                    )
                    for r in rows
                ],
            )
        )

    def get_goal_label(self, turn_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT goal_id, goal_index, goal_success, defect, failure_point, stage_probs, labeler_version, created_at "
            "FROM goal_labels WHERE turn_id=?",
            (turn_id,),
        )
        if row is None:
            return None
        keys = (
            "goal_id",
            "goal_index",
            "goal_success",
            "defect",
            "failure_point",
            "stage_probs",
            "labeler_version",
            "created_at",
        )
        d = dict(zip(keys, row))
        d["stage_probs"] = json.loads(d["stage_probs"])
        return d

    def get_label(self, turn_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT label, confidence, signals, labeler_version, created_at FROM labels WHERE turn_id=?", (turn_id,)
        )
        if row is None:
            return None
        return {
            "label": row[0],
            "confidence": row[1],
            "signals": json.loads(row[2]),
            "labeler_version": row[3],
            "created_at": row[4],
        }

    def list_turns_labelled(self, label: str, limit: int = 20, session_id: str | None = None) -> list[dict[str, Any]]:
        """Like list_turns, only turns whose current label is `label` (defect / ok / unknown), with the label."""
        sql = (
            "SELECT t.turn_id, t.session_id, t.seq, t.started_at, t.transcript, t.intent, t.intent_confidence, "
            "t.response_text, t.error_code, l.label, l.confidence, l.signals FROM turns t "
            "JOIN labels l ON l.turn_id = t.turn_id WHERE l.label = ?"
        )
        args: list[Any] = [label]
        if session_id:
            sql += " AND t.session_id = ?"
            args.append(session_id)
        sql += " ORDER BY t.started_at DESC, t.seq DESC LIMIT ?"
        cols = [
            "turn_id",
            "session_id",
            "seq",
            "started_at",
            "transcript",
            "intent",
            "intent_confidence",
            "response_text",
            "error_code",
            "label",
            "label_confidence",
            "signals",
        ]
        out = []
        for row in self._all(sql, (*args, limit)):
            d = dict(zip(cols, row))
            d["signals"] = json.loads(d["signals"])
            out.append(d)
        return out

    def label_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._all("SELECT label, COUNT(*) FROM labels GROUP BY label")}

    def delete_turns(
        self, where_sql: str, args: tuple[Any, ...] = (), batch_size: int = 5000, on_audio: Any = None
    ) -> int:
        """Delete the turns matching `where_sql` (a condition over `turns t JOIN sessions s`) with their spans, events
        and labels (ON DELETE CASCADE), and the sessions left empty. `on_audio` is called with every audio path the
        deleted turns referenced (response audio, recorded request audio). Returns the number of turns deleted.

        Batched, so a prune of millions of turns neither holds them in memory nor locks writers out for long.
        """
        deleted = 0
        while True:
            rows = self._all(
                "SELECT t.turn_id, t.session_id, t.response_audio, t.source, t.record FROM turns t "
                f"JOIN sessions s ON s.session_id = t.session_id WHERE {where_sql} LIMIT ?",
                (*args, batch_size),
            )
            if not rows:
                return deleted
            if on_audio is not None:
                for _, _, resp_audio, source, record in rows:
                    paths = {resp_audio} if resp_audio else set()
                    for obj in (json.loads(source or "{}"), json.loads(record or "{}")):
                        for key in ("request_audio", "audio_path", "response_audio"):
                            if isinstance(obj.get(key), str):
                                paths.add(obj[key])
                    for path in sorted(paths):
                        on_audio(path)

            def delete(db: sqlite3.Connection, rows=rows) -> None:
                db.executemany("DELETE FROM turns WHERE turn_id=?", [(r[0],) for r in rows])
                db.executemany(
                    "DELETE FROM sessions WHERE session_id=? AND NOT EXISTS "
                    "(SELECT 1 FROM turns t WHERE t.session_id = sessions.session_id)",
                    [(sid,) for sid in {r[1] for r in rows}],
                )

            self._write(delete)
            deleted += len(rows)

    def iter_query(
        self, sql: str, args: tuple[Any, ...] = (), batch_size: int = 1000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Stream the rows of a read-only SELECT in batches (the export builds its rows in SQL)."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("iter_query runs SELECT statements only")
        yield from self._stream(sql, args, batch_size)

    def distinct_users(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT user_id FROM sessions")]
