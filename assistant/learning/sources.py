"""Exported turns as a table expression for the learning jobs' SQL (DuckDB): mining, the online index, the rephrase
detector's sessions all read an export through `export_source`."""

from __future__ import annotations

from pathlib import Path


def export_source(path: Path) -> str:
    """`read_parquet(...)` / `read_json_auto(...)` over an export: turns.parquet / turns.jsonl or the folder holding
    it (Parquet first)."""
    path = Path(path)
    if path.is_dir():
        for name in ("turns.parquet", "turns.jsonl"):
            if (path / name).exists():
                path = path / name
                break
    p = str(path).replace("'", "''")
    if p.endswith((".jsonl", ".json")):
        # the export schema's column types, so nested fields are JSON text as in Parquet (read_json_auto would make
        # them STRUCTs whose shape varies from file to file)
        return f"read_json('{p}', format='newline_delimited', columns={_duckdb_columns()})"
    return f"read_parquet('{p}')"


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
