"""The trace schema: versioned SQL migrations. `PRAGMA user_version` holds the applied version.

A migration is append-only: never edit one that has shipped; add the next.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[list[str]] = [
    # 1: sessions, turns, one span per stage, and events (feedback, barge-in...) attached to turns.
    """
    CREATE TABLE sessions (
        session_id   TEXT PRIMARY KEY,
        device_id    TEXT NOT NULL,
        user_id      TEXT NOT NULL,
        started_at   REAL NOT NULL,            -- unix seconds
        last_turn_at REAL NOT NULL
    );
    CREATE TABLE turns (
        turn_id          TEXT PRIMARY KEY,
        session_id       TEXT NOT NULL REFERENCES sessions(session_id),
        seq              INTEGER NOT NULL,     -- order within the session, from 1
        started_at       REAL NOT NULL,
        ended_at         REAL NOT NULL,
        source           TEXT NOT NULL,        -- JSON: {kind: file|text|mic, file, offset_seconds}
        transcript       TEXT,
        intent           TEXT,
        intent_confidence REAL,
        action           TEXT,                 -- JSON
        response_text    TEXT,
        response_audio   TEXT,
        error_code       TEXT,
        error_message    TEXT,
        pipeline         TEXT NOT NULL,        -- JSON: versions of the stages' backends
        context          TEXT NOT NULL,        -- JSON: device, user, time, home snapshot
        record           TEXT NOT NULL         -- JSON: the full turn record as printed by --json
    );
    CREATE INDEX turns_session ON turns(session_id, seq);
    CREATE INDEX turns_started ON turns(started_at);
    CREATE TABLE spans (
        turn_id     TEXT NOT NULL REFERENCES turns(turn_id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        stage       TEXT NOT NULL,
        backend     TEXT,
        version     TEXT,
        start_ms    REAL NOT NULL,             -- relative to the turn's start
        end_ms      REAL NOT NULL,
        input       TEXT,                      -- JSON
        output      TEXT,                      -- JSON
        confidence  REAL,
        error_code  TEXT,
        PRIMARY KEY (turn_id, idx)
    );
    CREATE TABLE events (
        event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
        turn_id     TEXT NOT NULL REFERENCES turns(turn_id) ON DELETE CASCADE,
        type        TEXT NOT NULL,             -- barge-in, rephrase-of, feedback, cancel, ...
        t_ms        REAL,
        data        TEXT NOT NULL,             -- JSON
        created_at  REAL NOT NULL
    );
    CREATE INDEX events_turn ON events(turn_id);
    """,
    # 2: a defect label per turn (defect / ok / unknown) with the signals that produced it (assistant/learning).
    #    Recomputed idempotently by `assistant traces label`: one row per turn, replaced on every run.
    """
    CREATE TABLE labels (
        turn_id          TEXT PRIMARY KEY REFERENCES turns(turn_id) ON DELETE CASCADE,
        label            TEXT NOT NULL,        -- defect | ok | unknown
        confidence       REAL NOT NULL,        -- 0..1, how sure the labeler is of `label`
        signals          TEXT NOT NULL,        -- JSON list: [{type, weight, polarity, by_turn, detail}]
        labeler_version  TEXT NOT NULL,
        created_at       REAL NOT NULL
    );
    CREATE INDEX labels_label ON labels(label);
    """,
    # 3: goal labels per turn (assistant/learning/labels): the goal the turn serves, the goal's success probability,
    #    the turn's defect probability and failing stage. Recomputed idempotently by `assistant learn labels`.
    """
    CREATE TABLE goal_labels (
        turn_id          TEXT PRIMARY KEY REFERENCES turns(turn_id) ON DELETE CASCADE,
        goal_id          TEXT NOT NULL,        -- shared by the turns of one goal
        goal_index       INTEGER NOT NULL,     -- the turn's position in its goal, from 0
        goal_success     REAL NOT NULL,        -- P(the goal succeeded), the same on all its turns
        defect           REAL NOT NULL,        -- P(this turn is defective)
        failure_point    TEXT,                 -- the failing stage when defect >= 0.5, else NULL
        stage_probs      TEXT NOT NULL,        -- JSON {stage: P(stage | defect)}
        labeler_version  TEXT NOT NULL,
        created_at       REAL NOT NULL
    );
    CREATE INDEX goal_labels_goal ON goal_labels(goal_id);
    CREATE INDEX goal_labels_fp ON goal_labels(failure_point);
    """,
]

SCHEMA_VERSION: Final = len(MIGRATIONS)
