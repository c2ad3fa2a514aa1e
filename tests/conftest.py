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
    from assistant.core import registry

    build = registry.Build(settings=settings)
    return {stage: registry.create(stage, getattr(settings, stage).backend, build) for stage in ("asr", "nlu", "tts")}


@pytest.fixture
def make_pipeline(settings, real_backends, tmp_path):
    """A Runner on the real models with its own data dir (traces, lists, timers) and a fresh example home.

    The slow models are shared (`backends=`); `backends=` / `wrap=` keyword arguments add or compose others."""
    from assistant.config import DEFAULT_HOME
    from assistant.core.runner import Runner

    created = []

    def _make(home: Path = DEFAULT_HOME, config=None, backends=None, **kw):
        cfg = config or settings
        shared = {
            k: v
            for k, v in real_backends.items()
            if k in cfg.stages and (k != "asr" or kw.get("load_audio_stages", True))
        }
        p = Runner(
            cfg,
            home,
            data_dir=tmp_path / "data",
            out_dir=tmp_path / "out",
            backends={**shared, **(backends or {})},
            **kw,
        )
        created.append(p)
        return p

    yield _make
    for p in created:
        p.close()
