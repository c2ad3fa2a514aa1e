"""Retraining the NLU from generated labels (issue 23) through the real `train nlu` code: warm start from the shipped
model's ONNX weights, generated rows added, one short epoch on a small data folder, export, int8. Needs the training
extras (torch, transformers, onnx); skipped without them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NLU = REPO / "models" / "nlu"


@pytest.fixture()
def small_data(tmp_path: Path) -> Path:
    from assistant.config import shared_data_dir

    src = shared_data_dir()
    root = tmp_path / "data"
    (root / "slurp").mkdir(parents=True)
    for name in ("devel.jsonl", "test.jsonl"):
        lines = (src / "slurp" / name).read_text(encoding="utf-8").splitlines()[:40]
        (root / "slurp" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_dir = root / "hwu64" / "KFold_1" / "testset" / "csv"
    csv_dir.mkdir(parents=True)
    for name in ("iot_hue_lightoff.csv", "weather_query.csv", "general_affirm.csv"):
        lines = (src / "hwu64" / "KFold_1" / "testset" / "csv" / name).read_text(encoding="utf-8").splitlines()
        (csv_dir / name).write_text("\n".join(lines[:25]) + "\n", encoding="utf-8")
    return root


def test_warm_started_retraining_keeps_what_the_model_knew(tmp_path: Path, small_data: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.training.nlu import train

    text = "make the hall light brighter please"
    extra = [
        {"text": text, "intent": "iot_hue_lightup", "spans": [(9, 13, "house_place")], "source": "traces:rephrase"},
        {"text": "put on the kitchen lights", "intent": "iot_hue_lighton", "spans": None, "source": "traces:history"},
    ] * 4
    out = tmp_path / "cand"
    m = train(
        out,
        epochs=1,
        lr=3e-5,
        threads=1,
        progress=False,
        extra_rows=extra,
        init=NLU,
        corpus_fraction=0.01,
        variants=("int8pc",),
        data_root=small_data,
    )
    assert m["warm_start"]["from"] == json.loads((NLU / "labels.json").read_text())["version"]
    assert m["warm_start"]["loaded"] >= 100  # every encoder and head tensor came back from the ONNX file
    assert m["data"]["extra_rows"] == 8 and m["data"]["extra_rows_per_source"]["traces:rephrase"] == 4
    nlu = OnnxJointNlu(out)
    # a handful of steps at a small learning rate: what the shipped model knew is still there
    assert nlu.parse("turn off the kitchen lights").intent == "iot_hue_lightoff"
    assert nlu.parse("what's the weather like tomorrow").intent == "weather_query"
    assert nlu.intents == json.loads((NLU / "labels.json").read_text())["intents"]
    shutil.rmtree(out)
