"""Self-learning jobs over the trace store, as `assistant learn` runs them (the CLI only parses arguments).

- `export_traces`: label the store's turns, export them to Parquet (opted-out users skipped).
- `learn_rewrites`: export -> mine reformulation chains (on the chosen engine: DuckDB or Spark) -> absorbing Markov
  chains -> the next rewrite table version, made current.
- `learn_index`: export -> the online retrieval index (successful utterances, global + per user).
- `learn_signals`: export -> signals and defect labels per turn on the chosen engine -> Parquet under OUT/vN/.
- `status`: rewrite table versions and the index.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.config import DEFAULT_PIPELINE, load_settings
from assistant.errors import AssistantError


def store_path(data_dir: Path, config: Path | None = None) -> Path:
    """The trace store of `data_dir` (pipeline.yaml's `traces.db`, relative to the data dir unless absolute)."""
    settings = load_settings(config or DEFAULT_PIPELINE)
    db = Path(settings.traces.db)
    return db if db.is_absolute() else data_dir / db


def export_traces(
    data_dir: Path, out_dir: Path, config: Path | None = None, relabel: bool = True, goals: bool = False
) -> dict[str, Any]:
    """Label the store's turns and export them to OUT/turns.parquet (the export skips opted-out users).
    `goals`: also run the goal labeller (`assistant learn labels`), so the export carries goal ids."""
    from assistant.learning.signals import label_store
    from assistant.trace.export import export
    from assistant.trace.store import TraceStore

    path = store_path(data_dir, config)
    if not path.exists():
        raise AssistantError(
            "no-traces", f"No trace store at {path} yet: run `assistant replay` or `assistant say` first."
        )
    store = TraceStore(path)
    try:
        if relabel:
            label_store(store)
        if goals:
            from assistant.errors import ModelError
            from assistant.learning.labels.labeller import label_store as label_goals

            try:
                label_goals(store)
            except ModelError:  # no goal labeller in models/labels: links are mined without goal ids
                pass
        return export(store, out_dir, "parquet", data_dir=data_dir)
    finally:
        store.close()


def rephrase_detector(kind: str = "auto", model_dir: Path | None = None) -> Any:
    """The detector mining uses: a `RephraseDetector` (learned) or None (lexical). auto = learned when the model
    exists."""
    from assistant.learning.rephrase_model import RephraseDetector

    if kind == "lexical" or (kind == "auto" and not RephraseDetector.available(model_dir)):
        return None
    return RephraseDetector(model_dir)


def learn_rewrites(
    data_dir: Path,
    export_path: Path | None = None,
    min_support: int = 3,
    min_prob: float = 0.7,
    min_users: int = 1,
    config: Path | None = None,
    detector: str = "auto",
    engine: str = "duckdb",
    spark_master: str | None = None,
    out: str | None = None,
    goals: bool = True,
) -> dict[str, Any]:
    """Export (unless given one) -> mine -> solve -> write the next table version. Returns a summary.
    `goals`: label goals first (`assistant learn labels`), so rephrases and corrections are mined inside one goal
    (`MiningConfig.same_goal`); ~100 turns a second here.
    `detector`: auto | learned | lexical (see `rephrase_detector`); the one used is in the version's stats.
    `engine`: duckdb | spark (`spark_master`: a cluster URL or local[N]; None = spark-submit's, else local[*]); the
    same table either way.
    `out`: also write the mined tables (edges, absorb, pairs) and the rewrite table as Parquet under OUT/v{N}/
    (a folder or any URI the engine writes)."""
    from assistant.learning.markov import (
        MarkovConfig,
        contested,
        personal_table,
        solve,
        table_rows,
        works_as_said,
        write_table,
    )
    from assistant.learning.mining import mine

    t0 = time.perf_counter()
    det = rephrase_detector(detector)
    eng = open_engine(engine, spark_master)
    try:
        with tempfile.TemporaryDirectory(prefix="learn-") as tmp:
            manifest = None
            if export_path is None:
                manifest = export_traces(data_dir, Path(tmp), config, goals=goals)
                export_path = Path(tmp) / "turns.parquet"
            mined = mine(export_path, detector=det, engine=eng)
            mcfg = MarkovConfig(min_support=min_support, min_prob=min_prob, min_users=min_users)
            table, solve_stats = solve(mined, mcfg)
            owned = contested(mined, table)  # phrases that work as said for someone: personal rewrites only
            for a in owned:
                table.pop(a)
            solve_stats["contested"] = {a: {"users_as_said": len(us)} for a, us in owned.items()}
            personal = personal_table(mined, table)
            solve_stats["personal_users"] = len(personal)
            solve_stats["personal_rewrites"] = sum(
                1 for t in personal.values() for e in t.values() if not e.get("keep")
            )
            solve_stats["personal_keeps"] = sum(1 for t in personal.values() for e in t.values() if e.get("keep"))
            stats = {"mining": mined.stats, "solve": solve_stats, "export_rows": manifest["rows"] if manifest else None}
            as_said = works_as_said(mined)
            solve_stats["works_as_said"] = len(as_said)
            version = write_table(data_dir, table, mcfg, stats, personal=personal, as_said=as_said)
            if out:
                write_outputs(eng, f"{out.rstrip('/')}/v{version}", table_rows(table))
    finally:
        eng.close()
    return {
        "version": version,
        "rewrites": len(table),
        "personal": personal,
        "table": table,
        **stats,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def open_engine(engine: str = "duckdb", spark_master: str | None = None) -> Any:
    """The learning engine chosen at the command line (assistant/learning/engines/)."""
    from assistant.learning import engines

    return engines.create(engine, master=spark_master)


def write_outputs(eng: Any, uri: str, table: list[dict[str, Any]]) -> None:
    """The mined tables (still in the engine) and the rewrite table as Parquet under `uri` (edges/, absorb/, pairs/,
    rewrites/): what a cluster job leaves for the next stage or for analysis; the assistant loads v{N}.json."""
    for name in ("edges", "absorb", "pairs"):
        eng.write_parquet(f"SELECT * FROM {name}", f"{uri}/{name}")
    eng.write_rows(table, f"{uri}/rewrites")


def learn_index(
    data_dir: Path,
    export_path: Path | str | None = None,
    embedder: Any = None,
    config: Path | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> dict[str, Any]:
    """Export (unless given one) -> the online rewrite index (MiniLM embeddings unless `embedder` is given); the
    aggregation runs on `engine` (duckdb | spark), the embedding of the distinct utterances here."""
    from assistant.learning.retrieval import build_index

    if embedder is None:
        from assistant.backends.embed.minilm import MiniLmEmbedder

        embedder = MiniLmEmbedder()
    with tempfile.TemporaryDirectory(prefix="learn-") as tmp:
        if export_path is None:
            export_traces(data_dir, Path(tmp), config)
            export_path = Path(tmp) / "turns.parquet"
        eng = open_engine(engine, spark_master)
        try:
            return build_index(export_path, data_dir, embedder, engine=eng)
        finally:
            eng.close()


def learn_signals(
    data_dir: Path,
    export_path: Path | str | None = None,
    out: str | None = None,
    config: Path | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
    gap_seconds: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Signals and defect labels of every exported turn on `engine` (duckdb | spark), written under OUT/vN/ as
    Parquet; without `export_path` the store is exported first (as it is: this job does not label the store)."""
    from assistant.learning.signals import SignalConfig
    from assistant.learning.signals_job import signals_job

    cfg = SignalConfig() if gap_seconds is None else SignalConfig(gap_seconds=gap_seconds)
    with tempfile.TemporaryDirectory(prefix="learn-") as tmp:
        if export_path is None:
            export_traces(data_dir, Path(tmp), config, relabel=False)
            export_path = Path(tmp) / "turns.parquet"
        eng = open_engine(engine, spark_master)
        try:
            return signals_job(export_path, eng, out, cfg, now)
        finally:
            eng.close()


def status(data_dir: Path) -> dict[str, Any]:
    """Rewrite table versions, the current one, its size, and the online index's metadata (None without one)."""
    from assistant.learning.markov import current_version, load_table, versions
    from assistant.learning.retrieval import INDEX_DIR

    meta_path = data_dir / INDEX_DIR / "meta.json"
    return {
        "versions": versions(data_dir),
        "current": current_version(data_dir),
        "rewrites": len((load_table(data_dir) or {}).get("rewrites", {})),
        "index": json.loads(meta_path.read_text()) if meta_path.exists() else None,
    }
