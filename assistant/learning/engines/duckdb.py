"""The embedded engine: DuckDB in this process (the default). Views and tables live in one connection; the
per-partition Python step reads the query's Arrow record batches in order and streams its rows back in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.learning.sources import DUCKDB, export_source, export_version, prepared

_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "int": "INTEGER", "boolean": "BOOLEAN"}


class DuckDbEngine:
    name = "duckdb"
    dialect = DUCKDB

    def __init__(self, con: Any = None, threads: int | None = None) -> None:
        import duckdb

        self.con = con or duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")

    def load_export(self, path: Path | str) -> int:
        version = export_version(Path(path))
        table = export_source(Path(path))
        have = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW turns AS SELECT * FROM {table}")
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {prepared(table, DUCKDB, version, have)}")
        return version

    def create(self, name: str, sql: str, cache: bool = False) -> None:
        kind = "TABLE" if cache else "VIEW"
        self.con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {sql}")

    def columns(self, sql: str) -> dict[str, Any]:
        return {
            k: (v.tolist() if v.dtype == object else np.asarray(v))
            for k, v in self.con.execute(sql).fetchnumpy().items()
        }

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def map_partitions(
        self,
        name: str,
        sql: str,
        fn: Callable[[Iterable[Any]], Iterator[tuple]],
        schema: str,
        key: str,
        order: list[str],
    ) -> None:
        """One partition (this process): `fn` over the query's record batches, sorted by `order`."""
        cols = [c.strip().split() for c in schema.split(",")]
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({', '.join(f'{c} {_TYPES[t]}' for c, t in cols)})")
        reader = self.con.sql(f"SELECT * FROM ({sql}) ORDER BY {', '.join(order)}").to_arrow_reader(10_000)
        rows = list(fn(iter(reader)))
        if rows:
            import pyarrow as pa

            out = pa.Table.from_pylist([dict(zip((c for c, _ in cols), r)) for r in rows])
            self.con.register("_mapped", out)
            self.con.execute(f"INSERT INTO {name} SELECT * FROM _mapped")
            self.con.unregister("_mapped")

    def write_parquet(self, sql: str, uri: str) -> None:
        """The query's rows as a Parquet folder `uri` (one file, like a one-partition Spark write)."""
        Path(uri).mkdir(parents=True, exist_ok=True)
        target = str(Path(uri) / "part-0.parquet").replace("'", "''")
        self.con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")

    def write_rows(self, rows: list[dict[str, Any]], uri: str) -> None:
        """Small driver-side rows (e.g. the rewrite table) as one Parquet file in folder `uri`."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        Path(uri).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), str(Path(uri) / "part-0.parquet"), compression="zstd")

    def close(self) -> None:
        pass  # the connection may be the caller's


def create(con: Any = None, threads: int | None = None, **_: Any) -> DuckDbEngine:
    return DuckDbEngine(con, threads)
