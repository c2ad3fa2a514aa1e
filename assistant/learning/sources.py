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
        return f"read_json_auto('{p}', format='newline_delimited')"
    return f"read_parquet('{p}')"
