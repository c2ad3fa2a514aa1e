"""Speaker identification on the real encoder (models/speaker, onnxruntime): real recordings, synthesized voices
through the whole pipeline (ASR, NLU, skills), and the ONNX export against resemblyzer's own torch model."""

from __future__ import annotations

import numpy as np
import pytest

from assistant import audio as audio_io
from assistant.core.request import Request
from assistant.simulate.voices import compose, espeak_speech, piper_speech
from assistant.skills.store import connect

# espeak-ng variants far enough apart for this encoder (see docs/speakers.md); Piper's joe is the stranger
ALICE, BOB = "en+f2", "en+m1"
ENROLL = [
    "turn on the kitchen light please",
    "what is the weather like tomorrow morning",
    "set a timer for ten minutes",
]


@pytest.fixture(scope="module")
def encoder():
    from assistant.backends.speaker.resemblyzer_onnx import ResemblyzerOnnx

    return ResemblyzerOnnx()


def test_real_recordings_same_speaker_scores_above_the_threshold_and_others_below(encoder, speech_dir, settings):
    asr = speech_dir / "arm_ml_eval_kit/resources/asr/samples"
    embed = lambda p: encoder.embed(audio_io.read_file(p))  # noqa: E731
    libri = embed(asr / "testing_routine.wav") + embed(asr / "another_engineer.wav")
    libri /= np.linalg.norm(libri)
    same = float(embed(asr / "i_tell_you.wav") @ libri)  # LibriSpeech speaker 251 again
    other = float(embed(asr / "another_door.wav") @ libri)  # LibriSpeech speaker 3536
    jfk = float(embed(speech_dir / "whisper/jfk.flac") @ libri)
    assert same >= settings.speaker.threshold > max(other, jfk), (same, other, jfk)


def test_two_enrolled_people_reach_their_own_lists_and_an_unknown_voice_the_shared_one(make_pipeline, tmp_path):
    from assistant.speakers.enroll import enroll_files

    p = make_pipeline()
    assert p.speaker is not None  # in pipeline.yaml's stages
    for name, v in (("alice", ALICE), ("bob", BOB)):
        files = []
        for i, text in enumerate(ENROLL):
            f = tmp_path / f"{name}{i}.wav"
            audio_io.write_wav(f, espeak_speech(text, v), 16000)
            files.append(f)
        enroll_files(p.speaker, name, files)
    request = "please add milk to my shopping list"  # a bare "add milk ..." is often heard as "and milk ..."
    recs = {
        "alice": p.run(Request.audio(compose([0.3, espeak_speech(request, ALICE), 0.5]))),
        "bob": p.run(Request.audio(compose([0.3, espeak_speech(request, BOB), 0.5]))),
        "stranger": p.run(Request.audio(compose([0.3, piper_speech(request), 0.5]))),
    }
    for who, rec in recs.items():
        assert rec.intent == "lists_createoradd" and rec.action["status"] == "done", (who, rec.transcript, rec.error)
    assert recs["alice"].speaker["person"] == "alice" and recs["bob"].speaker["person"] == "bob"
    assert recs["stranger"].speaker["decision"] == "unknown" and recs["stranger"].speaker["person"] is None
    with connect(p.data_dir) as db:
        owners = sorted((r["owner"], r["item"]) for r in db.execute("SELECT owner, item FROM list_items"))
    assert owners == [("", "milk"), ("alice", "milk"), ("bob", "milk")]
    assert recs["stranger"].response_text == "Added milk to the shared shopping list."
    # the speaker stage ran beside ASR: the turn waited for it far less than it cost
    lat = recs["alice"].latency_ms
    assert lat["speaker"] > 0 and lat["speaker_wait"] < lat["speaker"] + 5
    cal = p.run(Request.audio(compose([0.3, piper_speech("what's on my calendar today"), 0.5])))
    assert cal.intent.startswith("calendar") and "Who is speaking?" in cal.response_text, cal.response_text
    spans = {s["stage"]: s for s in p.store.get_turn(recs["bob"].turn_id)["spans"]}
    assert (
        spans["speaker"]["output"]["person"] == "bob" and spans["speaker"]["confidence"] >= p.settings.speaker.threshold
    )


def test_the_onnx_export_matches_resemblyzers_torch_model(encoder, speech_dir):
    """Runs where the train extra is installed (torch, resemblyzer): same input waveform, cosine > 0.99."""
    resemblyzer = pytest.importorskip("resemblyzer")
    torch_encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    for f in (
        speech_dir / "whisper/jfk.flac",
        speech_dir / "arm_ml_eval_kit/resources/asr/samples/i_tell_you.wav",
        speech_dir / "voice2json/what_time_is_it.wav",
    ):
        wav = resemblyzer.preprocess_wav(f)
        ref = torch_encoder.embed_utterance(wav)
        assert float(ref @ encoder.embed_preprocessed(wav)) > 0.99, f


def test_learn_my_voice_by_voice_then_my_list_is_mine(make_pipeline):
    from assistant.skills.voices import PHRASES

    p = make_pipeline()
    say = lambda text, v=ALICE: p.run(Request.audio(compose([0.3, espeak_speech(text, v), 0.5])))  # noqa: E731
    assert say("please learn my voice").response_text == "Sure. What's your name?"
    assert say("my name is alice").expects_reply
    answers = [say(t).response_text for t in PHRASES]
    assert answers[-1].endswith("I'll recognise your voice from now on."), answers
    (name,) = p.speaker.store.names()  # whatever the recogniser heard as the name
    rec = say("please add milk to my shopping list")
    assert rec.speaker["person"] == name and rec.action["params"]["owner"] == name
    assert say("please add milk to my shopping list", BOB).action["params"]["owner"] == "shared"


def test_the_simulator_identifies_its_members_instead_of_assuming_them(make_pipeline, settings, tmp_path):
    import json

    from assistant.simulate.run import SimConfig, simulate
    from assistant.speakers.voices import VoiceStore

    cfg = SimConfig(households=1, days=1, seed=0, max_turns=6, feedback_rate=0.0, member_users=True)
    cfg.identify_speakers = True
    simulate(settings, tmp_path / "run", cfg, cache_dir=tmp_path / "cache")
    rows = [json.loads(line) for line in (tmp_path / "run" / "sim_truth.jsonl").read_text().splitlines()]
    (hh,) = {r["household"] for r in rows}
    enrolled = VoiceStore(tmp_path / "run" / "households" / hh).names()
    spoken = [r for r in rows if r.get("member")]
    assert spoken and {f"{hh}-{r['member']}" for r in spoken} <= set(enrolled)
    for r in spoken:  # the stage decided; the truth keeps who really spoke beside it
        assert (
            r["speaker"]["decision"] in ("identified", "unknown")
            and r["speaker"]["threshold"] == settings.speaker.threshold
        )
        assert r["speaker"]["person"] in (None, *enrolled)
