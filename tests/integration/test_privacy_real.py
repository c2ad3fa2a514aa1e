"""Retention on turns made by the real models (the model-free privacy tests are in tests/unit/test_privacy.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assistant.trace.privacy import prune

REPO = Path(__file__).resolve().parents[2]
needs_nlu = pytest.mark.skipif(
    not (REPO / "models" / "nlu" / "model.onnx").exists(), reason="models/nlu/model.onnx not trained yet"
)


@needs_nlu
def test_prune_on_real_turns_with_response_audio(make_pipeline):
    p = make_pipeline()
    now = datetime.now()
    old = p.run_text("what time is it", now=now - timedelta(days=40))
    new = p.run_text("what time is it", now=now - timedelta(days=1))
    assert Path(old["response_audio"]).exists() and Path(new["response_audio"]).exists()
    result = prune(p.store, 30)
    assert result == {"turns": 1, "audio_files": 1, "cutoff": result["cutoff"]}
    assert not Path(old["response_audio"]).exists() and Path(new["response_audio"]).exists()
    assert p.store.get_turn(old["turn_id"]) is None and p.store.get_turn(new["turn_id"]) is not None
