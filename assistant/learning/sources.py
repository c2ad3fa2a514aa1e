"""Exported turns as table expressions for the learning jobs' SQL, in each engine's dialect.

The jobs (mining, the online index, the rephrase detector's sessions) are written once, as SQL over `prepared(...)`:
one row per turn with plain typed columns (times as epoch seconds, the labeller's rephrase pointer, the applied
rewrite's text, flags). Only this module knows how an engine spells those few expressions (DuckDB's
`epoch`/`json_extract_string`/`regexp_replace(.., 'g')` vs Spark SQL's `unix_micros`/`from_json`/Java regexes) and how
the export stores nested fields: JSON text (export schema v1) or typed Parquet structs and lists (v2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.text import NORMALIZE_SQL

PREPARED_COLUMNS = (
    "turn_id, session_id, turn_index, t0, t1, user_id, transcript, intent, action_status, error_code, label, "
    "rephrased_by, rewrite_text, explicit_yes, barge_in, expects_reply, goal_id, meaning"
)
"""What `prepared` gives every job (besides nothing else: the jobs never read the raw export columns)."""


@dataclass(frozen=True)
class Dialect:
    """How one SQL engine spells the few non-portable expressions the jobs need."""

    name: str

    def normalize(self, expr: str) -> str:
        """`assistant.text.normalize` (lower case, [^a-z0-9' ] -> space, spaces collapsed) as SQL."""
        if self.name == "duckdb":
            return NORMALIZE_SQL.format(x=expr)
        # Spark SQL: backslash escapes in literals, Java regexes, regexp_replace replaces every match
        return (
            f"trim(regexp_replace(regexp_replace(lower(replace({expr}, '’', '\\'')), '[^a-z0-9\\' ]+', ' '), "
            "'\\\\s+', ' '))"
        )

    def epoch(self, expr: str) -> str:
        """A timestamp as epoch seconds (double)."""
        return f"epoch({expr})" if self.name == "duckdb" else f"CAST(unix_micros({expr}) AS DOUBLE) / 1e6"

    def day(self, expr: str) -> str:
        """A UTC timestamp's date as 'YYYY-MM-DD'."""
        if self.name == "duckdb":
            return f"strftime({expr} AT TIME ZONE 'UTC', '%Y-%m-%d')"
        return f"date_format({expr}, 'yyyy-MM-dd')"  # the Spark session's time zone is UTC

    def json_text(self, expr: str, path: str) -> str:
        """A JSON text's value at `path` ($.a.b) as text (NULL when absent)."""
        fn = "json_extract_string" if self.name == "duckdb" else "get_json_object"
        return f"{fn}({expr}, '{path}')"

    def word_jaccard(self, a: str, b: str) -> str:
        """Shared distinct words over all distinct words of two texts of space-separated words (0-1)."""
        if self.name == "duckdb":
            wa, wb = f"list_distinct(string_split({a}, ' '))", f"list_distinct(string_split({b}, ' '))"
            return f"len(list_intersect({wa}, {wb})) / greatest(len(list_distinct(list_concat({wa}, {wb}))), 1)"
        wa, wb = f"array_distinct(split({a}, ' '))", f"array_distinct(split({b}, ' '))"
        return f"size(array_intersect({wa}, {wb})) / greatest(size(array_union({wa}, {wb})), 1)"

    def matches(self, expr: str, regex: str) -> str:
        """Whether `expr` matches the (Java / RE2-compatible, backslash-free) regular expression."""
        return f"regexp_matches({expr}, '{regex}')" if self.name == "duckdb" else f"({expr} RLIKE '{regex}')"

    def first(self, array_expr: str, lambda_var: str, cond: str) -> str:
        """The first element of a list satisfying `cond` (NULL if none)."""
        if self.name == "duckdb":
            return f"list_filter({array_expr}, lambda {lambda_var}: {cond})[1]"
        return f"get(filter({array_expr}, {lambda_var} -> {cond}), 0)"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")
DIALECTS = {"duckdb": DUCKDB, "spark": SPARK}

# export schema v1 keeps nested fields as JSON text; these are the types the jobs parse out of it (Spark: from_json)
_V1_SIGNALS = "array<struct<type:string,by_turn:string>>"
_V1_SPANS = "array<struct<stage:string,output:struct<applied:boolean,text:string>>>"
_V1_REWRITE_DUCKDB = (
    'CASE WHEN spans LIKE \'%"stage":"rewrite"%\' THEN json_extract_string('
    "[x FOR x IN CAST(json_extract(spans, '$[*]') AS JSON[]) "
    "IF json_extract_string(x, '$.stage') = 'rewrite' "
    "AND json_extract(x, '$.output.applied')::BOOLEAN][1], '$.output.text') END"
)
_V1_REPHRASED_BY_DUCKDB = (
    "CASE WHEN signals LIKE '%\"rephrase\"%' THEN "
    "[json_extract_string(x, '$.by_turn') FOR x IN CAST(json_extract(signals, '$[*]') AS JSON[]) "
    "IF json_extract_string(x, '$.type') = 'rephrase'][1] END"
)


def prepared(table: str, dialect: Dialect, version: int, have: set[str] | None = None) -> str:
    """A SELECT over the exported turns in `table` (a table name or table function) giving `PREPARED_COLUMNS`.
    `version`: the export's schema version (1: nested fields are JSON text; 2: typed structs and lists).
    `have`: the columns `table` has (a hand-made or partial export may lack some: they read as NULL / false)."""
    d = dialect
    if version >= 2:  # typed: plain field access, the same in both dialects
        action = ("action.name", "action.target", "action.params")
        rephrased_by = d.first("signals", "x", "x.type = 'rephrase'") + ".by_turn"
        applied = d.json_text("x.output", "$.applied") + " = 'true'"
        rewrite_text = d.json_text(d.first("spans", "x", f"x.stage = 'rewrite' AND {applied}") + ".output", "$.text")
        explicit_yes = "coalesce(array_contains(transform(signals, x -> x.type), 'explicit-yes'), false)"
        barge_in = "coalesce(array_contains(transform(events, x -> x.type), 'barge-in'), false)"
        if d.name == "duckdb":  # DuckDB spells lambdas with the keyword
            explicit_yes = "coalesce(list_contains(list_transform(signals, lambda x: x.type), 'explicit-yes'), false)"
            barge_in = "coalesce(list_contains(list_transform(events, lambda x: x.type), 'barge-in'), false)"
    else:
        action = tuple(d.json_text("action", f"$.{k}") for k in ("name", "target", "params"))
    if version < 2 and d.name == "duckdb":
        rephrased_by, rewrite_text = _V1_REPHRASED_BY_DUCKDB, _V1_REWRITE_DUCKDB
        explicit_yes = "coalesce(signals, '') LIKE '%explicit-yes%'"
        barge_in = "coalesce(CAST(events AS VARCHAR), '') LIKE '%barge-in%'"
    elif version < 2:
        rephrased_by = (
            "CASE WHEN signals LIKE '%\"rephrase\"%' THEN "
            + d.first(f"from_json(signals, '{_V1_SIGNALS}')", "x", "x.type = 'rephrase'")
            + ".by_turn END"
        )
        rewrite_text = (
            'CASE WHEN spans LIKE \'%"stage":"rewrite"%\' THEN '
            + d.first(f"from_json(spans, '{_V1_SPANS}')", "x", "x.stage = 'rewrite' AND x.output.applied")
            + ".output.text END"
        )
        explicit_yes = "coalesce(signals, '') LIKE '%explicit-yes%'"
        barge_in = "coalesce(events, '') LIKE '%barge-in%'"
    name, target, params = action
    exprs = {
        "turn_id": "turn_id",
        "session_id": "session_id",
        "turn_index": "turn_index",
        "t0": d.epoch("started_at"),
        "t1": d.epoch("coalesce(ended_at, started_at)"),
        "user_id": "user_pseudonym",
        "transcript": "transcript",
        "intent": "intent",
        "action_status": "action_status",
        "error_code": "error_code",
        "label": "label",
        "rephrased_by": rephrased_by,
        "rewrite_text": rewrite_text,
        "explicit_yes": explicit_yes,
        "barge_in": barge_in,
        "expects_reply": "coalesce(expects_reply, false)",
        "goal_id": "goal_id",  # the goal labeller's (`assistant learn labels`); NULL in a store never labelled
        # what the turn did: the action and its target (light.turn_on|living_room.floor_lamp), or the action's
        # parameters when it has no target (a question's place); two wordings that did the same are one meaning
        # (none when it did nothing that names what: no target and no parameters). A record the action made
        # (alarm:3, timer:4) is no target: two alarms at other times are other meanings, so their parameters count.
        "meaning": f"""CASE WHEN {name} IS NOT NULL AND {name} <> 'none'
                            AND ({target} IS NOT NULL OR coalesce({params}, '{{}}') NOT IN ('{{}}', ''))
                       THEN concat_ws('|', {name}, CASE WHEN {target} IS NULL OR {d.matches(target, ":[0-9]+$")}
                                                        THEN coalesce({params}, '') ELSE {target} END) END""",
    }
    needs = {
        "user_id": "user_pseudonym",
        "rephrased_by": "signals",
        "rewrite_text": "spans",
        "explicit_yes": "signals",
        "barge_in": "events",
        "expects_reply": "expects_reply",
        "intent": "intent",
        "action_status": "action_status",
        "error_code": "error_code",
        "label": "label",
        "goal_id": "goal_id",
        "meaning": "action",
    }
    flags = {"explicit_yes", "barge_in", "expects_reply"}
    cols = []
    for name, expr in exprs.items():
        if have is not None and name in needs and needs[name] not in have:
            expr = "false" if name in flags else "CAST(NULL AS STRING)"
        cols.append(f"{expr} AS {name}")
    return f"(SELECT {', '.join(cols)} FROM {table})"


def export_file(path: Path) -> Path:
    """turns.parquet / turns.jsonl, or the folder holding it (Parquet first), or a day-partitioned folder as is."""
    path = Path(path)
    if path.is_dir():
        for name in ("turns.parquet", "turns.jsonl", "turns"):
            if (path / name).exists():
                return path / name
    return path


def export_source(path: Path) -> str:
    """`read_parquet(...)` / `read_json(...)` over an export (DuckDB): a turns.parquet / turns.jsonl file, the folder
    holding it, or a folder of day partitions (`turns/day=YYYY-MM-DD/*.parquet`, as the synthetic fleet writes)."""
    path = export_file(path)
    p = str(path).replace("'", "''")
    if p.endswith((".jsonl", ".json")):
        # the export schema's column types, so nested fields are JSON text as in Parquet (read_json_auto would make
        # them STRUCTs whose shape varies from file to file)
        return f"read_json('{p}', format='newline_delimited', columns={_duckdb_columns()})"
    if path.is_dir():
        return f"read_parquet('{p}/**/*.parquet', hive_partitioning = true)"
    return f"read_parquet('{p}')"


def export_version(path: Path) -> int:
    """The export's schema version: Parquet file metadata (`export_schema_version`), else 1 (JSONL, v1)."""
    path = export_file(path)
    if str(path).endswith((".jsonl", ".json")):
        return 1
    import pyarrow.parquet as pq

    first = path if path.is_file() else next(iter(sorted(path.rglob("*.parquet"))), None)
    if first is None:
        from assistant.errors import AssistantError

        raise AssistantError("empty-export", f"No Parquet files under {path}: export the traces first.")
    meta = pq.read_schema(first).metadata or {}
    return int(meta.get(b"export_schema_version", b"1"))


_ARROW_TO_DUCKDB = {"string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN"}


def _duckdb_columns() -> str:
    """{'col': 'TYPE', ...} for DuckDB's read_json, from assistant/trace/export_schema.json."""
    import json

    from assistant.trace.export import SCHEMA_PATH

    props = json.loads(SCHEMA_PATH.read_text())["properties"]
    cols = []
    for name, spec in props.items():
        arrow = spec.get("x-arrow-type", "string")
        kind = "TIMESTAMPTZ" if arrow.startswith("timestamp") else _ARROW_TO_DUCKDB.get(arrow, "VARCHAR")
        cols.append(f"'{name}': '{kind}'")
    return "{" + ", ".join(cols) + "}"
