"""The unit tier runs no model: every model runtime raises here, so a test that needs one belongs in
tests/integration/ (and fails loudly if it lands in this folder)."""

from __future__ import annotations

import subprocess

import pytest

_MESSAGE = "unit tier: no models here (move the test to tests/integration/)"


def _refuse(*_a, **_k):
    raise RuntimeError(_MESSAGE)


@pytest.fixture(autouse=True, scope="module")
def _no_models():
    """Module scope, so it is in place before any module- or session-scoped fixture of a unit test loads a model.
    (Run the unit tier on its own, as scripts/test.sh does: models loaded earlier by other tests would slip by.)"""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _guard(monkeypatch)


def _guard(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "InferenceSession", _refuse)
    for module, name in (
        ("faster_whisper", "WhisperModel"),
        ("ctranslate2.models", "Whisper"),
        ("piper", "PiperVoice"),
        ("pyopen_wakeword", "Model"),
        ("pymicro_wakeword", "MicroWakeWord"),
    ):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        monkeypatch.setattr(mod, name, _refuse, raising=False)
    real_run, real_popen = subprocess.run, subprocess.Popen

    def guarded(real):
        def call(args, *a, **k):
            prog = str(args[0] if isinstance(args, (list, tuple)) else args).split()[0]
            if prog.endswith(("espeak-ng", "espeak")):
                raise RuntimeError(_MESSAGE)
            return real(args, *a, **k)

        return call

    monkeypatch.setattr(subprocess, "run", guarded(real_run))
    monkeypatch.setattr(subprocess, "Popen", guarded(real_popen))
    yield
