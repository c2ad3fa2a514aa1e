"""Signals on sessions run through the real models (the model-free signal tests are in tests/unit/test_signals.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assistant.learning.signals import label_store

REPO = Path(__file__).resolve().parents[2]
needs_nlu = pytest.mark.skipif(
    not (REPO / "models" / "nlu" / "model.onnx").exists(), reason="models/nlu/model.onnx not trained yet"
)
T0 = datetime(2025, 3, 1, 8, 0, 0)


@needs_nlu
def test_real_session_rephrase_cancel_and_abandonment(make_pipeline):
    p = make_pipeline()
    a = p.run_text("tern on the kichin lite", now=T0)
    assert a["action"]["status"] in ("failed", "unsupported"), "the typo'd request must fail for this scenario"
    b = p.run_text("turn on the kitchen light", now=T0 + timedelta(seconds=5))
    assert b["action"]["status"] == "done"
    music = p.run_text("play some jazz", now=T0 + timedelta(seconds=60))
    p.run_text("stop", now=T0 + timedelta(seconds=63))
    question = p.run_text("set an alarm", now=T0 + timedelta(seconds=120))
    assert question["expects_reply"]
    later = p.run_text("what time is it", now=T0 + timedelta(seconds=200))  # the question was never answered
    counts = label_store(p.store, now=(T0 + timedelta(hours=1)).timestamp())
    labels = {
        t: p.store.get_label(t)
        for t in (a["turn_id"], b["turn_id"], music["turn_id"], question["turn_id"], later["turn_id"])
    }
    sig = {t: [s["type"] for s in lab["signals"]] for t, lab in labels.items()}
    assert "rephrase" in sig[a["turn_id"]] and labels[a["turn_id"]]["label"] == "defect"
    assert labels[b["turn_id"]]["label"] == "ok"
    assert "cancel" in sig[music["turn_id"]] and labels[music["turn_id"]]["label"] == "defect"
    assert "abandonment" in sig[question["turn_id"]] and labels[question["turn_id"]]["label"] == "defect"
    assert labels[later["turn_id"]]["label"] == "ok"
    assert counts["turns"] == 6 and counts["labels"]["defect"] == 3
    assert {"rephrase", "cancel", "abandonment"} <= counts["signals"].keys()


@needs_nlu
def test_real_session_correction_and_answered_question(make_pipeline):
    p = make_pipeline()
    q = p.run_text("set an alarm", now=T0)
    ans = p.run_text("seven am", now=T0 + timedelta(seconds=4))
    first = p.run_text("turn on the light in the bedroom", now=T0 + timedelta(seconds=40))
    corr = p.run_text("no, I said the kitchen light", now=T0 + timedelta(seconds=44))
    label_store(p.store, now=(T0 + timedelta(hours=1)).timestamp())
    assert "abandonment" not in [s["type"] for s in p.store.get_label(q["turn_id"])["signals"]]
    assert ans["action"]["status"] in ("done", "clarify")
    lab = p.store.get_label(first["turn_id"])
    assert "correction" in [s["type"] for s in lab["signals"]] and lab["label"] == "defect"
    assert p.store.get_label(corr["turn_id"]) is not None
