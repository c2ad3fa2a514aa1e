"""The satellite brain against the real `wyoming-satellite` (PyPI 1.0.0, in its own venv `.venv-satellite` made by
scripts/setup.sh: it pins wyoming 1.4.1, the server uses 1.10.2), two satellites at once.

Each satellite reads a virtual microphone: a command that writes 16 kHz PCM to stdout paced in real time, silence
until the test drops a numbered file naming a clip, then that clip, then silence again. It plays into a speaker
command that appends to a file. Spoken into those microphones: "Hey Jarvis, turn on the kitchen light" must turn it
on and the answer must come out of that satellite's speaker; the other satellite's "turn on the light here" acts on
its own room; a question ("For how long?") is answered without the wake word; the wake word while the assistant
speaks interrupts the answer; the rest of a sentence cut at a pause is recorded on its turn."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assistant import audio as audio_io

REPO = Path(__file__).resolve().parents[2]
RATE = audio_io.PIPELINE_RATE
SND_RATE = 22050

MIC = r"""
import os, sys, time
folder = sys.argv[1]
chunk = 2048  # 1024 samples: 64 ms
out = sys.stdout.buffer
t0, n, nxt, data, pos = time.monotonic(), 0, 1, b"", 0
while True:
    if pos >= len(data) and os.path.exists(os.path.join(folder, str(nxt))):
        data = open(open(os.path.join(folder, str(nxt))).read().strip(), "rb").read()
        pos, nxt = 0, nxt + 1
    block = data[pos:pos + chunk].ljust(chunk, b"\0") if pos < len(data) else bytes(chunk)
    pos += chunk
    out.write(block)
    out.flush()
    n += 1
    time.sleep(max(0.0, t0 + n * 0.064 - time.monotonic()))
"""


def satellite_python() -> Path:
    """The satellite's own venv (scripts/setup.sh makes it with the test extra); $WYOMING_SATELLITE_PYTHON wins."""
    env = os.environ.get("WYOMING_SATELLITE_PYTHON")
    for candidate in ([Path(env)] if env else []) + [REPO / ".venv-satellite" / "bin" / "python"]:
        if candidate.exists():
            return candidate
    pytest.fail("wyoming-satellite is not installed: run scripts/setup.sh (it makes .venv-satellite)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, detail=None) -> None:
    """Until `predicate()`; on a timeout the message carries `detail()` (what the turns were) to debug from CI."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


class Satellite:
    """A wyoming-satellite process with a file-fed microphone and a file speaker."""

    def __init__(self, folder: Path, name: str, area: str) -> None:
        folder.mkdir()
        self.folder, self.said = folder, 0
        (folder / "mic.py").write_text(MIC)
        self.speaker = folder / "speaker.raw"
        self.port = free_port()
        mic = shlex.join([sys.executable, str(folder / "mic.py"), str(folder)])
        snd = shlex.join(["sh", "-c", f"cat >> {shlex.quote(str(self.speaker))}"])
        cmd = [str(satellite_python()), "-m", "wyoming_satellite", "--name", name, "--area", area, "--no-zeroconf"]
        cmd += ["--uri", f"tcp://127.0.0.1:{self.port}", "--mic-command", mic, "--snd-command", snd]
        cmd += ["--snd-command-rate", str(SND_RATE)]
        self.log = open(folder / "satellite.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def say(self, audio: np.ndarray) -> None:
        self.said += 1
        clip = self.folder / f"clip{self.said}.raw"
        clip.write_bytes(audio.astype(np.int16).tobytes())
        (self.folder / f"{self.said}.tmp").write_text(str(clip))
        (self.folder / f"{self.said}.tmp").rename(self.folder / str(self.said))

    def wait_quiet(self, quiet: float = 0.6, timeout: float = 20.0) -> None:
        """Until nothing more has reached the speaker for `quiet` seconds (the answer has been played)."""
        deadline, last, since = time.monotonic() + timeout, -1.0, time.monotonic()
        while time.monotonic() < deadline:
            now = self.played_seconds()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)
        raise AssertionError("the speaker kept playing")

    def played_seconds(self) -> float:
        return self.speaker.stat().st_size / 2 / SND_RATE if self.speaker.exists() else 0.0

    def played(self) -> np.ndarray:
        import soxr

        audio = np.frombuffer(self.speaker.read_bytes(), np.int16).astype(np.float32)
        return np.clip(soxr.resample(audio, SND_RATE, RATE), -32768, 32767).astype(np.int16)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        return (self.folder / "satellite.log").read_text()


# Two causes of the intermittent failures, found in session 8 (10 runs, 4 failed, 2 of each): Piper samples its
# voice afresh on every call (no two syntheses are alike), and in 2 runs tiny.en heard "turn on the light here" as
# "turn on the white here"; so each request is synthesized until the recogniser hears its words (`clear_speech`): this
# test is about the satellite path, not the ear. And on a loaded machine the frame thread falls seconds behind the
# microphone, so the barge-in comes late (7.96 s into an 8.28 s answer, beside a soak and two trainings); the reruns
# are for that.
@pytest.mark.flaky(reruns=2, reruns_delay=2)
def test_two_satellites_wake_word_follow_up_and_barge_in(make_pipeline, tmp_path):
    from test_wyoming import ServerThread

    from assistant.apps.wyoming.satellite import SatelliteLink
    from assistant.apps.wyoming.service import Service
    from assistant.simulate.voices import compose, piper_speech, piper_speech_heard

    kitchen = Satellite(tmp_path / "kitchen", "kitchen speaker", "kitchen")
    bedroom = Satellite(tmp_path / "bedroom", "Bedroom Pi", "upstairs")
    runner = make_pipeline()
    service = Service(runner)
    links = [
        SatelliteLink(service, f"tcp://127.0.0.1:{kitchen.port}", reconnect_seconds=0.5),
        SatelliteLink(service, f"tcp://127.0.0.1:{bedroom.port}", "bedroom.speaker", reconnect_seconds=0.5),
    ]
    srv = ServerThread(service, f"tcp://127.0.0.1:{free_port()}", satellites=links)
    store = runner.store

    def turns() -> list[dict]:  # oldest first
        return [store.get_turn(t["turn_id"]) for t in reversed(store.list_turns(limit=50))]

    def records() -> list[dict]:
        return [t["record"] for t in turns()]

    def states():
        return runner.home.states()

    def clear_speech(text: str) -> np.ndarray:
        """Piper speech of `text` that the pipeline's recogniser hears word for word (at most 5 syntheses)."""
        speech, heard = piper_speech_heard(runner.asr, text)
        assert speech is not None, f"tiny.en never heard {text!r} right in 5 syntheses (last: {heard!r})"
        return speech

    def seen() -> list:  # what each turn heard and did, for a timeout's message
        return [
            (r["source"].get("device"), r.get("transcript"), r.get("intent"), r.get("action"), r.get("error"))
            for r in records()
        ]

    try:
        assert not states()["kitchen.light"]["on"] and not states()["bedroom.light"]["on"]
        wait_for(lambda: all(link.connected.is_set() for link in links), 30, "the brain to connect to both satellites")
        assert links[0].device_id == "kitchen.speaker"  # found by the satellite's name among the home's satellites
        assert links[1].device_id == "bedroom.speaker"  # given as bedroom.speaker@URI
        time.sleep(0.3)

        # 1. both satellites at once, each acting as its own device
        kitchen.say(compose([0.3, piper_speech("Hey Jarvis,"), 0.4, clear_speech("turn on the kitchen light."), 0.3]))
        bedroom.say(compose([0.3, piper_speech("Hey Jarvis,"), 0.4, clear_speech("turn on the light here."), 0.3]))
        both_on = lambda: states()["kitchen.light"]["on"] and states()["bedroom.light"]["on"]  # noqa: E731
        wait_for(both_on, 30, "both lights on", seen)
        wait_for(lambda: len(records()) >= 2, 10, "both turns traced")
        by_device = {r["source"]["device"]: r for r in records()}
        k, b = by_device["kitchen.speaker"], by_device["bedroom.speaker"]
        assert k["wake"]["detected"] and k["wake"]["model"] == "hey_jarvis"
        assert k["source"]["kind"] == "wyoming" and k["source"]["service"] == "satellite"
        assert k["source"]["satellite"] == "kitchen speaker" and k["action"]["target"] == "kitchen.light"
        assert b["action"]["target"] == "bedroom.light" and b["source"]["satellite"] == "Bedroom Pi"
        assert k["session_id"] != b["session_id"]
        # the answers reached each satellite's own speaker, saying what was done
        for sat, rec in ((kitchen, k), (bedroom, b)):
            full = len(piper_speech(rec["response_text"])) / RATE
            wait_for(lambda sat=sat, full=full: sat.played_seconds() >= 0.8 * full, 20, "the answer at the speaker")
        kitchen.wait_quiet()
        bedroom.wait_quiet()
        assert "kitchen light" in runner.asr.transcribe(kitchen.played(), "en").text.lower()
        assert "bedroom light" in runner.asr.transcribe(bedroom.played(), "en").text.lower()

        # 2. a question, answered without the wake word (follow-up)
        n = len(records())
        before = kitchen.played_seconds()
        kitchen.say(compose([0.3, piper_speech("Hey Jarvis,"), 0.4, clear_speech("set a timer."), 0.3]))
        wait_for(lambda: len(records()) > n, 30, "the timer question")
        asked = records()[-1]
        assert asked["expects_reply"] and asked["response_text"] == "For how long?", asked
        wait_for(lambda: kitchen.played_seconds() > before + 0.5, 10, "the question at the speaker")
        time.sleep(1.0)  # the question has been played; the assistant now listens without the wake word
        kitchen.say(compose([clear_speech("Five minutes."), 0.3]))
        wait_for(lambda: len(records()) > n + 1, 30, "the follow-up answer")
        follow = records()[-1]
        assert follow["wake"].get("follow_up") and not follow["wake"]["detected"], follow["wake"]
        assert follow["source"]["follow_up"] is True and follow["session_id"] == asked["session_id"]
        assert follow["intent"] == "timer_set" and follow["action"]["status"] == "done", follow

        # 3. barge-in: the wake word while a long answer plays cuts it short, and the new request is carried out
        kitchen.wait_quiet()  # the confirmation has been played
        n = len(records())
        before = kitchen.played_seconds()
        kitchen.say(compose([0.3, piper_speech("Hey Jarvis,"), 0.4, clear_speech("turn on all the lights."), 0.3]))
        wait_for(lambda: len(records()) > n, 30, "the long answer's turn")
        long_turn = records()[-1]
        full = len(piper_speech(long_turn["response_text"])) / RATE
        assert full > 5.0, long_turn["response_text"]
        wait_for(lambda: kitchen.played_seconds() > before + 0.8, 10, "the long answer to start playing")
        kitchen.say(compose([piper_speech("Hey Jarvis,"), 0.4, clear_speech("turn off the kitchen light."), 0.3]))
        wait_for(lambda: not states()["kitchen.light"]["on"], 30, "the kitchen light off after the barge-in")
        wait_for(lambda: len(records()) > n + 1, 10, "the barge-in request traced")
        long_trace = store.get_turn(long_turn["turn_id"])
        barge = [e for e in long_trace["events"] if e["type"] == "barge-in"]
        assert barge and barge[0]["data"]["reason"] == "wake", long_trace["events"]
        assert records()[-1]["wake"].get("barge_in") is True

        played_of_long = barge[0]["data"]["offset_ms"] / 1000
        assert played_of_long < full - 2.0, (played_of_long, full)
        new_answer = len(piper_speech(records()[-1]["response_text"])) / RATE
        wait_for(
            lambda: kitchen.played_seconds() - before >= played_of_long + 0.8 * new_answer, 15, "the new answer played"
        )
        kitchen.wait_quiet()
        # what reached the speaker since: the cut answer and the short new one, less than the long answer alone
        assert kitchen.played_seconds() - before < full, (kitchen.played_seconds() - before, full)

        # 4. speech right after the endpoint: "turn on the lights in ... the bedroom" is ended at the pause, and the
        # rest of the sentence is recorded on that turn (`speech-after-endpoint`); the earlier requests have none
        bedroom.wait_quiet()
        n = len(records())
        bedroom.say(
            compose([0.3, piper_speech("Hey Jarvis,"), 0.4, piper_speech("turn on the lights in"), 1.0,
                     piper_speech("the bedroom."), 2.0])
        )  # fmt: skip
        wait_for(lambda: len(records()) > n, 30, "the cut-off turn", seen)
        cut = records()[n]
        assert cut["source"]["device"] == "bedroom.speaker"
        wait_for(
            lambda: any(e["type"] == "speech-after-endpoint" for e in store.get_turn(cut["turn_id"])["events"]),
            20,
            "the speech after the endpoint on the cut-off turn",
            lambda: store.get_turn(cut["turn_id"])["events"],
        )
        after = [e for e in store.get_turn(cut["turn_id"])["events"] if e["type"] == "speech-after-endpoint"]
        assert len(after) == 1 and 0 <= after[0]["data"]["offset_ms"] <= 1500, after
        assert after[0]["data"]["source"] == "satellite"
        assert not any(e["type"] == "speech-after-endpoint" for e in store.get_turn(b["turn_id"])["events"])
        # the satellites saw nothing go wrong (read before shutdown: closing a connection the satellite still
        # streams into resets it, which wyoming 1.4.1's server logs as an unretrieved task exception)
        for sat in (kitchen, bedroom):
            log = (sat.folder / "satellite.log").read_text()
            assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        srv.close()
        service.close()
        kitchen.stop()
        bedroom.stop()
