"""The satellite brain against the real `wyoming-satellite` (PyPI 1.0.0, in its own venv `.venv-satellite` made by
scripts/setup.sh: it pins wyoming 1.4.1, the server uses 1.10.2). The satellite reads a virtual microphone (a
command that writes the speech, paced in real time, to stdout once the brain is connected, silence before and
after) and plays into a speaker command that appends to a file. "Hey Jarvis, turn on the kitchen light" spoken into
that microphone must turn the kitchen light on, and the answer must come out of the satellite's speaker."""

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

MIC = r"""
import sys, time, os
clip, trigger = sys.argv[1], sys.argv[2]
data = open(clip, "rb").read()
chunk = 2048  # 1024 samples, 64 ms
silence = bytes(chunk)
out = sys.stdout.buffer
t0 = time.monotonic()
n = 0
played = False
pos = 0
while True:
    if not played and os.path.exists(trigger) and pos == 0:
        played = True
    if played and pos < len(data):
        block = data[pos:pos + chunk].ljust(chunk, b"\0")
        pos += chunk
    else:
        block = silence
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


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_satellite_wake_word_command_turns_on_the_light_and_answers_through_its_speaker(make_pipeline, tmp_path):
    from test_wyoming import ServerThread

    from assistant.apps.wyoming.satellite import SatelliteLink
    from assistant.apps.wyoming.service import Service
    from assistant.simulate.voices import compose, piper_speech

    clip = compose([0.3, piper_speech("Hey Jarvis,"), 0.4, piper_speech("turn on the kitchen light."), 0.3])
    (tmp_path / "clip.raw").write_bytes(clip.astype(np.int16).tobytes())
    (tmp_path / "mic.py").write_text(MIC)
    trigger, speaker = tmp_path / "go", tmp_path / "speaker.raw"
    sat_port = free_port()
    cmd = [
        str(satellite_python()),
        "-m",
        "wyoming_satellite",
        "--name",
        "kitchen speaker",
        "--area",
        "kitchen",
        "--uri",
        f"tcp://127.0.0.1:{sat_port}",
        "--no-zeroconf",
        "--mic-command",
        shlex.join([sys.executable, str(tmp_path / "mic.py"), str(tmp_path / "clip.raw"), str(trigger)]),
        "--snd-command",
        shlex.join(["sh", "-c", f"cat >> {shlex.quote(str(speaker))}"]),
        "--snd-command-rate",
        "22050",
    ]
    log = open(tmp_path / "satellite.log", "wb")  # noqa: SIM115 - closed below
    sat = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    runner = make_pipeline()
    service = Service(runner)
    link = SatelliteLink(service, f"tcp://127.0.0.1:{sat_port}", reconnect_seconds=0.5)
    srv = ServerThread(service, f"tcp://127.0.0.1:{free_port()}", satellites=[link])
    try:
        assert runner.home.states()["kitchen.light"]["on"] is False
        wait_for(link.connected.is_set, 30, "the brain to connect to the satellite")
        assert link.device_id == "kitchen.speaker"  # found by the satellite's name among the home's satellites
        time.sleep(0.5)
        trigger.touch()  # the microphone now "hears" the request
        wait_for(lambda: runner.home.states()["kitchen.light"]["on"], 30, "the kitchen light to turn on")
        wait_for(lambda: runner.store.list_turns(limit=5), 10, "the turn's trace")  # written after the answer
        turns = runner.store.list_turns(limit=5)
        rec = runner.store.get_turn(turns[0]["turn_id"])["record"]
        assert rec["wake"]["detected"] and rec["wake"]["model"] == "hey_jarvis"
        assert rec["source"]["kind"] == "wyoming" and rec["source"]["service"] == "satellite"
        assert rec["source"]["device"] == "kitchen.speaker" and rec["source"]["satellite"] == "kitchen speaker"
        assert rec["action"]["target"] == "kitchen.light"
        # the answer reached the satellite's speaker: as much audio as Piper made for it, saying it
        answer = rec["response_text"]
        assert "kitchen light" in answer.lower()
        expected = piper_speech(answer)
        wait_for(
            lambda: speaker.exists() and speaker.stat().st_size >= 0.8 * len(expected) * 22050 / RATE * 2,
            20,
            "the answer's audio at the satellite's speaker",
        )
        time.sleep(1.0)
        played = np.frombuffer(speaker.read_bytes(), np.int16)
        import soxr

        at16 = np.clip(soxr.resample(played.astype(np.float32), 22050, RATE), -32768, 32767).astype(np.int16)
        heard = runner.asr.transcribe(at16, "en").text.lower()
        assert "kitchen light" in heard, heard
    finally:
        srv.close()
        service.close()
        sat.terminate()
        try:
            sat.wait(10)
        except subprocess.TimeoutExpired:
            sat.kill()
        log.close()
    assert "Traceback" not in (tmp_path / "satellite.log").read_text(), (tmp_path / "satellite.log").read_text()
