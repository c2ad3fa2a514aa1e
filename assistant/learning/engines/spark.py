"""Apache Spark (pyspark): the same jobs on a cluster, or on this machine with `--spark-master local[N]`.

Spark SQL runs the job's SQL as written (`sources.SPARK` spells the few dialect-specific expressions); the Python step
(model inference) runs on the executors with `mapInArrow`, once per partition: the executor's Python worker unpickles
the function (loading the model once per partition) and streams the partition's Arrow record batches through it.
On a cluster every executor needs this package and its models (`pip install voice-assistant[spark]` in the
executors' environment, or `spark-submit --py-files`; see docs/scale.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError
from assistant.learning.sources import SPARK, export_file, export_version, prepared

DEFAULT_MASTER = "local[*]"


def session(master: str | None = None, partitions: int | None = None, app: str = "assistant-learn") -> Any:
    """A SparkSession (the running one when there is one, e.g. a test fixture's). `master`: None = spark-submit's
    when launched by it (it sets PYSPARK_GATEWAY_PORT), else local[*]."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise AssistantError(
            "spark-missing", "--engine spark needs pyspark: pip install 'voice-assistant[spark]' (and Java 17)."
        ) from err
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Local mode: executors' Python workers must import this checkout of `assistant` and use this interpreter.
    root = str(Path(__file__).resolve().parents[3])
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ
    master = master or DEFAULT_MASTER
    builder = SparkSession.builder.appName(app)
    if not submitted:
        builder = builder.master(master)
    builder = (
        builder.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
    )
    if partitions or (master.startswith("local") and not submitted):
        # local mode: a partition per core (Spark's default of 200 would load the detector 200 times for a small job)
        cores = os.cpu_count() or 1
        n = partitions or (cores if master in ("local", "local[*]") else int(master[6:-1] or 1) if "[" in master else 1)
        builder = builder.config("spark.sql.shuffle.partitions", str(max(1, n)))
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # noqa: BLE001 - no Java, bad master URL: say what to do
        raise AssistantError(
            "spark-start-failed",
            f"Could not start Spark (master {master}): {err}. Spark needs Java 17 (java -version).",
        ) from err
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkEngine:
    name = "spark"
    dialect = SPARK

    def __init__(self, spark: Any = None, master: str | None = None, partitions: int | None = None) -> None:
        self.spark = spark or session(master, partitions)
        self._cached: list[Any] = []

    @property
    def partitions(self) -> int:
        return int(self.spark.conf.get("spark.sql.shuffle.partitions"))

    def load_export(self, path: Path | str) -> int:
        """The export as view `turns` (a local path or any URI Spark reads: hdfs://, s3a://, ...) and `src`."""
        uri = str(path)
        local = "://" not in uri
        if local:
            f = export_file(Path(uri))
            version, uri = export_version(f), str(f)
        else:
            version = 2
        if uri.endswith((".jsonl", ".json")):
            df = self.spark.read.schema(_json_schema()).json(uri)
        else:
            df = self.spark.read.option("mergeSchema", "false").parquet(uri)
        df.createOrReplaceTempView("turns")
        self.spark.sql(f"SELECT * FROM {prepared('turns', SPARK, version, set(df.columns))}").createOrReplaceTempView(
            "src"
        )
        return version

    def create(self, name: str, sql: str, cache: bool = False) -> None:
        df = self.spark.sql(sql)
        if cache:
            df = df.persist()
            self._cached.append(df)
        df.createOrReplaceTempView(name)

    def columns(self, sql: str) -> dict[str, Any]:
        table = self.spark.sql(sql).toArrow()
        out: dict[str, Any] = {}
        for name in table.column_names:
            col = table.column(name)
            out[name] = col.to_pylist() if col.type in (_pa().string(), _pa().large_string()) else np.asarray(col)
        return out

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def map_partitions(
        self,
        name: str,
        sql: str,
        fn: Callable[[Iterable[Any]], Iterator[tuple]],
        schema: str,
        key: str,
        order: list[str],
    ) -> None:
        """`fn` on the executors, once per partition of `sql` hashed by `key` and sorted by `order`."""
        pa = _pa()
        types = {"string": pa.string(), "double": pa.float64(), "bigint": pa.int64(), "int": pa.int32()}
        arrow_schema = pa.schema([(c, types[t]) for c, t in (x.strip().split() for x in schema.split(","))])

        def run(batches: Iterable[Any]) -> Iterator[Any]:
            rows = list(fn(batches))
            if rows:
                yield pa.RecordBatch.from_pylist([dict(zip(arrow_schema.names, r)) for r in rows], schema=arrow_schema)

        df = self.spark.sql(sql).repartition(self.partitions, key).sortWithinPartitions(*order)
        out = df.mapInArrow(run, schema).persist()
        self._cached.append(out)
        out.createOrReplaceTempView(name)

    def write_parquet(self, sql: str, uri: str) -> None:
        """The query's rows as Parquet at `uri` (a folder of part files; any URI Spark writes)."""
        self.spark.sql(sql).write.mode("overwrite").parquet(uri)

    def write_rows(self, rows: list[dict[str, Any]], uri: str) -> None:
        """Small driver-side rows (e.g. the rewrite table) as Parquet at `uri`."""
        pa = _pa()
        if rows:
            self.spark.createDataFrame(pa.Table.from_pylist(rows).to_pandas()).coalesce(1).write.mode(
                "overwrite"
            ).parquet(uri)

    def close(self) -> None:
        for df in self._cached:
            df.unpersist()
        self._cached.clear()


def _pa() -> Any:
    import pyarrow as pa

    return pa


def _json_schema() -> str:
    """A DDL schema for JSON Lines exports: every nested field as its JSON text, as the Parquet export (v1) has it."""
    import json

    from assistant.trace.export import SCHEMA_PATH

    types = {"string": "STRING", "int32": "INT", "int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN"}
    props = json.loads(SCHEMA_PATH.read_text())["properties"]
    cols = []
    for k, v in props.items():
        arrow = v.get("x-arrow-type", "string")
        cols.append(f"`{k}` {'TIMESTAMP' if arrow.startswith('timestamp') else types.get(arrow, 'STRING')}")
    return ", ".join(cols)


def create(spark: Any = None, master: str | None = None, partitions: int | None = None, **_: Any) -> SparkEngine:
    return SparkEngine(spark, master, partitions)
