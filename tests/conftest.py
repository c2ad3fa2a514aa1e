"""Shared fixtures: paths to the real clips in ../shared/data/speech, speech synthesized at test time, and
pipelines on the real models (loaded once per test session, fresh state per test)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SPEECH = SHARED / "speech"
DEMO = REPO / "assistant" / "data" / "demo"


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not SPEECH.exists():
        pytest.skip(f"{SPEECH} not found: the shared data folder must sit beside the repo")
    return SPEECH


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not found: the shared data folder must sit beside the repo")
    return SHARED


@pytest.fixture(scope="session")
def settings():
    from assistant.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def real_backends(settings):
    """The slow-to-load real backends, loaded once; they hold no per-turn state. Wake and VAD are streaming detectors
    with state, so every pipeline gets its own (a live loop left running by one test must not feed another's)."""
    from assistant.core import runner as pl

    return {
        "asr": pl._make_asr(settings),
        "nlu": pl._make_nlu(settings),
        "tts": pl._make_tts(settings),
    }


@pytest.fixture
def make_pipeline(settings, real_backends, tmp_path, monkeypatch):
    """A Pipeline on the real models with its own data dir (traces, lists, timers) and a fresh example home."""
    from assistant.core import runner as pl
    from assistant.config import DEFAULT_HOME

    for stage, factory in (("asr", "_make_asr"), ("nlu", "_make_nlu"), ("tts", "_make_tts")):
        monkeypatch.setattr(pl, factory, lambda s, _b=real_backends[stage]: _b)
    created = []

    def _make(home: Path = DEFAULT_HOME, config=None, **kw):
        p = pl.Pipeline(config or settings, home, data_dir=tmp_path / "data", out_dir=tmp_path / "out", **kw)
        created.append(p)
        return p

    yield _make
    for p in created:
        p.close()
