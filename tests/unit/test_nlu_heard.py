"""Training rows from what the ASR heard (issue 18): slot alignment, the seeded voice conditions (the evaluation
voices stay out), and which rows `train nlu --heard` keeps."""

from __future__ import annotations

import json

from assistant.training.nlu_heard import align_spans, condition, load_heard_rows


def test_a_slot_heard_as_said_keeps_its_tag_in_the_heard_offsets():
    heard = "Play songs by The Beatles, please."
    spans = align_spans("play songs by the beatles please", [(14, 25, "artist_name")], heard)
    assert spans == [(14, 25, "artist_name")] and heard[14:25] == "The Beatles"


def test_a_misheard_slot_makes_the_row_intent_only():
    assert align_spans("wake me at seven", [(11, 16, "time")], "Wake me at 7.") is None
    assert align_spans("call mom", [(5, 8, "person")], "Call Tom.") is None


def test_rows_without_slots_and_pseudo_labels_keep_what_they_had():
    assert align_spans("what time is it", [], "What time is it?") == []
    assert align_spans("what time is it", None, "What time is it?") is None


def test_two_slots_are_found_in_order():
    text = "set the kitchen lights to blue"
    spans = [(8, 15, "house_place"), (26, 30, "color_type")]
    heard = "Set the kitchen lights to blue."
    assert [heard[s:e] for s, e, _ in align_spans(text, spans, heard)] == ["kitchen", "blue"]


def test_conditions_are_seeded_by_the_sentence_and_never_the_evaluation_voices():
    conds = [condition(f"sentence number {i}") for i in range(400)]
    assert conds[:20] == [condition(f"sentence number {i}") for i in range(20)]
    assert condition("x", seed=1) == condition("x", seed=1)
    piper = [c for c in conds if c["voice"] == "piper"]
    espeak = [c for c in conds if c["voice"] == "espeak"]
    assert 120 < len(piper) < 280 and 120 < len(espeak) < 280
    assert all(c["length_scale"] != 1.0 for c in piper)  # `--spoken piper` speaks at 1.0
    assert all(c["espeak_voice"] not in ("en", "en-gb") for c in espeak)  # `--spoken espeak` is plain en
    noisy = [c for c in conds if "noise" in c]
    assert 120 < len(noisy) < 280 and {c["snr_db"] for c in noisy} <= {5.0, 10.0, 15.0, 20.0}


def test_load_keeps_misheard_rows_with_the_said_label(tmp_path):
    rows = [
        {
            "text": "Turn of the lights.",
            "source_text": "turn off the lights",
            "intent": "iot_hue_lightoff",
            "spans": [],
            "source": "heard-hwu64",
            "wer": 0.25,
        },
        {
            "text": "Turn off the lights.",
            "source_text": "turn off the lights",
            "intent": "iot_hue_lightoff",
            "spans": [],
            "source": "heard-hwu64",
            "wer": 0.0,
        },  # heard exactly: the clean row teaches it
        {
            "text": "Thank you.",
            "source_text": "what is the weather like in boston",
            "intent": "weather_query",
            "spans": None,
            "source": "heard-pseudo",
            "wer": 1.0,
        },  # nothing of it survived
        {"text": "", "source_text": "hi", "intent": "general_greet", "spans": None, "source": "heard-x", "wer": 1.0},
        {
            "text": "What's the whether?",
            "source_text": "what's the weather",
            "intent": "weather_query",
            "spans": None,
            "source": "heard-pseudo",
            "wer": 0.5,
            "probs": {"weather_query": 0.9, "general_quirky": 0.1},
        },
    ]
    path = tmp_path / "heard.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = load_heard_rows(path)
    assert [r["text"] for r in out] == ["Turn of the lights.", "What's the whether?"]
    assert out[0]["intent"] == "iot_hue_lightoff" and out[0]["spans"] == []
    assert out[1]["probs"]["weather_query"] == 0.9
    assert len(load_heard_rows(path, max_wer=1.0)) == 3
