"""Feedback signals and defect labels: on sessions produced by the real pipeline (typed turns with explicit times) and
on hand-built records for the cases a typed session cannot produce (barge-in, a stale clarifying question)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from assistant.learning.feedback import classify_reply, is_correction, record_feedback, should_ask
from assistant.learning.signals import SignalConfig, label_store, label_turn, session_signals, similarity
from assistant.trace.store import TraceStore, TurnTrace

REPO = Path(__file__).resolve().parents[2]
needs_nlu = pytest.mark.skipif(
    not (REPO / "models" / "nlu" / "model.onnx").exists(), reason="models/nlu/model.onnx not trained yet"
)
T0 = datetime(2025, 3, 1, 8, 0, 0)


def _turn(
    tid: str,
    t: float,
    text: str,
    intent: str | None,
    status: str | None = "done",
    *,
    expects_reply=False,
    error=None,
    events=(),
) -> dict:
    rec = {
        "turn_id": tid,
        "transcript": text,
        "intent": intent,
        "expects_reply": expects_reply,
        "error": error,
        "action": {"name": "x", "status": status} if status else None,
        "response_text": "ok",
    }
    return {
        "turn_id": tid,
        "session_id": "s",
        "started_at": t,
        "ended_at": t + 0.5,
        "record": rec,
        "events": list(events),
    }


def _types(sig: dict, tid: str) -> list[str]:
    return [s["type"] for s in sig[tid]]


# -- hand-built sessions -----------------------------------------------------------------------------------------
def test_rephrase_after_a_failure_marks_the_first_turn_defect():
    turns = [
        _turn("a", 0, "turn on the kichen light", "iot_hue_lighton", "failed"),
        _turn("b", 5, "turn on the kitchen light", "iot_hue_lighton"),
    ]
    sig = session_signals(turns, now=1000)
    assert "rephrase" in _types(sig, "a")
    reph = next(s for s in sig["a"] if s["type"] == "rephrase")
    assert reph["by_turn"] == "b" and reph["detail"]["similarity"] > 90
    assert label_turn(sig["a"])[0] == "defect"
    assert label_turn(sig["b"]) == ("ok", 0.6)


def test_no_rephrase_outside_the_gap_or_for_a_change_of_mind_or_a_repeated_success():
    late = [
        _turn("a", 0, "turn on the kichen light", "iot_hue_lighton", "failed"),
        _turn("b", 60, "turn on the kitchen light", "iot_hue_lighton"),
    ]
    assert "rephrase" not in _types(session_signals(late, now=1000), "a")
    assert "rephrase" in _types(session_signals(late, SignalConfig(gap_seconds=90), now=1000), "a")
    toggle = [
        _turn("a", 0, "turn on the kitchen light", "iot_hue_lighton"),
        _turn("b", 5, "turn off the kitchen light", "iot_hue_lightoff"),
    ]
    assert session_signals(toggle, now=1000)["a"][0]["type"] == "completed"
    again = [
        _turn("a", 0, "turn up the volume", "audio_volume_up"),
        _turn("b", 4, "turn up the volume", "audio_volume_up"),
    ]
    sig = session_signals(again, now=1000)
    assert _types(sig, "a") == ["repeat"]  # weak: labelled unknown, not defect
    assert label_turn(sig["a"])[0] == "unknown"


def test_cancel_repeat_and_correction_come_from_the_next_turn():
    cancel = session_signals(
        [_turn("a", 0, "play some jazz", "play_music"), _turn("b", 3, "stop", "general_commandstop")], now=1000
    )
    assert "cancel" in _types(cancel, "a") and label_turn(cancel["a"])[0] == "defect"
    assert "cancel" not in _types(cancel, "b")
    late_stop = session_signals(
        [_turn("a", 0, "play some jazz", "play_music"), _turn("b", 300, "stop", "general_commandstop")], now=1000
    )
    assert "cancel" not in _types(late_stop, "a")
    never_mind = session_signals(
        [
            _turn("a", 0, "set an alarm", "alarm_set", "clarify", expects_reply=True),
            _turn("b", 2, "never mind", "general_negate"),
        ],
        now=1000,
    )
    assert "cancel" in _types(never_mind, "a")
    repeat = session_signals(
        [
            _turn("a", 0, "what's the weather", "weather_query"),
            _turn("b", 2, "say that again", "general_repeat", "done"),
        ],
        now=1000,
    )
    assert "repeat" in _types(repeat, "a")
    corr = session_signals(
        [
            _turn("a", 0, "turn on the light", "iot_hue_lighton"),
            _turn("b", 3, "no, I said the kitchen light", "iot_hue_lighton"),
        ],
        now=1000,
    )
    assert "correction" in _types(corr, "a") and "rephrase" not in _types(corr, "a")
    assert label_turn(corr["a"])[0] == "defect"


def test_abandoned_question_only_once_the_follow_up_window_is_over():
    q = _turn("a", 0, "set an alarm", "alarm_set", "clarify", expects_reply=True)
    assert "abandonment" in _types(session_signals([q], now=100), "a")
    assert "abandonment" not in _types(session_signals([q], now=5), "a")  # the user may still answer
    answered = session_signals([q, _turn("b", 4, "seven am", "alarm_set")], now=100)
    assert "abandonment" not in _types(answered, "a") and label_turn(answered["a"])[0] == "unknown"


def test_events_barge_in_and_explicit_feedback_win():
    turns = [
        _turn("a", 0, "tell me a joke", "general_joke", events=[{"type": "barge-in", "data": {"offset_ms": 800}}]),
        _turn(
            "b",
            30,
            "what time is it",
            "datetime_query",
            events=[{"type": "feedback", "data": {"answer": "no", "reply": "not really"}}],
        ),
        _turn(
            "c", 60, "play some jazz", "play_music", "failed", events=[{"type": "feedback", "data": {"answer": "yes"}}]
        ),
    ]
    sig = session_signals(turns, now=1000)
    assert "barge-in" in _types(sig, "a") and label_turn(sig["a"])[0] == "defect"
    assert label_turn(sig["b"]) == ("defect", 0.95)
    assert label_turn(sig["c"]) == ("ok", 0.95)  # the user said it was fine, despite the failed status


def test_barge_in_derived_from_a_replayed_recording():
    def replayed(tid, t, offset, end, audio_s, text):
        turn = _turn(tid, t, text, "datetime_query")
        turn["source"] = {"kind": "file", "file": "rec.flac", "offset_seconds": offset, "end_seconds": end}
        turn["record"]["latency_ms"] = {"processing_to_first_audio": 300.0}
        turn["spans"] = [{"stage": "tts", "output": {"audio_seconds": audio_s}}]
        return turn

    # response: 4.0 + 0.3 -> 7.3 s; the next request starts at 5.0 s: 2.3 s over the response
    sig = session_signals(
        [replayed("a", 0, 1.0, 4.0, 3.0, "what time is it"), replayed("b", 5, 5.0, 8.0, 1.0, "what's the weather")],
        now=1000,
    )
    barge = [s for s in sig["a"] if s["type"] == "barge-in"]
    assert barge and barge[0]["detail"] == {"overlap_s": 2.3, "derived_from": "replay"} and barge[0]["by_turn"] == "b"
    calm = session_signals(
        [replayed("a", 0, 1.0, 4.0, 3.0, "what time is it"), replayed("b", 12, 12.0, 14.0, 1.0, "what's the weather")],
        now=1000,
    )
    assert "barge-in" not in _types(calm, "a")


def test_errors_are_signals_and_similarity_is_not_fooled_by_subsets():
    sig = session_signals([_turn("a", 0, "", None, None, error={"code": "asr-no-text", "stage": "asr"})], now=1000)
    assert _types(sig, "a") == ["error"] and label_turn(sig["a"])[0] == "defect"
    assert similarity("turn on the kichen light", "turn on the kitchen light") > 90
    assert similarity("the light", "turn on the kitchen light") < 75
    assert similarity("what time is it", "play some jazz") < 40


@pytest.mark.parametrize(
    "reply, answer",
    [
        ("yes thanks", "yes"),
        ("Yes!", "yes"),
        ("you did", "yes"),
        ("yeah that's right", "yes"),
        ("perfect", "yes"),
        ("nope", "no"),
        ("not really", "no"),
        ("no", "no"),
        ("that's wrong", "no"),
        ("No, I said the kitchen light", "no"),
        ("yes but the wrong light", "no"),
        ("what's the weather", "unclear"),
        ("", "unclear"),
        ("hmm", "unclear"),
    ],
)
def test_feedback_reply_classifier(reply, answer):
    assert classify_reply(reply) == answer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("no, I said the kitchen light", True),
        ("that's wrong", True),
        ("not that one", True),
        ("No no, the lamp", True),
        ("I meant the bedroom", True),
        ("wrong light", True),
        ("no", False),
        ("turn on the kitchen light", False),
        ("not now", False),
        ("what's on my shopping list", False),
    ],
)
def test_spontaneous_corrections(text, expected):
    assert is_correction(text) is expected


def test_sampler_is_deterministic_and_close_to_the_rate():
    ids = [f"{i:032x}" for i in range(20000)]
    picked = [should_ask(t, 0.1) for t in ids]
    assert picked == [should_ask(t, 0.1) for t in ids]
    assert 0.09 < sum(picked) / len(ids) < 0.11
    assert not any(should_ask(t, 0.0) for t in ids[:100]) and all(should_ask(t, 1.0) for t in ids[:100])


# -- the labels table ----------------------------------------------------------------------------------------------
def _store_turn(store: TraceStore, tid: str, t: float, text: str, intent: str, status: str = "done", **kw) -> None:
    rec = _turn(tid, t, text, intent, status, **kw)["record"]
    store.write_turn(TurnTrace(tid, "s1", "kitchen_speaker", "u1", t, t + 0.5, {"kind": "text"}, {}, {}, rec))


def test_label_store_is_idempotent_and_queryable(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    _store_turn(store, "a", 1000, "turn on the kichen light", "iot_hue_lighton", "failed")
    _store_turn(store, "b", 1005, "turn on the kitchen light", "iot_hue_lighton")
    _store_turn(store, "c", 1030, "what time is it", "datetime_query")
    first = label_store(store, now=5000)
    assert first["labels"] == {"defect": 1, "ok": 2} and first["signals"]["rephrase"] == 1
    assert label_store(store, now=5000) == first
    assert store.label_counts() == {"defect": 1, "ok": 2}
    assert [r["turn_id"] for r in store.list_turns_labelled("defect")] == ["a"]
    # explicit feedback recorded later turns c into a defect on the next run
    assert record_feedback(store, "c", "not really") == "no"
    assert store.get_turn("c")["events"][-1] == {
        "type": "feedback",
        "t_ms": None,
        "data": {"question": "Did I answer your question?", "answer": "no", "reply": "not really"},
    }
    label_store(store, now=5000)
    assert store.get_label("c")["label"] == "defect"
    assert {s["type"] for s in store.get_label("c")["signals"]} == {
        "explicit-no"
    }  # "completed" needs no negative evidence


def test_long_sessions_are_labelled_in_overlapping_windows(tmp_path):
    from assistant.learning.signals import iter_sessions, label_sessions

    store = TraceStore(tmp_path / "t.db")
    for i in range(250):
        ok = i % 2 == 1
        _store_turn(
            store,
            f"t{i:04d}",
            1000 + i * 4,
            "turn on the kitchen light" if ok else "turn on the kichen light",
            "iot_hue_lighton",
            "done" if ok else "failed",
        )
    windowed = {
        t: (lab, [s["type"] for s in sig])
        for t, lab, _, sig in label_sessions(iter_sessions(store, max_turns=40, overlap=5), now=10_000)
    }
    whole = {
        t: (lab, [s["type"] for s in sig])
        for t, lab, _, sig in label_sessions(iter_sessions(store, max_turns=10_000), now=10_000)
    }
    assert windowed == whole and len(whole) == 250


# -- sessions from the real pipeline -------------------------------------------------------------------------------
def test_cli_label_show_and_list(tmp_path, monkeypatch, capsys):
    import json

    from assistant.cli.main import main

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    store = TraceStore(tmp_path / "traces.db")
    _store_turn(store, "a" * 32, 1000, "turn on the kichen light", "iot_hue_lighton", "failed")
    _store_turn(store, "b" * 32, 1005, "turn on the kitchen light", "iot_hue_lighton")
    store.close()
    assert main(["traces", "label", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["labels"] == {"defect": 1, "ok": 1}
    assert main(["traces", "list", "--label", "defect", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["turn_id"] for r in rows] == ["a" * 32] and "rephrase" in [s["type"] for s in rows[0]["signals"]]
    assert main(["traces", "show", "aaaa"]) == 0
    out = capsys.readouterr().out
    assert "label  defect" in out and "signal rephrase" in out
    assert main(["traces", "show", "aaaa", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"]["label"] == "defect"
