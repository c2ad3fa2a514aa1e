"""The contextual rephrase detector: examples and gold spans from simulator truth, the committed span model on
hand-built sessions, mining with learned links, and the evaluation against simulator truth."""

from __future__ import annotations

import json

import pytest

from assistant.learning.rephrase_data import (
    Turn,
    augment_correction,
    correction_tail,
    encode,
    examples_from_sessions,
    load_tokenizer,
)
from assistant.learning.rephrase_model import DEFAULT_MODEL_DIR, RephraseDetector

T0 = 1_740_990_000.0


def _turn(i: int, text: str, at: float, status: str | None = "done", session: str = "s1", **kw) -> Turn:
    return Turn(f"t{i}", session, T0 + at, T0 + at + 0.6, text, status, **kw)


def _truth(turn_id: str, episode: str | None, role: str, outcome: str = "wrong") -> dict:
    return {
        "turn_id": turn_id,
        "episode": episode,
        "role": role,
        "outcome": outcome,
        "goal": {"intent": "play_music"} if episode else None,
    }


@pytest.fixture(scope="module")
def detector() -> RephraseDetector:
    if not RephraseDetector.available():
        pytest.skip(f"no rephrase model in {DEFAULT_MODEL_DIR}")
    return RephraseDetector()


# -- data ---------------------------------------------------------------------------------------------------------
def test_gold_prefers_the_attempt_that_succeeded_and_strips_corrections():
    session = [
        _turn(0, "play purple k's by jimmy hendrix", 0, "done", barge_in=True),
        _turn(1, "No, I said play purple haze.", 6, "done"),  # a correction, still wrong
        _turn(2, "Play Purple Haze by Jimi Hendrix.", 14, "done"),  # this one worked
        _turn(3, "what's the weather tomorrow", 40, "unavailable"),  # another goal
        _turn(4, "turn off the lights", 200, "done"),  # outside the window
    ]
    truth = {
        "t0": _truth("t0", "e1", "request"),
        "t1": _truth("t1", "e1", "rephrase"),
        "t2": _truth("t2", "e1", "repeat", "achieved"),
        "t3": _truth("t3", "e2", "request", "achieved"),
        "t4": _truth("t4", "e3", "request", "achieved"),
    }
    exs = {e.query_id: e for e in examples_from_sessions([session], truth)}
    assert set(exs) == {"t0", "t1", "t2"}  # t3 and t4 have nothing after them in the window
    e0 = exs["t0"]
    assert e0.candidate_ids == ["t1", "t2", "t3"] and e0.gold_turn == "t2" and e0.rephrase_turns == ["t1", "t2"]
    assert e0.text_b[slice(*e0.gold_chars)] == "Play Purple Haze by Jimi Hendrix"
    assert "interrupted" in e0.text_a and "after 5 s :" in e0.text_b
    e1 = exs["t1"]
    assert e1.gold_turn == "t2"
    assert exs["t2"].gold_turn is None  # the weather request does not restate it
    # a correction as the only rephrase: the span is what was said after "no, I said"
    truth["t2"] = _truth("t2", "e9", "request", "achieved")
    e0 = next(e for e in examples_from_sessions([session], truth) if e.query_id == "t0")
    assert e0.gold_turn == "t1" and e0.text_b[slice(*e0.gold_chars)] == "play purple haze"


def test_correction_tail_and_token_labels():
    text = "no, I said turn on the kitchen light."
    a, b = correction_tail(text)
    assert text[a:b] == "turn on the kitchen light"
    assert correction_tail("Turn on the light!") == (0, len("Turn on the light"))
    session = [_turn(0, "turn on the kitchin lihgt", 0, "failed"), _turn(1, "turn on the kitchen light", 5)]
    truth = {"t0": _truth("t0", "e", "request"), "t1": _truth("t1", "e", "rephrase", "achieved")}
    ex = next(iter(examples_from_sessions([session], truth)))
    tok = (
        load_tokenizer(DEFAULT_MODEL_DIR / "tokenizer.json")
        if (DEFAULT_MODEL_DIR / "tokenizer.json").exists()
        else pytest.skip("no tokenizer")
    )
    f = encode(tok, ex)
    assert tok.decode(f["ids"][f["start"] : f["end"] + 1]) == "turn on the kitchen light"
    import random

    aug = augment_correction(ex, random.Random(1))
    fa = encode(tok, aug)
    assert tok.decode(fa["ids"][fa["start"] : fa["end"] + 1]) == "turn on the kitchen light"
    assert "said" in aug.text_b or "meant" in aug.text_b or "asked" in aug.text_b


# -- the committed model -------------------------------------------------------------------------------------------
def test_learned_detector_finds_the_rephrase_and_nothing_for_an_unrelated_request(detector):
    session = [
        _turn(0, "play purple k's by jimmy hendrix", 0, "done", barge_in=True),
        _turn(1, "play purple haze by jimi hendrix", 5, "done"),
        _turn(2, "what's the weather like tomorrow", 30, "unavailable"),
    ]
    found = detector.detect(session)
    by = {f.turn_id: f for f in found}
    assert "t0" in by and by["t0"].rephrase_turn_id == "t1"
    assert by["t0"].span.lower().strip(" .") == "play purple haze by jimi hendrix"
    assert 0.5 <= by["t0"].score <= 1.0
    assert "t1" not in by  # the weather request is not a rephrase
    turn_id, rephrase_id, span, score = found[0]  # unpacks as a tuple


def test_learned_detector_accepts_trace_dicts(detector):
    turns = [
        {
            "turn_id": "a",
            "started_at": T0,
            "ended_at": T0 + 0.5,
            "events": [],
            "record": {"transcript": "set an alarm for seven a m", "action": {"status": "failed"}},
        },
        {
            "turn_id": "b",
            "started_at": T0 + 4,
            "ended_at": T0 + 4.5,
            "events": [],
            "record": {"transcript": "set an alarm for 7 am", "action": {"status": "done"}},
        },
    ]
    found = detector.detect(turns)
    assert [(f.turn_id, f.rephrase_turn_id) for f in found] == [("a", "b")]


# -- mining with learned links -------------------------------------------------------------------------------------
def _write_export(path, sessions):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for s in sessions:
        for k, t in enumerate(s):
            rows.append(
                {
                    "turn_id": t.turn_id,
                    "session_id": t.session_id,
                    "turn_index": k + 1,
                    "started_at": int(t.t0 * 1e6),
                    "ended_at": int(t.t1 * 1e6),
                    "user_pseudonym": "u_1",
                    "transcript": t.text,
                    "intent": t.intent or "play_music",
                    "action_status": t.status,
                    "error_code": None,
                    "label": None,
                    "spans": "[]",
                    "signals": "[]",
                    "events": json.dumps([{"type": "barge-in"}] if t.barge_in else []),
                    "expects_reply": False,
                }
            )
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("turn_id", pa.string()),
                ("session_id", pa.string()),
                ("turn_index", pa.int32()),
                ("started_at", pa.timestamp("us", "UTC")),
                ("ended_at", pa.timestamp("us", "UTC")),
                ("user_pseudonym", pa.string()),
                ("transcript", pa.string()),
                ("intent", pa.string()),
                ("action_status", pa.string()),
                ("error_code", pa.string()),
                ("label", pa.string()),
                ("spans", pa.string()),
                ("signals", pa.string()),
                ("events", pa.string()),
                ("expects_reply", pa.bool_()),
            ]
        ),
    )
    pq.write_table(table, path)
    return path


def _purple_sessions(n: int) -> list[list[Turn]]:
    out = []
    for i in range(n):
        base = i * 10_000
        out.append(
            [
                Turn(f"a{i}", f"s{i}", T0 + base, T0 + base + 0.6, "play purple k's by jimmy hendrix", "failed"),
                Turn(
                    f"b{i}",
                    f"s{i}",
                    T0 + base + 20,
                    T0 + base + 20.6,
                    "what's the weather like tomorrow",
                    "unavailable",
                    intent="weather_query",
                ),
                Turn(
                    f"c{i}",
                    f"s{i}",
                    T0 + base + 30,
                    T0 + base + 30.6,
                    "No, I said play purple haze by jimi hendrix.",
                    "done",
                ),
            ]
        )
    return out


class _FakeDetector:
    version = "fake-1"

    def detect(self, turns):
        texts = {t.turn_id: t.text for t in turns}
        return [
            (t.turn_id, u.turn_id, "play purple haze by jimi hendrix", 0.9)
            for t in turns
            for u in turns
            if "k's" in t.text and "said" in texts[u.turn_id]
        ]


def test_mining_follows_learned_links_past_unrelated_turns_and_uses_the_span(tmp_path):
    from assistant.learning.markov import MarkovConfig, solve
    from assistant.learning.mining import mine

    path = _write_export(tmp_path / "turns.parquet", _purple_sessions(4))
    lexical = mine(path)
    assert not any("purple haze" in d for d in lexical.edges["dst"])  # not the next turn, not similar enough
    m = mine(path, detector=_FakeDetector())
    edges = {(a, b): n for a, b, n in zip(m.edges["src"], m.edges["dst"], m.edges["n"].tolist())}
    assert edges == {("play purple k's by jimmy hendrix", "play purple haze by jimi hendrix"): 4}
    assert m.stats["rephrase_detector"] == "learned" and m.stats["detected_pairs"] == 4
    table, _ = solve(m, MarkovConfig(min_support=3, min_prob=0.7))
    assert table["play purple k's by jimmy hendrix"]["target"] == "play purple haze by jimi hendrix"


def test_mining_with_the_committed_model(detector, tmp_path):
    from assistant.learning.mining import mine

    sessions = []
    for i in range(3):
        base = i * 10_000
        sessions.append(
            [
                Turn(
                    f"a{i}",
                    f"s{i}",
                    T0 + base,
                    T0 + base + 0.6,
                    "play purple k's by jimmy hendrix",
                    "done",
                    barge_in=True,
                ),
                Turn(f"c{i}", f"s{i}", T0 + base + 5, T0 + base + 5.6, "play purple haze by jimi hendrix", "done"),
                Turn(
                    f"d{i}",
                    f"s{i}",
                    T0 + base + 30,
                    T0 + base + 30.6,
                    "what's the weather like tomorrow",
                    "unavailable",
                    intent="weather_query",
                ),
            ]
        )
    path = _write_export(tmp_path / "turns.parquet", sessions)
    # the first turn "succeeded" by its status; the label says defect (barge-in), as the labeller would
    import pyarrow.parquet as pq

    t = pq.read_table(path).to_pylist()
    for r in t:
        r["label"] = "defect" if r["turn_id"].startswith("a") else "ok"
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(t, schema=pq.read_schema(path)), path)
    m = mine(path, detector=detector)
    edges = {(a, b): n for a, b, n in zip(m.edges["src"], m.edges["dst"], m.edges["n"].tolist())}
    assert edges.get(("play purple k's by jimmy hendrix", "play purple haze by jimi hendrix")) == 3
    assert not any("weather" in a or "weather" in b for a, b in edges)


# -- evaluation -----------------------------------------------------------------------------------------------------
def test_scoring_counts_right_strict_and_spans():
    from assistant.learning.rephrase_eval import prf, score, span_match, token_f1

    session = [
        _turn(0, "play purple k's by jimmy hendrix", 0, "failed"),
        _turn(1, "play purple haze", 5, "failed"),
        _turn(2, "play purple haze by jimi hendrix", 12),
        _turn(3, "what's the weather", 20, "unavailable"),
    ]
    truth = {
        "t0": _truth("t0", "e", "request"),
        "t1": _truth("t1", "e", "rephrase"),
        "t2": _truth("t2", "e", "rephrase", "achieved"),
        "t3": _truth("t3", "f", "request", "achieved"),
    }
    perfect = score(
        [session],
        truth,
        lambda s: [("t0", "t2", "Play purple haze by Jimi Hendrix."), ("t1", "t2", "purple haze by jimi hendrix")],
    )
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0 and perfect["strict"]["f1"] == 1.0
    assert perfect["span_exact"] == 0.5 and 0.5 < perfect["span_token_f1"] < 1.0
    wrong = score([session], truth, lambda s: [("t0", "t1", "play purple haze"), ("t2", "t3", "what's the weather")])
    assert wrong["precision"] == 0.5 and wrong["recall"] == 0.5 and wrong["strict"]["right"] == 0
    assert prf(0, 0, 3)["recall"] == 0.0 and span_match("Turn it ON.", "turn it on") == "exact"
    assert token_f1("a b", "c") == 0.0


def test_rephrase_eval_command_on_a_run_of_the_real_pipeline(detector, make_pipeline, tmp_path, capsys):
    """A tiny 'simulator run' made with the real pipeline (text in): traces.db + sim_truth.jsonl -> rephrase-eval."""
    from datetime import datetime, timedelta

    from assistant.cli.main import main
    from assistant.learning.jobs import store_path

    p = make_pipeline()
    t = datetime(2025, 3, 3, 7, 0)
    said = [
        ("play purple k's by jimmy hendrix", 0, "request", "e1"),
        ("play purple haze by jimi hendrix", 5, "rephrase", "e1"),
        ("what's the weather like tomorrow", 30, "request", "e2"),
    ]
    truth = []
    for text, sec, role, ep in said:
        rec = p.run_text(text, now=t + timedelta(seconds=sec))
        truth.append(
            {
                "turn_id": rec["turn_id"],
                "session_id": rec["session_id"],
                "episode": ep,
                "role": role,
                "goal": {"intent": "x"},
                "outcome": "achieved" if sec else "wrong",
            }
        )
    p.close()
    run = tmp_path / "run"
    run.mkdir()
    (run / "traces.db").symlink_to(store_path(p.data_dir))
    (run / "sim_truth.jsonl").write_text("\n".join(json.dumps(r) for r in truth) + "\n")
    assert main(["learn", "rephrase-eval", "--run", str(run), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["gold_pairs"] == 1 and res["sessions"] == 1
    learned = res["detectors"]["learned"]
    assert learned["right"] == 1 and learned["precision"] == 1.0 and learned["span_exact"] == 1.0
    assert res["detectors"]["lexical-signal"]["right"] <= 1
