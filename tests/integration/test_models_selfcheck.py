"""The shipped models pass their self-check on this machine; a model whose outputs are off is caught (real models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from assistant import models_check as mc

REPO = Path(__file__).resolve().parents[2]


def _wake_vad(settings):
    from assistant.core import registry

    build = registry.Build(settings=settings)
    return {s: registry.create(s, getattr(settings, s).backend, build) for s in ("wake", "vad", "speaker")}


def test_every_shipped_model_gives_its_known_output(settings, real_backends):
    results = mc.self_check({**real_backends, **_wake_vad(settings)})
    assert [r.stage for r in results] == list(mc.STAGES)
    assert all(r.ok for r in results), [(r.stage, r.problems) for r in results]
    print("\nself-check seconds: " + ", ".join(f"{r.stage} {r.seconds}" for r in results))


class _Degraded:
    """The real NLU behind a runtime that scales every probability down (what a wrong CPU build did)."""

    def __init__(self, inner):
        self.inner, self.name, self.version = inner, inner.name, inner.version

    def parse(self, text, context=None):
        from dataclasses import replace

        r = self.inner.parse(text, context)
        return replace(r, confidence=r.confidence * 0.05)


class _DeafAsr:
    """The real ASR fed audio at the wrong rate (a resampler that drops every other sample): it mishears."""

    def __init__(self, inner):
        self.inner, self.name, self.version = inner, inner.name, inner.version

    def transcribe(self, samples, language):
        return self.inner.transcribe(np.ascontiguousarray(samples[::2]), language)


def test_wrong_outputs_from_the_real_models_are_caught(real_backends):
    nlu = mc.check_stage("nlu", _Degraded(real_backends["nlu"]))
    assert not nlu.ok and len(nlu.problems) == len(mc.NLU_SENTENCES)
    asr = mc.check_stage("asr", _DeafAsr(real_backends["asr"]))
    assert not asr.ok, asr.measured


def test_assistant_models_runs_the_checks(tmp_path):
    env = dict(os.environ, ASSISTANT_DATA_DIR=str(tmp_path), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "models", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and {c["stage"] for c in report["checks"]} == set(mc.STAGES)
    assert all(c["ok"] for c in report["checks"])
