"""Precomputed rewrites: absorbing Markov chains (hand-built chain with known answers), thresholds, versioned tables
and rollback, and the DuckDB mining over an export of a synthetic store."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from synth_traces import add_session

from assistant.errors import AssistantError
from assistant.learning.markov import (
    MarkovConfig,
    absorbing_solution,
    current_version,
    load_table,
    rollback,
    solve,
    versions,
    write_table,
)
from assistant.learning.mining import Mined, mine
from assistant.trace.store import TraceStore

FAIL, OK = ("unsupported", "general_quirky"), ("done", "iot_hue_lighton")


def synthetic_store(path: Path) -> TraceStore:
    """Many users; "turn on the kitchin lihgt" fails and is rephrased (sometimes via a second failure) until
    "turn on the kitchen light" works; a few give up. Plus unrelated traffic."""
    store = TraceStore(path)
    t = 1_700_000_000.0
    for i in range(12):
        user = f"user{i % 4}"
        if i % 4 == 3:  # two rephrases
            chain = [
                ("turn on the kitchin lihgt", *FAIL),
                ("turn on kitchin light", *FAIL),
                ("turn on the kitchen light", *OK),
            ]
        elif i == 10:  # gave up
            chain = [("turn on the kitchin lihgt", *FAIL)]
        else:
            chain = [("turn on the kitchin lihgt", *FAIL), ("turn on the kitchen light", *OK)]
        add_session(store, user, t, chain + [("what time is it", "done", "datetime_query")])
        t += 3600
    for i in range(6):
        add_session(
            store, f"user{i % 4}", t, [("turn on the kitchen light", *OK), ("play some jazz", "done", "play_music")]
        )
        t += 3600
    return store


# -- the chain itself ---------------------------------------------------------------------------------------
def test_absorbing_solution_matches_hand_computation():
    # a -> b 0.5, a -> fail 0.5; b -> c 0.4, b -> success 0.2, b -> fail 0.4; c -> success 0.9, c -> a 0.1
    tt = np.array([[0, 5, 0], [0, 0, 4], [1, 0, 0]], float)
    ta = np.array([[0, 5], [2, 4], [9, 0]], float)
    n, b = absorbing_solution(tt, ta)
    # By hand: pa = 0.5 pb; pb = 0.2 + 0.4 pc; pc = 0.9 + 0.1 pa  =>  pa = 0.5 (0.2 + 0.4 (0.9 + 0.1 pa))
    pa = (0.5 * (0.2 + 0.36)) / (1 - 0.02)
    pb = 0.2 + 0.4 * (0.9 + 0.1 * pa)
    pc = 0.9 + 0.1 * pa
    assert b[:, 0] == pytest.approx([pa, pb, pc])
    assert b.sum(1) == pytest.approx(1.0)
    assert n[0, 0] == pytest.approx(1 / (1 - 0.02))  # return to a only via a->b->c->a: 0.5*0.4*0.1


def _mined(edges, absorb, pairs) -> Mined:
    e = list(zip(*edges)) if edges else [[], [], []]
    return Mined(
        {
            "src": list(e[0]),
            "dst": list(e[1]),
            "n": np.array(e[2], float),
            "chains": np.array(e[2]),
            "users": np.ones(len(edges)),
        },
        {"utt": [a[0] for a in absorb], "success": [a[1] for a in absorb], "failure": [a[2] for a in absorb]},
        {
            "src": [p[0] for p in pairs],
            "dst": [p[1] for p in pairs],
            "chains": [p[2] for p in pairs],
            "users": [p[3] for p in pairs],
        },
    )


def test_solve_picks_most_likely_reachable_success_and_respects_thresholds():
    m = _mined(
        edges=[("bad", "meh", 4), ("bad", "good", 6), ("meh", "good", 2)],
        absorb=[("bad", 0, 2), ("meh", 1, 1), ("good", 19, 1), ("other", 5, 0)],
        pairs=[("bad", "good", 8, 3), ("bad", "meh", 1, 1), ("meh", "good", 2, 2)],
    )
    table, stats = solve(m, MarkovConfig(min_support=3, min_prob=0.7))
    assert set(table) == {"bad"}  # meh -> good has support 2 < 3
    assert table["bad"]["target"] == "good"
    assert table["bad"]["probability"] == pytest.approx(0.95)
    assert table["bad"]["support"] == 8 and table["bad"]["users"] == 3
    assert table["bad"]["baseline"] < 0.9
    assert stats["clusters"] == 1
    assert solve(m, MarkovConfig(min_support=9))[0] == {}  # support
    assert solve(m, MarkovConfig(min_prob=0.96))[0] == {}  # probability
    assert solve(m, MarkovConfig(min_users=4))[0] == {}  # users
    assert set(solve(m, MarkovConfig(min_support=2))[0]) == {"bad", "meh"}


def test_unreachable_target_is_never_chosen():
    m = _mined(
        edges=[("x", "y", 5), ("p", "q", 5)],
        absorb=[("x", 0, 1), ("y", 1, 4), ("q", 9, 0), ("p", 0, 5)],
        pairs=[("x", "q", 9, 9), ("p", "q", 5, 2)],
    )
    table, _ = solve(m, MarkovConfig(min_support=1, min_prob=0.5))
    assert "x" not in table  # q is in another cluster
    assert table["p"]["target"] == "q"


def test_versions_and_rollback(tmp_path):
    assert load_table(tmp_path) is None and current_version(tmp_path) is None
    v1 = write_table(tmp_path, {"a": {"target": "b", "probability": 0.9}}, MarkovConfig())
    v2 = write_table(tmp_path, {"a": {"target": "c", "probability": 0.8}})
    assert (v1, v2) == (1, 2) and versions(tmp_path) == [1, 2] and current_version(tmp_path) == 2
    assert load_table(tmp_path)["rewrites"]["a"]["target"] == "c"
    assert rollback(tmp_path, 1) == 1
    assert load_table(tmp_path)["rewrites"]["a"]["target"] == "b"
    assert load_table(tmp_path, 2)["version"] == 2
    with pytest.raises(AssistantError):
        rollback(tmp_path, 7)
    rollback(tmp_path, 0)
    assert load_table(tmp_path) is None
    assert write_table(tmp_path, {}) == 3  # versions keep counting after a rollback


# -- mining over a real export ----------------------------------------------------------------------------
def _export(store: TraceStore, tmp_path: Path) -> Path:
    """Label the store's turns (feedback signals), export it as `learn rewrites` does, close it: the export's path."""
    from assistant.learning.signals import label_store
    from assistant.trace.export import export

    label_store(store, now=2_000_000_000.0)
    export(store, tmp_path / "export", data_dir=tmp_path / "data")
    store.close()
    return tmp_path / "export" / "turns.parquet"


@pytest.fixture
def exported(tmp_path):
    return _export(synthetic_store(tmp_path / "data" / "traces.db"), tmp_path)


def test_mining_counts_transitions_and_absorption(exported):
    m = mine(exported)
    edges = {(a, b): n for a, b, n in zip(m.edges["src"], m.edges["dst"], m.edges["n"])}
    assert edges[("turn on the kitchin lihgt", "turn on the kitchen light")] == 8
    assert edges[("turn on the kitchin lihgt", "turn on kitchin light")] == 3
    assert edges[("turn on kitchin light", "turn on the kitchen light")] == 3
    assert not any("what time" in a or "what time" in b for a, b in edges)  # not a rephrase
    absorb = {u: (s, f) for u, s, f in zip(m.absorb["utt"], m.absorb["success"], m.absorb["failure"])}
    assert absorb["turn on the kitchen light"] == (17, 0)
    assert absorb["turn on the kitchin lihgt"] == (0, 1)  # the one who gave up
    pairs = {(a, b): (c, u) for a, b, c, u in zip(m.pairs["src"], m.pairs["dst"], m.pairs["chains"], m.pairs["users"])}
    assert pairs[("turn on the kitchin lihgt", "turn on the kitchen light")] == (11, 4)
    assert m.stats["turns"] == 3 * 4 + 1 * 2 + 8 * 3 + 6 * 2  # every turn (none is a control intent)


def test_mine_and_solve_end_to_end(exported, tmp_path):
    table, _ = solve(mine(exported), MarkovConfig(min_support=3, min_prob=0.7))
    assert table["turn on the kitchin lihgt"]["target"] == "turn on the kitchen light"
    assert table["turn on kitchin light"]["target"] == "turn on the kitchen light"
    assert "turn on the kitchen light" not in table


def test_mining_reads_applied_rewrites_as_said_then_executed(tmp_path):
    """A turn rewritten by the pipeline counts as said -> executed -> outcome, so a working rewrite keeps its
    support instead of making the source look like a success of its own."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for i in range(4):
        spans = (
            '[{"stage":"rewrite","output":{"text":"turn on the kitchen light","applied":true}},'
            '{"stage":"nlu","input":{"text":"turn on the kitchen light"}}]'
        )
        rows.append(
            {
                "turn_id": f"t{i}",
                "session_id": f"s{i}",
                "turn_index": 1,
                "started_at": 1e9 + i * 100,
                "ended_at": 1e9 + i * 100 + 1,
                "user_pseudonym": f"u_{i % 2}",
                "transcript": "turn on the kitchin lihgt",
                "intent": "iot_hue_lighton",
                "action_status": "done",
                "label": "ok",
                "spans": spans,
                "signals": "[]",
            }
        )
    table = pa.Table.from_pylist(rows)  # only the columns mining reads
    table = table.append_column("error_code", pa.nulls(len(rows), pa.string()))
    table = table.set_column(
        table.schema.get_field_index("started_at"),
        "started_at",
        pa.array([r["started_at"] * 1e6 for r in rows]).cast(pa.int64()).cast(pa.timestamp("us", "UTC")),
    )
    table = table.set_column(
        table.schema.get_field_index("ended_at"),
        "ended_at",
        pa.array([r["ended_at"] * 1e6 for r in rows]).cast(pa.int64()).cast(pa.timestamp("us", "UTC")),
    )
    pq.write_table(table, tmp_path / "turns.parquet")
    m = mine(tmp_path / "turns.parquet")
    assert list(zip(m.edges["src"], m.edges["dst"], m.edges["n"].tolist())) == [
        ("turn on the kitchin lihgt", "turn on the kitchen light", 4)
    ]
    t, _ = solve(m, MarkovConfig(min_support=3))
    assert t["turn on the kitchin lihgt"]["target"] == "turn on the kitchen light"


def test_a_loop_of_rephrases_that_never_resolves_counts_as_failure():
    """Learned rephrase links can point back and forth (a -> b -> a) with no outcome in between: I - Q would be
    singular; the loop is taken to fail, and a loop with a way out still reaches it."""
    tt = np.array([[0, 2, 0], [3, 0, 0], [0, 0, 0.0]])
    ta = np.array([[0, 0], [0, 0], [1, 0.0]])
    _, b = absorbing_solution(tt, ta)
    assert b[0].tolist() == [0.0, 1.0] and b[1].tolist() == [0.0, 1.0] and b[2].tolist() == [1.0, 0.0]
    tt[0, 2] = 1.0
    _, b = absorbing_solution(tt, ta)
    assert np.allclose(b[:, 0], 1.0)


def test_quick_same_intent_correction_is_a_rephrase_and_personal(tmp_path):
    """ "turn on the big light" looked done (the assistant lit the ceiling light) but the same user says "turn on the
    floor lamp" 5 s later: a correction, so the first turn failed and links to it; the user's own chains make a
    personal rewrite. Requests of the same intent a routine apart (20 s) are not corrections."""
    from assistant.learning.markov import personal_table

    store = TraceStore(tmp_path / "data" / "traces.db")
    t = 1_700_000_000.0
    for _ in range(3):
        add_session(
            store,
            "alex",
            t,
            [
                ("turn on the big light", "done", "iot_hue_lighton"),
                ("turn on the floor lamp", "done", "iot_hue_lighton"),
            ],
            step=5.0,
        )
        add_session(store, "sam", t + 600, [("turn on the big light", "done", "iot_hue_lighton")])
        add_session(
            store,
            "sam",
            t + 1200,
            [
                ("turn on the kitchen light", "done", "iot_hue_lighton"),
                ("turn on the bedroom light", "done", "iot_hue_lighton"),
            ],
            step=20.0,
        )
        t += 86400
    m = mine(_export(store, tmp_path))
    edges = {(a, b): n for a, b, n in zip(m.edges["src"], m.edges["dst"], m.edges["n"])}
    assert edges == {("turn on the big light", "turn on the floor lamp"): 3}
    table, _ = solve(m, MarkovConfig(min_support=2))
    assert "turn on the big light" in table  # 3 corrected of 6 turns: failing
    users = dict(zip(m.user_utt["utt"], m.user_utt["n"]))
    assert users["turn on the big light"] == 3
    pt = personal_table(m, table)
    keeps = [u for u, t in pt.items() if t.get("turn on the big light", {}).get("keep")]
    assert len(keeps) == 1  # Sam: it works as said


def _chained_store(tmp_path: Path, goals: bool) -> Path:
    """Alex asks for two lights 2 s apart three times: as quick as a correction, but two requests of their own. With
    goal labels (two goals per session, as `assistant learn labels` writes them) nothing may be mined; without
    them the old rule links the pair."""
    from assistant.learning.labels.labeller import TurnLabel

    store = TraceStore(tmp_path / "data" / "traces.db")
    t = 1_700_000_000.0
    for _ in range(3):
        add_session(
            store,
            "alex",
            t,
            [
                ("turn on the kitchen light", "done", "iot_hue_lighton"),
                ("turn on the bedroom light", "done", "iot_hue_lighton"),
                ("what time is it in paris", "done", "datetime_query"),
            ],
            step=2.0,
        )
        t += 86400
    if goals:  # every turn a goal of its own
        ids = [r["turn_id"] for r in store.list_turns(limit=100)]
        store.write_goal_labels([TurnLabel(i, i, 0, 0.9, 0.1, None, {}) for i in ids], "test")
    return _export(store, tmp_path)


class _EveryNextTurn:
    """A rephrase detector that calls every turn a rephrase of the one before (a unit-test stand-in)."""

    version = "test"

    def detect(self, turns):
        return [(a.turn_id, b.turn_id, b.text, 0.9) for a, b in itertools.pairwise(turns)]


@pytest.mark.parametrize("learned", [False, True])
def test_requests_chained_in_separate_goals_are_not_mined_as_rephrases(tmp_path, learned):
    det = _EveryNextTurn() if learned else None
    plain = mine(_chained_store(tmp_path / "plain", goals=False), detector=det)
    assert ("turn on the kitchen light", "turn on the bedroom light") in set(
        zip(plain.edges["src"], plain.edges["dst"])
    )
    gated = mine(_chained_store(tmp_path / "goals", goals=True), detector=det)
    assert len(gated.edges["src"]) == 0 and gated.stats["linked_turns"] == 0
    # the stats say whether the gate had goal ids to work with
    assert plain.stats["turns_with_goal_id"] == 0 and gated.stats["turns_with_goal_id"] == gated.stats["turns"] > 0


def test_wordings_that_did_the_same_pool_their_support(tmp_path):
    """Alex's "turn on the big light" lights the ceiling light; Alex corrects it to the floor lamp, in two wordings
    ("turn on the floor lamp", "switch on the floor lamp please") twice each. Neither wording alone has the support
    of 3 a rewrite needs, nor half of Alex's turns; both did the same (light.turn_on of living_room.floor_lamp), so
    together they make a global and a personal rewrite, to the wording seen most. A third wording that lit another
    lamp does not join them."""
    from assistant.learning.markov import meaning_of, personal_table

    store = TraceStore(tmp_path / "data" / "traces.db")
    big = {"name": "light.turn_on", "target": "living_room.ceiling_light"}
    lamp = {"name": "light.turn_on", "target": "living_room.floor_lamp"}
    t = 1_700_000_000.0
    corrections = [
        ("turn on the floor lamp", lamp),
        ("switch on the floor lamp please", lamp),
        ("turn on the floor lamp", lamp),
        ("switch on the floor lamp please", lamp),
        ("turn on the desk lamp", {"name": "light.turn_on", "target": "office.desk_lamp"}),
    ]
    for said, action in corrections:
        add_session(
            store,
            "alex",
            t,
            [("turn on the big light", "done", "iot_hue_lighton"), (said, "done", "iot_hue_lighton")],
            step=5.0,
            actions=[big, action],
        )
        t += 86400
    for time_ in ("06:00", "07:00"):  # the record an action made (alarm:1) is no target: the times differ
        said = f"wake me up at {time_[1]} am"
        alarm = {"name": "alarm.set", "target": "alarm:1", "params": {"time": time_}}
        add_session(store, "alex", t, [(said, "done", "alarm_set")], actions=[alarm])
        t += 86400
    m = mine(_export(store, tmp_path))
    assert meaning_of(m, "wake me up at 6 am") != meaning_of(m, "wake me up at 7 am")
    assert meaning_of(m, "turn on the floor lamp") == meaning_of(m, "switch on the floor lamp please")
    assert meaning_of(m, "turn on the floor lamp") != meaning_of(m, "turn on the desk lamp")
    table, _ = solve(m, MarkovConfig(min_support=3))
    assert table["turn on the big light"]["target"] in ("turn on the floor lamp", "switch on the floor lamp please")
    assert table["turn on the big light"]["support"] == 4
    pt = personal_table(m, {})
    (mine_,) = pt.values()
    assert mine_["turn on the big light"]["support"] == 4
    # without the actions (every wording its own outcome) neither is enough
    m.meanings.clear()
    assert solve(m, MarkovConfig(min_support=3))[0] == {}
    assert personal_table(m, {}) == {}


@pytest.mark.parametrize("goals", ["one", "two", None])
def test_a_slow_correction_inside_one_goal_is_still_a_correction(tmp_path, goals):
    """ "turn on the big light" lit the ceiling light; 15 s later (a feedback question and its "Nope" between) the same
    user says "turn on the floor lamp". Inside one goal (as the goal labeller wrote it) that is a correction; across
    two goals, or with no goal labels at all, 15 s is too slow to call it one (`correction_seconds`: 8)."""
    from assistant.learning.labels.labeller import TurnLabel

    store = TraceStore(tmp_path / "data" / "traces.db")
    t = 1_700_000_000.0
    for _ in range(3):
        add_session(
            store,
            "alex",
            t,
            [
                ("turn on the big light", "done", "iot_hue_lighton"),
                ("turn on the floor lamp", "done", "iot_hue_lighton"),
            ],
            step=15.0,
        )
        t += 86400
    if goals:
        rows = store.list_turns(limit=100)
        by_session: dict[str, list[str]] = {}
        for r in sorted(rows, key=lambda r: r["started_at"]):
            by_session.setdefault(r["session_id"], []).append(r["turn_id"])
        labels = [
            TurnLabel(tid, f"{sid}:{k if goals == 'two' else 0}", 0, 0.9, 0.1, None, {})
            for sid, tids in by_session.items()
            for k, tid in enumerate(tids)
        ]
        store.write_goal_labels(labels, "test")
    m = mine(_export(store, tmp_path))
    edges = {(a, b): n for a, b, n in zip(m.edges["src"], m.edges["dst"], m.edges["n"])}
    if goals == "one":
        assert edges == {("turn on the big light", "turn on the floor lamp"): 3}
    else:
        assert edges == {}
