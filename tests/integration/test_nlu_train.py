"""Self-training pieces of `assistant train nlu` that run without torch: teacher labels and the recipe chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.training import nlu as nlu_train

NLU = Path(__file__).resolve().parents[2] / "models" / "nlu"


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    (tmp_path / "slurp").mkdir()
    (tmp_path / "slurp" / "lm.txt").write_text(
        "turn off the lights in the kitchen\nwhat's the weather like tomorrow\nTurn off the lights in the kitchen!\n"
        "set an alarm for seven am\nhmm\n",
        encoding="utf-8",
    )
    return tmp_path


def test_teacher_labels_lm_lines_hard_and_soft(data_root: Path) -> None:
    hard = nlu_train.pseudo_label_rows([NLU], exclude={"set an alarm for seven am"}, min_conf=0.9, data_root=data_root)
    texts = [r["text"] for r in hard]
    # the duplicate (after normalisation) and the excluded line are skipped; labels are the teacher's
    assert "Turn off the lights in the kitchen!" not in texts and "set an alarm for seven am" not in texts
    by_text = {r["text"]: r for r in hard}
    assert by_text["turn off the lights in the kitchen"]["intent"] == "iot_hue_lightoff"
    assert by_text["what's the weather like tomorrow"]["intent"] == "weather_query"
    assert all(r["spans"] is None and "probs" not in r for r in hard)
    # soft: every line kept at min_conf 0, each with the teacher's distribution; two teachers are averaged
    soft = nlu_train.pseudo_label_rows([NLU, NLU], exclude=set(), min_conf=0.0, data_root=data_root, soft=True)
    assert len(soft) == 4
    for r in soft:
        assert abs(sum(r["probs"].values()) - 1.0) < 0.02 and max(r["probs"], key=r["probs"].get) == r["intent"]
    assert {r["text"] for r in soft} >= set(texts)


def test_reproduce_chains_the_teachers_commands(tmp_path: Path) -> None:
    teacher = tmp_path / "t1"
    teacher.mkdir()
    (teacher / "metrics.json").write_text(
        json.dumps(
            {
                "reproduce": [
                    "python -m assistant train nlu --out runs/t0",
                    "python -m assistant train nlu --out runs/t1",
                ]
            }
        )
    )
    opt = dict(
        epochs=5,
        seed=0,
        lr=nlu_train.DEFAULTS["lr"],
        quantize="auto",
        threads=1,
        min_conf=0.0,
        soft=True,
        pooling="mean",
        label_smoothing=0.0,
        base=None,
    )
    cmds = nlu_train._reproduce(tmp_path / "student", [teacher], **opt)
    assert cmds[:2] == ["python -m assistant train nlu --out runs/t0", "python -m assistant train nlu --out runs/t1"]
    assert cmds[2] == (
        "python -m assistant train nlu --out runs/student --epochs 5 --seed 0 --pooling mean "
        "--teacher runs/t1 --min-conf 0 --soft --threads 1"
    )
    mp = nlu_train._reproduce(
        tmp_path / "mp", [], **(opt | {"base": "all-mpnet-base-v2", "lr": 4e-5, "quantize": "fp32"})
    )
    assert mp == [
        "python -m assistant train nlu --out runs/mp --epochs 5 --seed 0 --base mpnet --lr 4e-05 "
        "--pooling mean --quantize fp32 --threads 1"
    ]


def test_perturbed_copies_are_labelled_and_never_an_excluded_sentence(data_root: Path) -> None:
    sources = ["please turn off all the lights in the living room", "what is the weather going to be like in paris"]
    banned = {"please turn off all the lights in the living", "turn off all the lights in the living room"}
    rows = nlu_train.pseudo_label_rows(
        [NLU], exclude=banned, min_conf=0.0, data_root=data_root, soft=True, augment_from=sources * 20, seed=3
    )
    noisy = [r for r in rows if r["source"] == "pseudo-noisy"]
    assert noisy and all(r["text"] not in banned and r["text"] not in sources for r in noisy)
    assert len({r["text"] for r in noisy}) == len(noisy)  # each distinct copy once
    # labelled by the teacher as what is left of the words: still the lights ("please turn all the lights ..." lost
    # its "off" and may be lightup), never the weather
    assert {r["intent"][:8] for r in noisy if "lights" in r["text"]} == {"iot_hue_"}
    assert {r["intent"] for r in noisy if "weather" in r["text"]} == {"weather_query"}


def test_teacher_probabilities_in_batches_keep_each_sentence_its_own(tmp_path: Path) -> None:
    import numpy as np

    from assistant.backends.nlu.onnx_joint import OnnxJointNlu, softmax

    texts = [
        "hi",
        "turn off the lights in the kitchen please",
        "what's the weather",
        "set an alarm for seven",
        "play the next episode of my favourite podcast from the beginning again",
    ]
    # the shipped model is int8 (activation scales per batch): labelled one sentence at a time, exactly as at run time
    int8 = OnnxJointNlu(NLU)
    one = np.stack([softmax(int8._run(t)[1].astype(np.float64)) for t in texts])
    assert np.abs(nlu_train._teacher_probs(int8, texts, batch=3) - one).max() < 1e-9

    # a float model in padded batches: each row's logits depend only on its own unpadded tokens
    class Session:
        def run(self, _, feeds):
            ids, mask = feeds["input_ids"], feeds["attention_mask"]
            summed = (ids * mask).sum(1, keepdims=True).astype(np.float32)
            return [np.sin(summed * np.arange(1, len(int8.intents) + 1) / 1000.0)]

    fp = OnnxJointNlu.__new__(OnnxJointNlu)
    fp.tokenizer, fp.max_length, fp.intents, fp.session = int8.tokenizer, 64, int8.intents, Session()
    fp.model_dir = tmp_path
    (tmp_path / "metrics.json").write_text(json.dumps({"chosen": "fp32"}))
    batched = nlu_train._teacher_probs(fp, texts, batch=2)
    for t, row in zip(texts, batched):
        single = nlu_train._teacher_probs(fp, [t], batch=1)[0]
        assert np.abs(row - single).max() < 1e-9
