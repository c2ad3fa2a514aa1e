"""Backends by stage and name: the `backend:` value of each stage in pipeline.yaml picks one.

A new engine is one file under assistant/backends/<stage>/ with a `create(build)` function, and one line in
`BUILTIN` below (a string, so nothing heavy is imported until that backend is chosen). Tests and plug-ins register
through the same door: `register("asr", "fake", lambda build: FakeAsr())`, then `asr.backend: fake` or
`Runner(..., backends={"asr": instance})`.

A factory gets a `Build`: the settings, the home, the data directory and the backends built before it (the
resolver needs the home; the reranker needs the resolver's catalogs), so backends never reach into the runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError


@dataclass
class Build:
    """What a backend factory may use."""

    settings: Any
    home: Any = None
    data_dir: Path | None = None
    built: dict[str, Any] = field(default_factory=dict)
    """Backends of earlier stages, by stage."""


Factory = Callable[[Build], Any]

# stage -> backend name -> "module:function" (imported on first use)
BUILTIN: dict[str, dict[str, str]] = {
    "wake": {
        "openwakeword": "assistant.backends.wake.openwakeword:create",
        "microwakeword": "assistant.backends.wake.microwakeword:create",
        "cascade": "assistant.backends.wake.cascade:create",
    },
    "vad": {"silero": "assistant.backends.vad.silero:create"},
    "speaker": {"resemblyzer-onnx": "assistant.speakers.identify:create"},
    "asr": {"faster-whisper": "assistant.backends.asr.faster_whisper:create"},
    "rewrite": {"learned": "assistant.understanding.rewrite:create"},
    "nlu": {"onnx-joint": "assistant.backends.nlu.onnx_joint:create"},
    "resolve": {"catalog": "assistant.understanding.resolve.catalog:create"},
    "rerank": {"context": "assistant.understanding.rerank.context:create"},
    "respond": {"skills": "assistant.skills.responder:create"},
    "tts": {"piper": "assistant.backends.tts.piper:create"},
}
_registered: dict[str, dict[str, Factory]] = {}


def register(stage: str, name: str, factory: Factory) -> None:
    """Add (or replace) a backend; it can then be chosen by name in pipeline.yaml."""
    if stage not in BUILTIN:
        raise ConfigError("unknown-stage", f"no stage {stage!r}; stages: {', '.join(BUILTIN)}")
    _registered.setdefault(stage, {})[name] = factory


def unregister(stage: str, name: str) -> None:
    _registered.get(stage, {}).pop(name, None)


def available(stage: str) -> list[str]:
    return sorted({*BUILTIN.get(stage, {}), *_registered.get(stage, {})})


def factory(stage: str, name: str) -> Factory:
    if name in _registered.get(stage, {}):
        return _registered[stage][name]
    target = BUILTIN.get(stage, {}).get(name)
    if target is None:
        raise ConfigError(
            "unknown-backend",
            f"{stage}.backend: no backend {name!r}; available: {', '.join(available(stage)) or 'none'}",
        )
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def create(stage: str, name: str, build: Build) -> Any:
    return factory(stage, name)(build)
