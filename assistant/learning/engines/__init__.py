"""Where the learning jobs run: one job definition (SQL over `sources.prepared`, plus a Python step per partition for
model inference), two engines chosen at the command line (`--engine duckdb|spark`).

- `duckdb`: embedded, in-process; the default (nothing to install or start).
- `spark`: Apache Spark (pyspark, the optional `spark` extra; Java 17), `--spark-master local[*]` or a cluster URL.

Each engine is one file here with `create(**options)`, named in `ENGINES` as "module:function" (imported on first use,
so pyspark is never imported unless chosen), the way `assistant/core/registry.py` plugs in pipeline backends.
An engine offers the same few operations; the jobs (mining.py, retrieval.py, reports) are written against them:

    eng.load_export(path)          -> view `src` (sources.PREPARED_COLUMNS), returns the export's schema version
    eng.create(name, sql, cache)   -> a temp view (cache=True: computed once, the later steps read it)
    eng.columns(sql)               -> {column: numpy array (numbers) | list (strings)} on the driver
    eng.map_partitions(name, sql, fn, schema, key, order)
                                   -> view `name`: fn(iterator of Arrow record batches of `sql`, partitioned by `key`
                                      and sorted by `order`) -> iterator of row tuples (model inference, batched)
    eng.write_parquet(sql, uri)    -> the result as Parquet at a path or any URI the engine understands
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from assistant.errors import AssistantError

ENGINES: dict[str, str] = {
    "duckdb": "assistant.learning.engines.duckdb:create",
    "spark": "assistant.learning.engines.spark:create",
}


class Engine(Protocol):
    name: str
    dialect: Any

    def load_export(self, path: Any) -> int: ...
    def create(self, name: str, sql: str, cache: bool = False) -> None: ...
    def columns(self, sql: str) -> dict[str, Any]: ...
    def map_partitions(self, name: str, sql: str, fn: Any, schema: str, key: str, order: list[str]) -> None: ...
    def write_parquet(self, sql: str, uri: str) -> None: ...
    def close(self) -> None: ...


def create(name: str = "duckdb", **options: Any) -> Engine:
    """The engine called `name` (duckdb | spark), built with `options` (duckdb: threads; spark: master, partitions)."""
    if name not in ENGINES:
        raise AssistantError("unknown-engine", f"--engine {name!r}: use one of {', '.join(ENGINES)}.")
    module, func = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), func)(**options)
