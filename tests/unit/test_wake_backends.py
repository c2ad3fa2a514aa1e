"""Wake word backends without models: the microWakeWord score calibration, the registry entry, and the bench's
false-wake counting rules (reset and refractory time, as the live loop applies them)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from assistant.audio import FRAME_SAMPLES, PIPELINE_RATE
from assistant.backends.wake.microwakeword import CUTOFF_SCORE, calibrate
from assistant.bench.wake import count_wakes, quiet_room
from assistant.core import registry


@pytest.mark.parametrize("cutoff", [0.85, 0.9, 0.97])
def test_a_models_own_cutoff_lands_on_the_pipeline_threshold(cutoff):
    assert calibrate(cutoff, cutoff) == pytest.approx(CUTOFF_SCORE)
    assert calibrate(0.0, cutoff) == 0.0 and calibrate(1.0, cutoff) == pytest.approx(1.0)
    # below the model's cutoff never wakes at threshold 0.5; above always does
    assert calibrate(cutoff - 0.01, cutoff) < 0.5 < calibrate(cutoff + 0.005, cutoff)
    probs = np.linspace(0, 1, 101)
    scores = [calibrate(p, cutoff) for p in probs]
    assert all(b >= a for a, b in itertools.pairwise(scores))


def test_calibration_clamps_out_of_range_probabilities():
    assert calibrate(-0.2, 0.9) == 0.0 and calibrate(1.3, 0.9) == pytest.approx(1.0)


def test_the_wake_backends_are_registered():
    assert {"openwakeword", "microwakeword", "cascade"} <= set(registry.available("wake"))


class _Scripted:
    """A fake detector whose score rises for a few frames at given frame indexes; counts resets."""

    def __init__(self, peaks: dict[int, float]) -> None:
        self.peaks, self.i, self.resets = peaks, 0, 0

    def process(self, frame):
        self.i += 1
        return {"alexa": self.peaks.get(self.i, 0.0), "hey_jarvis": 0.1}

    def reset(self):
        self.resets += 1


def test_false_wakes_follow_the_live_loops_refractory_time():
    frames_per_s = PIPELINE_RATE / FRAME_SAMPLES  # 12.5
    audio = np.zeros(FRAME_SAMPLES * 200, np.int16)  # 16 s
    # a peak at frame 10, its tail at 11-12 (inside 2 s refractory), another at frame 100 (8 s)
    det = _Scripted({10: 0.9, 11: 0.8, 12: 0.7, 100: 0.6, 101: 0.4})
    wakes = count_wakes(det, audio, threshold=0.5, refractory_s=2.0)
    assert [(round(t * frames_per_s), m) for t, m, _ in wakes] == [(10, "alexa"), (100, "alexa")]
    assert det.resets == 1 + 2  # before the stream and after each wake
    # without refractory time the tail counts again
    assert len(count_wakes(_Scripted({10: 0.9, 11: 0.8}), audio, 0.5, 0.0)) == 2


def test_quiet_room_is_quiet_but_not_digital_silence():
    x = quiet_room(2.0, dbfs=-60.0).astype(np.float64)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(x**2)) / 32768)
    assert -61.0 < rms_dbfs < -59.0 and np.count_nonzero(x) > 0.9 * len(x)


def test_the_model_self_check_judges_both_wake_backends():
    from types import SimpleNamespace

    from assistant import models_check

    assert models_check._checkable("wake", SimpleNamespace(name="microwakeword"))
    assert models_check._checkable("wake", SimpleNamespace(name="openwakeword"))
    assert models_check._checkable("wake", SimpleNamespace(name="cascade"))
    assert not models_check._checkable("wake", SimpleNamespace(name="plug-in"))


def test_energy_gate_does_no_work_in_a_quiet_room_and_catches_up_when_sound_starts():
    from assistant.backends.wake.gate import EnergyGate

    gate = EnergyGate(-50.0, hold=30)
    quiet = [quiet_room(0.08, dbfs=-60.0, seed=i)[:FRAME_SAMPLES] for i in range(100)]
    assert all(gate.admit(f) == [] for f in quiet) and gate.closed
    loud = (quiet_room(0.08, dbfs=-25.0)[:FRAME_SAMPLES]).astype(np.int16)
    out = gate.admit(loud)
    # the last 30 quiet frames first (the detector's windows see the same recent audio), then the loud one
    assert len(out) == 31 and out[-1] is loud and all(a is b for a, b in zip(out[:-1], quiet[-30:], strict=True))
    # it stays open for 2.4 s of quiet after the sound (the detector finishes the word), then closes again
    assert all(len(gate.admit(f)) == 1 for f in quiet[:29])
    assert gate.admit(quiet[29]) == [] and gate.closed
