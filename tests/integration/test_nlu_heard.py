"""`train nlu-heard` on real voices and the shipped recogniser: each row is what tiny.en heard of a sentence spoken
under its seeded condition, with the said sentence's label."""

from __future__ import annotations

import json

from assistant.text import normalize_dataset
from assistant.training.nlu_heard import condition, load_heard_rows, make_heard_rows, summarize


def test_heard_rows_carry_the_said_label_and_what_the_asr_heard(tmp_path):
    said = [
        {
            "text": "turn off the kitchen lights",
            "intent": "iot_hue_lightoff",
            "spans": [(12, 19, "house_place")],
            "source": "template",
        },
        {
            "text": "what is the weather like in boston tomorrow",
            "intent": "weather_query",
            "spans": None,
            "probs": {"weather_query": 0.97, "general_quirky": 0.03},
            "source": "pseudo",
        },
        {"text": "play some jazz music", "intent": "play_music", "spans": [(10, 14, "music_genre")], "source": "hwu64"},
    ]
    out = tmp_path / "heard.jsonl"
    stats = make_heard_rows(out, 3, workers=1, rows=said, progress=False)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats["rows"] == 3 and [r["source_text"] for r in recs] == [r["text"] for r in said]
    heard_in_part = 0
    for rec, row in zip(recs, said):
        assert rec["intent"] == row["intent"] and rec["source"] == f"heard-{row['source']}"
        assert rec["condition"] == condition(row["text"])  # the seeded voice, speed and noise
        assert rec["asr"].startswith("tiny.en") and 0.0 <= rec["wer"]
        words = set(normalize_dataset(rec["text"]).split())
        heard_in_part += bool(words & set(row["text"].split()))
        if normalize_dataset(rec["text"]) != row["text"]:
            assert rec["wer"] > 0, rec  # a row heard differently says so
        if rec["spans"]:  # a slot heard as said is tagged where it was heard
            s, e, tag = rec["spans"][0]
            assert (
                tag == row["spans"][0][2]
                and rec["text"][s:e].lower() == row["text"][row["spans"][0][0] : row["spans"][0][1]]
            )
    # Most sentences are heard at least in part. Not each one: Piper samples its voice afresh on every call, and one
    # take in a noisy condition was heard "Please don't just use it!" for "play some jazz music" (a CI run).
    assert heard_in_part >= 2, recs
    assert recs[1]["probs"] == said[1]["probs"] and recs[1]["spans"] is None
    # a rerun resumes: nothing is spoken twice
    assert make_heard_rows(out, 3, workers=1, rows=said, progress=False)["rows"] == 3
    assert summarize(out)["rows"] == 3
    # training keeps the misheard rows (not the exact ones, not the empty ones), with the said sentence's label
    kept = load_heard_rows(out, max_wer=1.0)
    misheard = [r for r in recs if r["text"].strip() and 0 < r["wer"] <= 1.0]  # WER can pass 1 (extra words)
    assert [(r["text"], r["intent"]) for r in kept] == [(r["text"].strip(), r["intent"]) for r in misheard]
