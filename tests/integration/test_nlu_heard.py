"""`train nlu-heard` on real voices and the shipped recogniser: each row is what tiny.en heard of a sentence spoken
under its seeded condition, with the said sentence's label."""

from __future__ import annotations

import json

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
    for rec, row in zip(recs, said):
        assert rec["intent"] == row["intent"] and rec["source"] == f"heard-{row['source']}"
        assert rec["condition"] == condition(row["text"])  # the seeded voice, speed and noise
        assert rec["asr"].startswith("tiny.en") and 0.0 <= rec["wer"]
        words = set(rec["text"].lower().replace(".", "").replace(",", "").split())
        assert words & set(row["text"].split()), rec  # something of the sentence was heard
        if rec["spans"]:  # a slot heard as said is tagged where it was heard
            s, e, tag = rec["spans"][0]
            assert (
                tag == row["spans"][0][2]
                and rec["text"][s:e].lower() == row["text"][row["spans"][0][0] : row["spans"][0][1]]
            )
    assert recs[1]["probs"] == said[1]["probs"] and recs[1]["spans"] is None
    # a rerun resumes: nothing is spoken twice
    assert make_heard_rows(out, 3, workers=1, rows=said, progress=False)["rows"] == 3
    assert summarize(out)["rows"] == 3
    # training keeps the misheard rows (not the exact ones, not the empty ones), with the said sentence's label
    kept = load_heard_rows(out, max_wer=1.0)
    misheard = [r for r in recs if r["text"].strip() and r["wer"] > 0]
    assert [(r["text"], r["intent"]) for r in kept] == [(r["text"].strip(), r["intent"]) for r in misheard]
