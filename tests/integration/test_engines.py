"""The learning jobs on both engines: embedded DuckDB and Apache Spark (local mode, one session for the module) give
the same rephrase pairs, transitions, absorption counts, path support and rewrite table on the same export, lexical
and with the committed rephrase model run inside the engine; `assistant learn rewrites --engine spark|duckdb` write
the same table; the synthetic fleet keeps the simulator's statistics and both engines read its day partitions."""

from __future__ import annotations

import json

import pytest
from synth_traces import add_session

from assistant.learning.markov import MarkovConfig, solve, table_rows
from assistant.learning.mining import mine
from assistant.learning.rephrase_model import RephraseDetector
from assistant.trace.store import TraceStore

pytestmark = pytest.mark.spark

FAIL, OK = ("unsupported", "general_quirky"), ("done", "iot_hue_lighton")


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module (1 core, 2 shuffle partitions, no UI): ~10 s to start."""
    pytest.importorskip("pyspark")
    from assistant.learning.engines.spark import session

    s = session("local[1]", partitions=2, app="assistant-tests")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A labelled, exported store: failing requests rephrased (some twice, some given up), corrections, unrelated
    traffic, several users; exported with the real exporter."""
    from assistant.learning.signals import label_store
    from assistant.trace.export import export as do_export

    tmp = tmp_path_factory.mktemp("engines")
    store = TraceStore(tmp / "data" / "traces.db")
    t = 1_700_000_000.0
    for i in range(16):
        user = f"user{i % 5}"
        if i % 4 == 3:
            chain = [
                ("turn on the kitchin lihgt", *FAIL),
                ("turn on kitchin light", *FAIL),
                ("turn on the kitchen light", *OK),
            ]
        elif i % 7 == 0:
            chain = [("turn on the kitchin lihgt", *FAIL)]
        elif i % 5 == 1:
            chain = [("play some smooth jas", *FAIL), ("no, I said play some smooth jazz", "done", "play_music")]
        else:
            chain = [("turn on the kitchin lihgt", *FAIL), ("turn on the kitchen light", *OK)]
        add_session(store, user, t, [*chain, ("what time is it", "done", "datetime_query")])
        t += 3600
    for i in range(6):
        add_session(
            store, f"user{i % 4}", t, [("turn on the kitchen light", *OK), ("play some jazz", "done", "play_music")]
        )
        t += 3600
    label_store(store, now=2_000_000_000.0)
    do_export(store, tmp / "export", data_dir=tmp / "data")
    store.close()
    return tmp / "export"


def _result(m, config=None):
    """Everything mining and the Markov solve produce, as plain comparable values."""
    table, _ = solve(m, config or MarkovConfig(min_support=1, min_prob=0.5))
    plain = {
        name: sorted(zip(*[[x.item() if hasattr(x, "item") else x for x in col] for col in part.values()]))
        for name, part in (("edges", m.edges), ("absorb", m.absorb), ("pairs", m.pairs))
    }
    return {**plain, "turns": m.stats["turns"], "linked": m.stats["linked_turns"], "table": table_rows(table)}


@pytest.mark.skipif(not RephraseDetector.available(), reason="models/rephrase not present")
def test_learned_detector_inside_each_engine_finds_the_same_pairs(spark, export):
    from assistant.learning.engines import create

    det = RephraseDetector()
    eng_d, eng = create("duckdb"), create("spark", spark=spark)
    duck = mine(export, detector=det, engine=eng_d)  # the detector runs once per engine (it is the costly part)
    sp = mine(export, detector=det, engine=eng)
    pairs = sorted(eng.rows("SELECT src_id, dst_id, span, round(score, 4) FROM lp"))
    assert sorted(eng_d.rows("SELECT src_id, dst_id, span, round(score, 4) FROM lp")) == pairs
    assert duck.stats["detected_pairs"] == sp.stats["detected_pairs"] == len(pairs) > 0
    assert _result(duck) == _result(sp)
    # the correction's span, not the whole "no, I said ..." utterance, is the rephrase's state
    assert "play some smooth jazz" in set(duck.edges["dst"])


def test_lexical_mining_and_learn_rewrites_command_give_the_same_tables_on_both_engines(
    spark, export, tmp_path, capsys
):
    """`assistant learn rewrites --engine duckdb|spark --out`: the same mined tables (edges, absorption counts, path
    support, as Parquet) and the same rewrite table on both engines (one Spark run serves both checks)."""
    import pyarrow.parquet as pq

    from assistant.cli.main import main

    tables, mined = {}, {}
    for engine in ("duckdb", "spark"):
        data = tmp_path / engine
        args = ["learn", "rewrites", "--data-dir", str(data), "--export", str(export), "--engine", engine]
        args += ["--spark-master", "local[1]", "--rephrase-detector", "lexical", "--min-support", "2"]
        args += ["--out", str(tmp_path / f"out-{engine}"), "--json"]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["mining"]["engine"] == engine and out["version"] == 1
        tables[engine] = json.loads((data / "rewrites" / "v1.json").read_text())["rewrites"]
        rows = pq.read_table(tmp_path / f"out-{engine}" / "v1" / "rewrites").to_pylist()
        assert {r["source"]: r["target"] for r in rows} == {k: v["target"] for k, v in tables[engine].items()}
        mined[engine] = {
            name: sorted(tuple(r.values()) for r in pq.read_table(tmp_path / f"out-{engine}" / "v1" / name).to_pylist())
            for name in ("edges", "absorb", "pairs")
        }
        mined[engine]["stats"] = (out["mining"]["turns"], out["mining"]["linked_turns"])
    assert mined["duckdb"] == mined["spark"]
    assert mined["duckdb"]["stats"][1] > 0 and mined["duckdb"]["edges"] and mined["duckdb"]["pairs"]
    assert ("turn on the kitchin lihgt", "turn on the kitchen light") in {e[:2] for e in mined["duckdb"]["edges"]}
    assert tables["duckdb"] == tables["spark"]
    assert tables["duckdb"]["turn on the kitchin lihgt"]["target"] == "turn on the kitchen light"


def test_fleet_keeps_the_statistics_and_both_engines_read_its_day_partitions(spark, export, tmp_path):
    import pyarrow.parquet as pq

    from assistant.learning.engines import create
    from assistant.simulate.fleet import generate

    m = generate([export], tmp_path / "fleet", sessions=300, days=3, seed=1)
    parts = sorted(p.parent.name for p in (tmp_path / "fleet" / "turns").rglob("*.parquet"))
    assert parts == ["day=2026-01-05", "day=2026-01-06", "day=2026-01-07"]
    pool, fleet = m["pool"], m["fleet_first_file"]
    assert abs(pool["turns_per_session"] - fleet["turns_per_session"]) < 0.3
    assert abs(pool["defect_rate"] - fleet["defect_rate"]) < 0.1
    # the rephrase signal points at a turn of the same fleet session
    t = pq.read_table(next((tmp_path / "fleet" / "turns").rglob("*.parquet"))).to_pylist()
    ids = {r["turn_id"]: r["session_id"] for r in t}
    pointers = [(r["session_id"], s["by_turn"]) for r in t for s in r["signals"] or [] if s["type"] == "rephrase"]
    assert pointers and all(ids.get(b) == sid for sid, b in pointers)
    duck = _result(mine(tmp_path / "fleet"))
    assert duck["turns"] > 300
    assert duck == _result(mine(tmp_path / "fleet", engine=create("spark", spark=spark)))


def test_applied_rewrites_in_a_typed_export_read_the_same_on_both_engines(spark, tmp_path):
    """Export schema v2 (typed nested fields): the rewrite span's output (JSON text inside the typed span) is the
    executed utterance on both engines, as with v1's JSON text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assistant.learning.engines import create
    from assistant.trace.export import arrow_schema, typed

    schema = arrow_schema()
    rows = []
    for i in range(4):
        spans = [
            {"stage": "rewrite", "output": {"text": "turn on the kitchen light", "applied": True}},
            {"stage": "nlu", "input": {"text": "turn on the kitchen light"}},
        ]
        rows.append(
            {
                "turn_id": f"t{i}",
                "session_id": f"s{i}",
                "turn_index": 1,
                "started_at": int((1e9 + i * 100) * 1e6),
                "ended_at": int((1e9 + i * 100 + 1) * 1e6),
                "user_pseudonym": f"u_{i % 2}",
                "transcript": "turn on the kitchin lihgt",
                "intent": "iot_hue_lighton",
                "action_status": "done",
                "label": "ok",
                "error_code": None,
                "spans": typed(spans, schema.field("spans").type),
                "signals": [],
            }
        )
    fields = [schema.field(k) for k in rows[0]]
    table = pa.Table.from_pylist(rows, pa.schema(fields, metadata=schema.metadata))
    pq.write_table(table, tmp_path / "turns.parquet")
    duck = _result(mine(tmp_path / "turns.parquet"))
    assert [e[:3] for e in duck["edges"]] == [("turn on the kitchin lihgt", "turn on the kitchen light", 4)]
    assert duck == _result(mine(tmp_path / "turns.parquet", engine=create("spark", spark=spark)))


def test_defect_report_job_is_the_same_on_both_engines(spark, export, tmp_path):
    """The defect report's aggregates from an export's goal-label columns: the same on both engines, and what the
    labels say (goal labels set by hand here: every failed request's turn blamed on nlu, its goal failed)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from assistant.learning.engines import create
    from assistant.learning.labels.report_job import defect_report_job

    t = pq.read_table(export / "turns.parquet")
    failed = pc.equal(t.column("action_status"), "unsupported")
    t = t.set_column(t.schema.get_field_index("goal_id"), "goal_id", t.column("session_id"))
    t = t.set_column(
        t.schema.get_field_index("failure_point"),
        "failure_point",
        pc.if_else(failed, "nlu", pa.scalar(None, pa.string())),
    )
    t = t.set_column(t.schema.get_field_index("goal_success"), "goal_success", pc.if_else(failed, 0.0, 1.0))
    t = t.set_column(
        t.schema.get_field_index("goal_labeler_version"), "goal_labeler_version", pa.array(["hand"] * t.num_rows)
    )
    pq.write_table(t, tmp_path / "turns.parquet")
    duck = defect_report_job(tmp_path / "turns.parquet", create("duckdb"))
    assert duck == defect_report_job(tmp_path / "turns.parquet", create("spark", spark=spark))
    n_failed = pc.sum(failed).as_py()
    assert duck["turns"] == t.num_rows and duck["defective_turns"] == n_failed
    assert duck["by_stage"] == [
        {"stage": "nlu", "defects": n_failed, "share": 1.0, "defect_rate": round(n_failed / t.num_rows, 4)}
    ]
    top = duck["top_failing_requests"]["nlu"][0]
    said = pc.and_(failed, pc.equal(t.column("transcript"), "turn on the kitchin lihgt"))
    assert top["text"] == "turn on the kitchin lihgt" and top["count"] == pc.sum(said).as_py() == 14


class _HashEmbedder:
    """Deterministic vectors from the text (the test is about the aggregation each engine does, not the model)."""

    version = "hash-1"

    def embed(self, texts):
        import hashlib

        import numpy as np

        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest() * 12, dtype=np.uint8)[:384] for t in texts]
        v = np.asarray(rows, dtype=np.float32) - 127.5
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_online_index_build_is_the_same_on_both_engines(spark, export, tmp_path):
    import numpy as np

    from assistant.learning.engines import create
    from assistant.learning.retrieval import build_index

    built = {}
    for name, eng in (("duckdb", create("duckdb")), ("spark", create("spark", spark=spark))):
        meta = build_index(export, tmp_path / name, _HashEmbedder(), engine=eng)
        with np.load(tmp_path / name / "rewrites" / "index" / "index.npz") as z:
            built[name] = (
                {k: z[k].tolist() for k in z.files},
                {k: meta[k] for k in ("entries", "users", "personal_rows", "known_names")},
            )
    assert built["duckdb"] == built["spark"]
    arrays, meta = built["duckdb"]
    assert "turn on the kitchen light" in arrays["texts"] and meta["users"] == 5


def test_signals_and_defect_labels_job_is_the_same_on_both_engines_and_equals_the_store(spark, tmp_path, capsys):
    """`signals.session_signals` + `label_turn` inside each engine (per session, `map_partitions`) over a typed (v2)
    Parquet export and a JSON Lines (v1) one: the same labels, confidences and signals on both engines, equal to
    what `label_store` wrote into the store; `assistant learn signals --engine spark` writes them as Parquet under vN
    (DuckDB reads both exports, Spark the v2 one through the API and the v1 one through the command)."""
    from collections import Counter

    import pyarrow.parquet as pq

    from assistant.cli.main import main
    from assistant.learning.engines import create
    from assistant.learning.signals import label_store
    from assistant.learning.signals_job import rows, signals_job
    from assistant.trace.export import export as do_export

    now = 2_000_000_000.0
    store = TraceStore(tmp_path / "data" / "traces.db")
    t = 1_700_000_000.0
    for i in range(9):
        chain = [("turn on the kitchin lihgt", *FAIL), ("turn on the kitchen light", *OK)]
        if i % 3 == 1:
            chain = [("play some smooth jas", *FAIL), ("no, I said play some smooth jazz", "done", "play_music")]
        elif i % 3 == 2:
            chain = [("turn on the kitchen light", *OK), ("stop", "done", "general_commandstop")]
        add_session(store, f"user{i % 4}", t, [*chain, ("what time is it", "done", "datetime_query")])
        t += 3600
    turns = [tr for batch in store.iter_turn_batches(order="session") for tr in batch]
    store.add_event(turns[1]["turn_id"], "barge-in", {"t_ms": 300.0})  # spoke over the answer
    store.add_event(turns[4]["turn_id"], "feedback", {"answer": "no", "reply": "no"})
    store.add_event(turns[5]["turn_id"], "feedback", {"answer": "yes", "reply": "yes"})
    label_store(store, now=now)
    want = {
        tr["turn_id"]: (tr["label"]["label"], tr["label"]["confidence"], tr["label"]["signals"])
        for batch in store.iter_turn_batches()
        for tr in batch
    }
    kinds = {s["type"] for _, _, sig in want.values() for s in sig}
    assert {"barge-in", "explicit-no", "explicit-yes", "rephrase", "correction", "cancel", "completed"} <= kinds
    for fmt in ("parquet", "jsonl"):
        do_export(store, tmp_path / fmt, fmt, data_dir=tmp_path / "data")
        duck = create("duckdb")
        signals_job(tmp_path / fmt, duck, now=now)
        assert rows(duck) == want, fmt
    store.close()
    spk = create("spark", spark=spark)
    res = signals_job(tmp_path / "parquet", spk, now=now)
    assert rows(spk) == want
    assert res["labels"] == dict(sorted(Counter(v[0] for v in want.values()).items()))
    spk.close()
    # the command over the JSON Lines export (v1: nested fields as JSON text): Spark writes v1, DuckDB then v2
    out = tmp_path / "signals"
    for version, engine in ((1, "spark"), (2, "duckdb")):
        args = ["learn", "signals", "--data-dir", str(tmp_path / "data"), "--export", str(tmp_path / "jsonl")]
        args += ["--engine", engine, "--spark-master", "local[1]", "--out", str(out), "--now", str(now), "--json"]
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["engine"] == engine and summary["out"] == str(out / f"v{version}")
        assert {k: summary[k] for k in ("turns", "labels", "signals")} == {
            k: res[k] for k in ("turns", "labels", "signals")
        }
        table = pq.read_table(out / f"v{version}").to_pylist()
        got = {r["turn_id"]: (r["label"], r["confidence"], json.loads(r["signals"])) for r in table}
        assert got == want and {r["labeler_version"] for r in table} == {"signals-1"}
