"""Who is speaking: the voice store, the identification decision, the runner's speaker stage (beside ASR), per-person
lists with the household's shared one, and privacy. A fake encoder stands in for the ONNX model (the real one is in
tests/integration/test_speaker.py)."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import datetime

import numpy as np
import pytest

from assistant.backends.speaker.resemblyzer_onnx import normalize_volume, partial_slices, power_spectrogram
from assistant.config import DEFAULT_HOME, load_settings
from assistant.core import registry
from assistant.core.context import TurnContext
from assistant.core.request import Request
from assistant.core.runner import Runner
from assistant.core.stages.asr import AsrResult
from assistant.core.stages.nlu import NluResult, Slot
from assistant.errors import AssistantError
from assistant.home.model import Home
from assistant.skills.responder import SkillResponder
from assistant.skills.store import connect
from assistant.speakers.identify import AUGMENT, SpeakerIdentifier, with_noise
from assistant.speakers.voices import VoiceStore

NOW = datetime(2025, 3, 14, 9, 0)
DIM = 8
# A fake voice: the request's samples all hold the speaker's code; each code has its own direction in embedding space.
CODES = {"alice": 1, "bob": 2, "stranger": 3}
SENTENCES = {
    10: "add milk to my shopping list",
    11: "what's on my shopping list",
    12: "add bread to the shopping list",
    20: "learn my voice",
    21: "Alice.",
    22: "the quick brown fox jumps over the lazy dog",
    25: "who am I?",
}


def _direction(code: int) -> np.ndarray:
    v = np.random.default_rng(code).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


class FakeEncoder:
    name, version = "fake-encoder", "1"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, samples: np.ndarray) -> np.ndarray:
        self.calls += 1
        return _direction(int(np.round(np.median(samples) / 1000)))  # noisy copies keep the median


def voice(who: str, sentence: int, seconds: float = 2.0) -> np.ndarray:
    """`seconds` of "audio" whose level names the speaker and last sample the sentence (for the fakes)."""
    x = np.full(int(seconds * 16000), CODES[who] * 1000, dtype=np.int16)
    x[-1] = sentence
    return x


# -- the voice store -------------------------------------------------------------------------------------------------
def test_enroll_keeps_a_normalised_voiceprint_private_to_the_owner_and_forget_deletes_it(tmp_path):
    store = VoiceStore(tmp_path)
    a, b = _direction(1), _direction(5)
    v = store.enroll("alice", [a, b], 4.0, "fake")
    mean = (a + b) / np.linalg.norm(a + b)
    assert v.utterances == 2 and np.allclose(v.voiceprint, mean, atol=1e-5) and v.seconds == 4.0
    assert stat.S_IMODE((tmp_path / "voices.json").stat().st_mode) == 0o600  # biometric: owner only
    store.enroll("alice", [a], 2.0, "fake")
    assert store.voices()["alice"].utterances == 3
    assert store.enroll("alice", [a], 1.0, "fake", replace=True).utterances == 1
    assert store.names() == ["alice"]
    assert store.forget("alice") is True and store.forget("alice") is False and store.names() == []


def test_bad_names_and_empty_enrollment_are_clear_errors(tmp_path):
    store = VoiceStore(tmp_path)
    with pytest.raises(AssistantError, match="not a usable name"):
        store.enroll("../etc", [_direction(1)], 1.0, "fake")
    with pytest.raises(AssistantError) as err:
        store.enroll("alice", [], 0.0, "fake")
    assert err.value.code == "voice-no-audio" and not (tmp_path / "voices.json").exists()


# -- the decision ----------------------------------------------------------------------------------------------------
def test_identification_names_the_enrolled_voice_above_the_threshold_else_unknown(tmp_path):
    enc = FakeEncoder()
    ident = SpeakerIdentifier(enc, VoiceStore(tmp_path), threshold=0.8)
    res, emb = ident.identify(voice("alice", 10))
    assert res.decision == "no-voices" and emb is None and enc.calls == 0  # nobody enrolled: nothing is embedded
    ident.store.enroll("alice", [_direction(1)], 3.0, "fake")
    ident.store.enroll("bob", [_direction(2)], 3.0, "fake")
    res, emb = ident.identify(voice("bob", 10))
    assert (res.person, res.decision, res.candidate) == ("bob", "identified", "bob") and res.score == pytest.approx(1)
    assert set(res.scores) == {"alice", "bob"} and emb is not None
    res, _ = ident.identify(voice("stranger", 10))
    assert res.person is None and res.decision == "unknown" and res.score < 0.8 and res.candidate in ("alice", "bob")
    res, _ = ident.identify(voice("alice", 10, seconds=0.2))
    assert res.decision == "unknown" and res.score is None  # too short to tell


# -- the front end (numpy, no model) -------------------------------------------------------------------------------
def test_partial_utterances_follow_resemblyzer():
    # resemblyzer: frame step round(16000 / 1.3 / 160) = 77 frames; windows of 160 frames; last kept at >= 75 %
    assert partial_slices(16000) == [(0, 160)]
    assert partial_slices(3 * 16000) == [(0, 160), (77, 237), (154, 314)]
    # 2 s: the window at frame 77 covers (32000 - 77 * 160) / 25600 = 77 % of itself -> kept
    assert partial_slices(2 * 16000) == [(0, 160), (77, 237)]
    # 1.9 s: the one at 77 would cover 71 % -> dropped
    assert partial_slices(int(1.9 * 16000)) == [(0, 160)]


def test_power_spectrogram_frames_and_peak():
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    p = power_spectrogram(x)
    assert p.shape == (1 + 16000 // 160, 201)
    assert int(np.argmax(p[50])) == 1000 * 400 // 16000  # 1 kHz is bin 25 of a 400-point FFT


def test_volume_is_raised_never_lowered():
    quiet = np.full(1600, 0.001, dtype=np.float32)
    loud = np.full(1600, 0.5, dtype=np.float32)
    assert 20 * np.log10(np.sqrt(np.mean(normalize_volume(quiet) ** 2))) == pytest.approx(-30, abs=0.01)
    assert np.array_equal(normalize_volume(loud), loud)


# -- per-person lists ------------------------------------------------------------------------------------------------
def _turn(tmp_path, home, text, intent, person=None, decision=None, **slots):
    ctx = TurnContext(
        home=home,
        device_id="kitchen.speaker",
        user_id=person or "default",
        now=NOW,
        session_id="s",
        data_dir=tmp_path,
        person=person,
        speaker=None if decision is None else {"person": person, "decision": decision},
    )
    nlu = NluResult(text=text, intent=intent, confidence=0.95, slots=tuple(Slot(k, v) for k, v in slots.items()))
    from assistant.core.stages.resolve import ResolveResult

    return SkillResponder().respond(nlu, ResolveResult(), ctx)


def test_my_list_is_the_speakers_own_and_an_unknown_voice_gets_the_shared_one(tmp_path):
    home = Home.example()
    add, query = "lists_createoradd", "lists_query"
    r = _turn(tmp_path, home, "add milk to my shopping list", add, "alice", "identified", list_name="shopping")
    assert r.text == "Added milk to your shopping list." and r.action.params["owner"] == "alice"
    r = _turn(tmp_path, home, "add eggs to my shopping list", add, "bob", "identified", list_name="shopping")
    assert r.action.params["owner"] == "bob"
    r = _turn(tmp_path, home, "add bread to my shopping list", add, None, "unknown", list_name="shopping")
    assert r.text == "Added bread to the shared shopping list." and r.action.params["owner"] == "shared"
    with connect(tmp_path) as db:
        rows = sorted((r["owner"], r["item"]) for r in db.execute("SELECT owner, item FROM list_items"))
    assert rows == [("", "bread"), ("alice", "milk"), ("bob", "eggs")]
    q = _turn(tmp_path, home, "what's on my shopping list", query, "alice", "identified", list_name="shopping")
    assert q.text == "Your shopping list has milk."
    q = _turn(tmp_path, home, "what's on my shopping list", query, None, "unknown", list_name="shopping")
    assert q.text == "The shared shopping list has bread."  # never alice's or bob's
    q = _turn(tmp_path, home, "what's on our shopping list", query, "bob", "identified", list_name="shopping")
    assert q.text == "The shared shopping list has bread."
    r = _turn(
        tmp_path, home, "remove milk from my shopping list", "lists_remove", None, "unknown", list_name="shopping"
    )
    assert r.action.status == "failed"  # an unknown voice cannot touch alice's list
    # only bob has a to-do list: his "what's on my to do list" falls back to nothing else, an unknown voice sees none
    _turn(tmp_path, home, "add taxes to my todo list", add, "bob", "identified", list_name="todo")
    assert (
        _turn(tmp_path, home, "what's on my todo list", query, None, "unknown", list_name="todo").action.status
        == "failed"
    )


def test_without_speaker_identification_lists_behave_as_before(tmp_path):
    home = Home.example()
    _turn(tmp_path, home, "add milk to my shopping list", "lists_createoradd", list_name="shopping")
    q = _turn(tmp_path, home, "what's on my shopping list", "lists_query", list_name="shopping")
    assert q.text == "Your shopping list has milk."


def test_lists_of_an_older_data_dir_become_the_households_shared_lists(tmp_path):
    db = sqlite3.connect(tmp_path / "skills.sqlite3")
    db.executescript(
        "CREATE TABLE lists (key TEXT PRIMARY KEY, name TEXT NOT NULL, created_ts REAL NOT NULL);"
        "CREATE TABLE list_items (id INTEGER PRIMARY KEY AUTOINCREMENT, list_key TEXT NOT NULL REFERENCES lists(key)"
        " ON DELETE CASCADE, item TEXT NOT NULL, added_ts REAL NOT NULL);"
        "INSERT INTO lists VALUES ('shopping', 'shopping', 1.0);"
        "INSERT INTO list_items (list_key, item, added_ts) VALUES ('shopping', 'flour', 1.0);"
    )
    db.commit()
    db.close()
    q = _turn(tmp_path, Home.example(), "what's on the shopping list", "lists_query", list_name="shopping")
    assert q.text == "Your shopping list has flour."
    r = _turn(
        tmp_path,
        Home.example(),
        "add milk to my shopping list",
        "lists_createoradd",
        "alice",
        "identified",
        list_name="shopping",
    )
    assert r.action.params["owner"] == "alice"
    with connect(tmp_path) as c:
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        assert sorted((r["owner"], r["item"]) for r in c.execute("SELECT owner, item FROM list_items")) == [
            ("", "flour"),
            ("alice", "milk"),
        ]


# -- the runner: the stage beside ASR, the person in the context and the trace -------------------------------------
class FakeAsr:
    name, version = "fake-asr", "1"

    def transcribe(self, samples, language):
        return AsrResult(SENTENCES[int(samples[-1])], 0.9, 0.0, "en", len(samples) / 16000)


class ListsNlu:
    name, version = "lists-nlu", "1"

    def parse(self, text, context=None):
        intent = "lists_query" if text.startswith("what") else "lists_createoradd"
        return NluResult(text, intent, 0.95, (Slot("list_name", "shopping"),), ((intent, 0.95),))


@pytest.fixture
def runner(tmp_path):
    registry.register("nlu", "lists-fake", lambda build: ListsNlu())
    s = load_settings()
    s = s.model_copy(
        update={
            "stages": ["speaker", "asr", "nlu", "respond"],
            "nlu": s.nlu.model_copy(update={"backend": "lists-fake"}),
        }
    )
    enc = FakeEncoder()
    ident = SpeakerIdentifier(enc, VoiceStore(tmp_path), threshold=0.8)
    r = Runner(s, DEFAULT_HOME, data_dir=tmp_path, backends={"asr": FakeAsr(), "speaker": ident})
    yield r
    r.close()
    registry.unregister("nlu", "lists-fake")


def test_two_enrolled_people_reach_their_own_lists_and_an_unknown_voice_the_shared_one(runner, tmp_path):
    ident = runner.speaker
    ident.store.enroll("alice", [_direction(1)], 3.0, "fake")
    ident.store.enroll("bob", [_direction(2)], 3.0, "fake")
    recs = {who: runner.run(Request.audio(voice(who, 10), now=NOW)) for who in ("alice", "bob", "stranger")}
    assert [recs[w].action["params"]["owner"] for w in ("alice", "bob", "stranger")] == ["alice", "bob", "shared"]
    assert recs["alice"].speaker["person"] == "alice" and recs["alice"].speaker["decision"] == "identified"
    assert recs["stranger"].speaker == {
        "person": None,
        "decision": "unknown",
        "score": recs["stranger"].speaker["score"],
        "candidate": recs["stranger"].speaker["candidate"],
        "threshold": 0.8,
    }
    assert "speaker" in recs["alice"].latency_ms and "speaker_wait" in recs["alice"].latency_ms
    # the trace: the turn belongs to the person; the speaker span holds the scores, never the voiceprint
    turn = runner.store.get_turn(recs["bob"].turn_id)
    assert turn["record"]["speaker"]["person"] == "bob"
    users = {t["turn_id"]: t["user_id"] for b in runner.store.iter_turn_batches(spans=False) for t in b}
    assert users[recs["alice"].turn_id] == "alice" and users[recs["stranger"].turn_id] == "default"
    assert len({recs[w].session_id for w in recs}) == 3  # each person's own conversation
    spans = {s["stage"]: s for s in turn["spans"]}
    assert spans["speaker"]["output"]["person"] == "bob" and "embedding" not in json.dumps(spans["speaker"])
    q = runner.run(Request.audio(voice("alice", 11), now=NOW))
    assert q.response_text == "Your shopping list has milk."
    q = runner.run(Request.audio(voice("stranger", 11), now=NOW))
    assert q.response_text == "The shared shopping list has milk."  # the stranger's own add, not alice's


def test_typed_requests_and_a_household_without_voices_skip_identification(runner):
    rec = runner.run(Request.audio(voice("alice", 10), now=NOW))  # nobody enrolled: the stage embeds nothing
    assert rec.speaker is None and runner.speaker.encoder.calls == 0 and rec.action["params"]["owner"] == "shared"
    rec = runner.run_text("add milk to my shopping list", now=NOW)
    assert rec.speaker is None and "speaker" not in rec.latency_ms
    runner.user_id = "carol"  # a session that names its user (a personal device): typed requests are carol's
    rec = runner.run_text("add milk to my shopping list", now=NOW)
    assert rec.speaker == {"person": "carol", "decision": "session"} and rec.action["params"]["owner"] == "carol"


def test_privacy_opt_out_deletes_the_voiceprint(tmp_path):
    from assistant.cli.main import main

    VoiceStore(tmp_path).enroll("alice", [_direction(1)], 3.0, "fake")
    VoiceStore(tmp_path).enroll("bob", [_direction(2)], 3.0, "fake")
    assert main(["privacy", "opt-out", "alice", "--data-dir", str(tmp_path), "--json"]) == 0
    assert VoiceStore(tmp_path).names() == ["bob"]


def test_learn_my_voice_by_voice_then_recognise_it(runner, tmp_path):
    run = lambda who, n: runner.run(Request.audio(voice(who, n), now=NOW))  # noqa: E731
    runner.speaker.store.enroll("bob", [_direction(2)], 3.0, "fake")
    assert run("alice", 25).response_text.startswith("I don't recognise your voice")
    assert run("alice", 20).response_text == "Sure. What's your name?"
    r = run("alice", 21)
    assert r.response_text.startswith("Thanks, Alice. I'll ask you to say 3 sentences. Please say: ")
    typed = runner.run_text("the quick brown fox jumps over the lazy dog", now=NOW)
    assert typed.response_text.startswith("I need to hear your voice for this.")  # a typed phrase has no voice
    assert typed.action["params"]["phrase"] == 1
    answers = [run("alice", 22).response_text for _ in range(3)]
    assert answers[0].startswith("Thanks. Please say: ") and answers[2].startswith("Thanks, Alice. I'll recognise")
    assert runner.speaker.store.voices()["alice"].utterances == 3
    assert not (tmp_path / "voices_pending.json").exists()  # phrase embeddings wait there only while enrolling
    assert run("alice", 25).response_text == "You're Alice (by your voice)."
    rec = run("alice", 10)
    assert rec.speaker["person"] == "alice" and rec.action["params"]["owner"] == "alice"
    # the trace never holds the embeddings: only decisions and scores
    for b in runner.store.iter_turn_batches():
        for t in b:
            assert "embedding" not in json.dumps(t, default=str)


def test_learning_a_voice_with_nobody_enrolled_embeds_the_phrases(runner):
    run = lambda who, n: runner.run(Request.audio(voice(who, n), now=NOW))  # noqa: E731
    assert run("alice", 25).response_text.startswith("I don't know who is speaking: nobody's voice is enrolled")
    assert runner.speaker.encoder.calls == 0
    run("alice", 20)
    run("alice", 21)
    for _ in range(3):
        run("alice", 22)
    # each phrase and its noisy copies (AUGMENT) are embedded
    assert runner.speaker.store.names() == ["alice"] and runner.speaker.encoder.calls == 3 * (1 + len(AUGMENT))
    assert runner.speaker.store.voices()["alice"].utterances == 3
    assert run("stranger", 10).action["params"]["owner"] == "shared"


def test_my_calendar_from_an_unknown_voice_asks_who_is_speaking(tmp_path):
    home = Home.example()
    r = _turn(tmp_path, home, "what's on my calendar", "calendar_query", None, "unknown")
    assert (
        r.action.name == "voice.who"
        and r.text.startswith("I don't recognise your voice")
        and "Who is speaking" in r.text
    )
    r = _turn(tmp_path, home, "what's on my calendar", "calendar_query", "alice", "identified")
    assert r.action.name != "voice.who"  # a named person gets whatever the calendar skill does (none yet: fallback)


def test_enrollment_adds_noisy_copies_of_each_recording(tmp_path):
    enc = FakeEncoder()
    ident = SpeakerIdentifier(enc, VoiceStore(tmp_path), threshold=0.8)
    x = voice("alice", 10)
    embs = ident.enrollment_embeddings(x)
    assert len(embs) == 1 + len(AUGMENT) and enc.calls == 1 + len(AUGMENT)
    noisy = with_noise(x, 15.0, "pink", seed=0)
    snr = 10 * np.log10(np.mean(x.astype(float) ** 2) / np.mean((noisy.astype(float) - x) ** 2))
    assert snr == pytest.approx(15.0, abs=0.3)
    assert len(SpeakerIdentifier(enc, VoiceStore(tmp_path), 0.8, augment=False).enrollment_embeddings(x)) == 1


def test_exports_name_no_person_only_pseudonyms(runner, tmp_path):
    from assistant.trace.export import iter_rows
    from assistant.trace.privacy import pseudonym

    runner.speaker.store.enroll("alice", [_direction(1)], 3.0, "fake")
    runner.speaker.store.enroll("bob", [_direction(2)], 3.0, "fake")
    rec = runner.run(Request.audio(voice("alice", 10), now=NOW))
    runner.run(Request.audio(voice("alice", 25), now=NOW))  # "who am I": a voice.who action naming her
    assert rec.action["params"]["owner"] == "alice"
    rows = [dict(zip(b, r)) for b in iter_rows(runner.store, tmp_path) for r in zip(*b.values())]
    text = json.dumps(rows, default=str).lower().replace("you're alice", "")  # free text stays as said
    assert "alice" not in text and '"bob"' not in text
    p = pseudonym(tmp_path, "alice")
    assert json.loads(rows[0]["action"])["params"]["owner"] == p and rows[0]["user_pseudonym"] == p
    speaker = next(s for s in json.loads(rows[0]["spans"]) if s["stage"] == "speaker")
    assert speaker["output"]["person"] == p and set(speaker["output"]["scores"]) == {p, pseudonym(tmp_path, "bob")}


def test_the_speaker_stage_starts_beside_the_speculative_decode(runner):
    runner.speaker.store.enroll("alice", [_direction(1)], 3.0, "fake")
    x = voice("alice", 10)
    spec = runner.speculate(x[:-1].tolist() + [10])  # the words said before a pause
    assert spec.speaker_job is not None
    spec.speaker_job.result(timeout=10)  # it runs in its thread while the speculative decode goes on
    assert runner.speaker.encoder.calls == 1
    from dataclasses import replace

    rec = runner.run(replace(Request.audio(x, now=NOW), speculation=spec))
    assert rec.speaker["person"] == "alice" and runner.speaker.encoder.calls == 1  # not embedded again
