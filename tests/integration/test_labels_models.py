"""Goal labels with the real models: the counterfactual NLU re-runs (the pipeline's ONNX NLU), the learned rephrase
detector, and traces written by the real Runner from typed text and from synthesized audio (a false wake and a
request cut off at a pause go through the wake word, VAD and endpointer as a device records them: `replay_file`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from synth_traces import known_miss

from assistant.learning.labels.cases import CASES, write_case
from assistant.learning.labels.counterfactual import Counterfactuals
from assistant.learning.labels.features import view
from assistant.learning.labels.labeller import DEFAULT_MODEL_DIR, label_store
from assistant.learning.labels.report import defect_report
from assistant.simulate.voices import piper_speech_heard
from assistant.simulate.voices import spoken_words as _words
from assistant.trace.store import TraceStore

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "stage.json").is_file(), reason="models/labels not trained (assistant train labels)"
)


def _turn(text: str, intent: str, status: str) -> dict:
    return {
        "turn_id": text,
        "session_id": "s",
        "started_at": 0.0,
        "ended_at": 0.5,
        "record": {
            "transcript": text,
            "intent": intent,
            "intent_confidence": 0.6,
            "action": {"name": "x", "status": status},
        },
        "spans": [],
        "events": [],
    }


def test_nlu_on_the_repaired_transcript_blames_the_words() -> None:
    """ "Raise the lamp slide." put right with the words of the rephrase that worked is understood: ASR evidence."""
    cf = Counterfactuals()
    heard = view(_turn("Raise the lamp slide.", "iot_cover_open", "failed"))
    target = view(_turn("Raise the lamp's light.", "iot_hue_lightup", "done"))
    assert cf.parse("Raise the lamp's light.")[0] == "iot_hue_lightup"
    f = cf.features(heard, target)
    assert f["cf_has_target"] == 1.0 and f["cf_words_changed"] >= 1 and f["cf_repair_fixes"] == 1.0
    assert cf.runs >= 1


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=known_miss(n))
        for n in ["false-wake", "asr", "nlu", "entity", "endpointing", "result", "ok-then-new", "clarify"]
    ],
)
def test_hand_built_sessions_with_models(tmp_path: Path, name: str) -> None:
    store = TraceStore(tmp_path / "traces.db")
    ids = {c.name: write_case(store, c, t0=1_740_985_000.0 + 3600 * k) for k, c in enumerate(CASES)}
    res = label_store(store)  # rephrase detector (models/rephrase) and counterfactual NLU on
    assert res["counterfactual_nlu_runs"] >= 1
    case = next(c for c in CASES if c.name == name)
    labs = [store.get_goal_label(t) for t in ids[name]]
    assert len({lab["goal_id"] for lab in labs}) == len(case.goals)
    for i, lab in enumerate(labs):
        if i in case.defects:
            assert lab["failure_point"] == case.stage
        elif case.stage != "false_wake":
            assert lab["failure_point"] is None


def test_runner_traces_are_labelled(make_pipeline) -> None:
    """Typed requests through the real Runner: two requests that work, then a request for a room the home does
    not have (the lights of the "garage") given up on: labelled as separate goals, the working ones successful."""
    runner = make_pipeline(load_audio_stages=False)
    t = datetime(2025, 3, 3, 7, 0, 0)
    ok1 = runner.run_text("turn on the kitchen light", now=t)
    ok2 = runner.run_text("set a timer for ten minutes", now=t + timedelta(seconds=45))
    bad = runner.run_text("turn on the garage light", now=t + timedelta(seconds=95))
    store = runner.store
    res = label_store(store)
    assert res["turns"] == 3 and res["goals"] == 3
    g1, g2, g3 = (store.get_goal_label(getattr(r, "turn_id", None) or r["turn_id"]) for r in (ok1, ok2, bad))
    assert g1["goal_success"] >= 0.5 and g2["goal_success"] >= 0.5 and g1["failure_point"] is None
    assert g3["goal_success"] < g1["goal_success"]
    report = defect_report(store)
    assert report["turns"] == 3 and report["goals"] == 3


def test_asr_failure_from_synthesized_audio(make_pipeline, settings) -> None:
    """Synthesized speech through the real Runner (Whisper tiny): "raise the lamp's light" heard as "...lamp slide"
    twice (espeak-ng, then Piper), then a new request 40 s later. The truth, by the simulator's definition: the NLU
    understands the spoken text (checked here with the same pipeline), so the failure point is asr."""
    from assistant.simulate.voices import espeak_speech, piper_speech

    cfg = settings.model_copy(
        update={"stages": [s for s in settings.stages if s in ("asr", "nlu", "resolve", "respond")]}
    )
    runner = make_pipeline(config=cfg)
    t = datetime(2025, 3, 3, 7, 0, 0)
    turns = [
        runner.run_audio(espeak_speech("raise the lamp's light", "en-us+f3", 150, 35), now=t),
        runner.run_audio(piper_speech("raise the lamp's light"), now=t + timedelta(seconds=6)),
        runner.run_audio(piper_speech("turn on the kitchen light"), now=t + timedelta(seconds=50)),
    ]
    rec = [r if isinstance(r, dict) else r.__dict__ for r in turns]
    # Piper samples its voice afresh each time: now and then the second attempt is heard right, or heard as another
    # request that is carried out ("Where is the lamp slide?" -> the kitchen light's state), a silent failure
    for r in rec[:2]:
        if "slide" not in (r.get("transcript") or "").lower() or (r.get("action") or {}).get("status") == "done":
            pytest.skip(f"the ASR heard {r.get('transcript')!r} this time: not the failure this test is about")
    store = runner.store
    label_store(store)
    labs = [store.get_goal_label(r["turn_id"]) for r in rec]
    oracle = runner.run_text("raise the lamp's light", now=t + timedelta(hours=2))  # after labelling: not seen
    oracle = oracle if isinstance(oracle, dict) else oracle.__dict__
    assert oracle["intent"] != rec[0]["intent"]  # the words, not the understanding, were wrong
    seen = [(r.get("transcript"), r.get("intent"), r.get("action"), r.get("response_text")) for r in rec], labs
    assert labs[0]["goal_id"] == labs[1]["goal_id"] != labs[2]["goal_id"], seen
    assert labs[0]["goal_success"] < 0.5 <= labs[2]["goal_success"], seen
    assert labs[0]["failure_point"] == "asr" and labs[2]["failure_point"] is None, seen


# -- the wake word and endpointing stages, from synthesized audio through the device's path --------------------------
def _heard_right(runner, text: str) -> np.ndarray:
    """Piper speech of `text` that the pipeline's recogniser hears word for word; these tests are about the wake word
    and the endpointer, not the ear."""
    speech, heard = piper_speech_heard(runner.asr, text)
    if speech is None:
        pytest.skip(f"tiny.en never heard {text!r} word for word in 5 syntheses (last: {heard!r})")
    return speech


def _replay(runner, audio: np.ndarray, path: Path, start: datetime) -> list[dict]:
    """The audio as a microphone stream: openWakeWord and Silero VAD on every 80 ms frame, the endpointer deciding
    where each request starts and ends, each request a turn of the runner (what a device records)."""
    import soundfile as sf

    from assistant.apps.replay import replay_file
    from assistant.audio import PIPELINE_RATE

    sf.write(path, audio, PIPELINE_RATE)
    return [r if isinstance(r, dict) else r.__dict__ for r in replay_file(runner, path, start=start)]


def _cut_heard_right(runner, make_audio, words: str, path: Path) -> np.ndarray:
    """Audio (from `make_audio()`, synthesized afresh each call: at most 5) whose first request, cut out by the
    device's wake word, VAD and endpointer exactly as replay cuts it, the recogniser hears as `words`."""
    import soundfile as sf

    from assistant import audio as audio_io
    from assistant.apps.replay import segment

    heard = ""
    for _ in range(5):
        audio = make_audio()
        sf.write(path, audio, audio_io.PIPELINE_RATE)
        first = next(segment(runner, audio_io.stream_file(path), str(path)), None)
        if first is None or first.samples is None:
            heard = "(no request)"
            continue
        heard = runner.asr.transcribe(first.samples, runner.settings.asr.language).text
        if _words(heard) == _words(words):
            return audio
    pytest.skip(f"tiny.en never heard the cut-off request as {words!r} in 5 syntheses (last: {heard!r})")


def _seen(recs: list[dict]) -> list:
    return [
        (r["wake"].get("score"), r.get("transcript"), r.get("intent"), (r.get("action") or {}).get("status"))
        for r in recs
    ]


def test_endpointing_failure_from_synthesized_audio(make_pipeline, tmp_path) -> None:
    """ "Hey Jarvis, turn on the lights in ... the bedroom": the pause (1.2 s) is longer than the endpointer's end
    silence (0.5 s), so the request ends at "in" and the kitchen light goes on; the user says it again in full
    4 s later (the bedroom light goes on), and asks the time 40 s after that. Truth, by the simulator's definition: a
    turn cut off at a pause that then failed has failure point endpointing; the two attempts are one goal, which
    succeeded; the question is a goal of its own."""
    from assistant.simulate.voices import compose, piper_speech

    runner = make_pipeline()  # the shipped pipeline.yaml: wake, vad, asr ... tts
    # (a sentence-final "the" is mostly heard as "there" by tiny.en: "in" is what it hears as said, 7 times in 8)
    cut, full = "turn on the lights in", "turn on the lights in the bedroom."
    wake = piper_speech("Hey Jarvis,")
    rest = [piper_speech("the bedroom."), 4.0, wake, 0.4, _heard_right(runner, full), 40.0]
    rest += [wake, 0.4, _heard_right(runner, "what time is it?"), 2.0]
    said: list[np.ndarray] = []

    def session() -> np.ndarray:  # the user's words up to the pause are synthesized afresh each time
        said[:] = [piper_speech(cut)]
        return compose([0.5, wake, 0.4, said[0], 1.2, *rest])

    path = tmp_path / "paused.wav"
    audio = _cut_heard_right(runner, session, cut, path)
    resumed_at = (len(wake) + len(said[0])) / 16000 + 0.5 + 0.4 + 1.2  # when "the bedroom" begins
    recs = _replay(runner, audio, path, datetime(2025, 3, 3, 7, 0, 0))
    assert [r["wake"].get("model") for r in recs] == ["hey_jarvis"] * 3, _seen(recs)
    first, again, other = recs
    assert _words(first["transcript"]) == _words(cut), _seen(recs)  # the same cut as `_cut_heard_right` decoded
    assert first["source"]["endpoint"] == "endpoint" and first["source"]["end_seconds"] < resumed_at  # at the pause
    assert first["action"]["target"] != "bedroom.light", first["action"]  # the words after the pause never arrived
    assert again["action"]["target"] == "bedroom.light" and again["action"]["status"] == "done", _seen(recs)
    store = runner.store
    # The device heard the user go on ("the bedroom") right after the endpoint, and recorded it on the cut turn only
    after = [[e for e in store.get_turn(r["turn_id"])["events"] if e["type"] == "speech-after-endpoint"] for r in recs]
    assert [len(a) for a in after] == [1, 0, 0], after
    gap_ms = (resumed_at - first["source"]["end_seconds"]) * 1000
    assert abs(after[0][0]["data"]["offset_ms"] - gap_ms) <= 250, (after, gap_ms)
    res = label_store(store)
    assert res["turns"] == 3
    a, b, c = (store.get_goal_label(r["turn_id"]) for r in recs)
    assert a["goal_id"] == b["goal_id"] != c["goal_id"]
    assert a["goal_success"] >= 0.5 and c["goal_success"] >= 0.5
    assert a["failure_point"] == "endpointing", a
    assert b["failure_point"] is None and c["failure_point"] is None


# The simulator's TV voice and noise (assistant/simulate/run.py `_false_wake`: espeak-ng en-gb-x-rp at 160 wpm, pink
# noise at 20 dB SNR). Neither is sampled, so this audio, its wake scores and its transcript are the same every run.
# openWakeWord's hey_jarvis takes "Hey, Charlie," in that voice for its wake word (first frame over the threshold:
# 0.50 to 0.60 across the simulator's TV lines); "Hey Jarvis" said on TV would be no false wake of the model.
@known_miss("tv-false-wake")
def test_false_wake_from_synthesized_tv_speech(make_pipeline, settings, tmp_path) -> None:
    """A TV drama in the living room: "Welcome back to the show everybody. Hey, Charlie, she said she would call him
    first thing tomorrow." The real wake model fires on "Hey, Charlie", the endpointer takes the rest of the line for
    a request and the pipeline answers it; nobody follows up (no "stop": nobody was talking to it). 40 minutes later
    someone turns on the kitchen light. Truth: the TV turn is a false wake (a goal that never succeeds), the request a
    successful goal of its own."""
    from assistant.simulate.voices import add_colored_noise, compose, espeak_speech, piper_speech

    def tv(text: str) -> np.ndarray:
        return espeak_speech(text, "en-gb-x-rp", 160, 50)

    # openWakeWord alone: it fires on "Hey, Charlie"; the default cascade does not (its microWakeWord never proposes
    # it), and this test is about labelling a false wake, not about causing one.
    oww = settings.model_copy(update={"wake": settings.wake.model_copy(update={"backend": "openwakeword"})})
    runner = make_pipeline(config=oww)
    line = "she said she would call him first thing tomorrow"
    show = compose([1.0, tv("Welcome back to the show everybody."), 0.5, tv(f"Hey, Charlie, {line}."), 3.0])
    recs = _replay(runner, add_colored_noise(show, 20.0, "pink"), tmp_path / "tv.wav", datetime(2025, 3, 3, 20, 30))
    if not recs:
        pytest.skip("the wake model did not take the TV's 'Hey, Charlie' for 'hey jarvis': no false wake to label")
    assert len(recs) == 1, _seen(recs)
    fw = recs[0]
    assert fw["wake"]["detected"] and fw["wake"]["model"] == "hey_jarvis"
    assert "first thing tomorrow" in _words(fw["transcript"]), _seen(recs)  # the TV line became the request
    wake = piper_speech("Hey Jarvis,")
    request = compose([0.5, wake, 0.4, _heard_right(runner, "turn on the kitchen light."), 2.0])
    recs += _replay(runner, request, tmp_path / "request.wav", datetime(2025, 3, 3, 21, 10))
    assert len(recs) == 2 and recs[1]["action"]["status"] == "done", _seen(recs)
    store = runner.store
    label_store(store)
    f, ok = (store.get_goal_label(r["turn_id"]) for r in recs)
    assert f["goal_id"] != ok["goal_id"]
    assert f["failure_point"] == "false_wake", (f, fw["wake"])
    assert f["goal_success"] < 0.5 <= ok["goal_success"]
    assert ok["failure_point"] is None


def test_the_bundled_demo_requests_are_goals_of_their_own_that_succeeded(make_pipeline, tmp_path) -> None:
    """`scripts/demo.sh` as a new user runs it: the bundled recordings (two sessions of everyday requests, each
    0-2 s after the last answer), replayed through wake word, VAD and endpointer. The labeller once made them one
    failed goal with five defective turns (its simulator only started a new request 5-20 s after an answer, so a quick
    one looked like a retry). Each request that was carried out is its own goal, succeeded, not defective. "Open the
    garage door" asks to confirm and the next request is no answer to it: the door stays shut, so that goal (and
    whether the request after it joins it) is left to the labeller."""
    import assistant
    from assistant.apps.replay import replay_file

    runner = make_pipeline()
    demo = Path(assistant.__file__).parent / "data" / "demo"
    recs = []
    start = datetime(2025, 3, 3, 7, 0, 0)
    for i, path in enumerate(sorted(demo.glob("*.flac"))):
        got = replay_file(runner, path, start=start + timedelta(hours=10 * i))
        recs += [r if isinstance(r, dict) else r.__dict__ for r in got]
    heard = [r.get("transcript") for r in recs]
    status = [(r.get("action") or {}).get("status") for r in recs]
    assert len(recs) == 6 and status.count("clarify") == 1 and status.count("done") == 4, list(zip(heard, status))
    res = label_store(runner.store)
    assert res["turns"] == 6 and res["goals"] >= 5, res
    labels = [runner.store.get_goal_label(r["turn_id"]) for r in recs]
    done = [(h, g) for h, g, s in zip(heard, labels, status) if s == "done"]
    for h, g in done:
        assert sum(x["goal_id"] == g["goal_id"] for x in labels) == 1, (h, [x["goal_id"] for x in labels])
        assert g["goal_success"] >= 0.5 and g["defect"] < 0.5 and g["failure_point"] is None, (h, g)
