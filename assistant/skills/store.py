"""SQLite store for skill state (timers, alarms, lists, player) under `context.data_dir`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DB_NAME = "skills.sqlite3"

# Lists were the household's only (no owner) before speaker identification: they become its shared lists.
_LISTS_V2 = """
PRAGMA foreign_keys = OFF;
ALTER TABLE list_items RENAME TO list_items_v1;
ALTER TABLE lists RENAME TO lists_v1;
CREATE TABLE lists (
    owner TEXT NOT NULL DEFAULT '', key TEXT NOT NULL, name TEXT NOT NULL, created_ts REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE list_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL DEFAULT '', list_key TEXT NOT NULL,
    item TEXT NOT NULL, added_ts REAL NOT NULL,
    FOREIGN KEY (owner, list_key) REFERENCES lists(owner, key) ON DELETE CASCADE
);
INSERT INTO lists (owner, key, name, created_ts) SELECT '', key, name, created_ts FROM lists_v1;
INSERT INTO list_items (id, owner, list_key, item, added_ts) SELECT id, '', list_key, item, added_ts FROM list_items_v1;
DROP TABLE list_items_v1;
DROP TABLE lists_v1;
PRAGMA foreign_keys = ON;
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,              -- 'timer' or 'alarm'
    name TEXT,
    duration_s INTEGER,
    created_ts REAL NOT NULL,
    due_ts REAL NOT NULL,
    due_local TEXT NOT NULL,         -- ISO local time of `due_ts`, for reading
    device_id TEXT,
    user_id TEXT,
    status TEXT NOT NULL DEFAULT 'active'   -- active | paused | cancelled
);
CREATE TABLE IF NOT EXISTS lists (
    owner TEXT NOT NULL DEFAULT '',  -- the person whose list it is; '' = the household's shared list
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ts REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS list_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL DEFAULT '',
    list_key TEXT NOT NULL,
    item TEXT NOT NULL,
    added_ts REAL NOT NULL,
    FOREIGN KEY (owner, list_key) REFERENCES lists(owner, key) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS scheduled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ts REAL NOT NULL,
    due_ts REAL NOT NULL,
    due_local TEXT NOT NULL,         -- ISO local time of `due_ts`, for reading
    description TEXT NOT NULL,       -- "turn off the lights in the living room"
    command TEXT NOT NULL,           -- JSON of assistant.home.grammar.Command
    session_id TEXT,
    device_id TEXT,                  -- the satellite it was said to ("here" is its area when it runs)
    user_id TEXT,
    status TEXT NOT NULL DEFAULT 'active',  -- active | done | failed | cancelled
    ran_ts REAL,
    result TEXT                      -- what the assistant said when it ran
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@contextmanager
def connect(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the skills database in `data_dir` (created on first use); commits on success."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / DB_NAME, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'lists'").fetchone() and "owner" not in {
            r[1] for r in conn.execute("PRAGMA table_info(lists)")
        }:
            conn.executescript(_LISTS_V2)
        conn.executescript(SCHEMA)
        cols = {r[1] for r in conn.execute("PRAGMA table_info(timers)")}
        if "remaining_s" not in cols:  # a paused timer keeps what was left (added after the first release)
            conn.execute("ALTER TABLE timers ADD COLUMN remaining_s INTEGER")
        yield conn
        conn.commit()
    finally:
        conn.close()
