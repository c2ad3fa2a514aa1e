"""microWakeWord models (TFLite streaming models, shipped with their runtime by the pymicro-wakeword package).

Why: one tiny streaming model per wake word over the TFLite Micro audio front end (pymicro-features), no shared
embedding network: about a tenth of openWakeWord's CPU while idle (docs/wake.md has the measurements). The built-in
models (alexa, hey_jarvis, hey_mycroft, okay_nabu) are the ESPHome collection's, Apache-2.0.

Each model ships its own probability cutoff (0.85-0.97); the pipeline has one `wake.threshold` (0.5, openWakeWord's
scale), so scores are mapped piecewise-linearly to put each model's cutoff at 0.5 (`calibrate`): the same settings,
barge-in threshold included, mean "as sure as the model's authors recommend" for either backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import numpy as np

from assistant.errors import ModelError

CUTOFF_SCORE: Final = 0.5
"""Where a model's own probability cutoff lands on the pipeline's score scale."""


def calibrate(prob: float, cutoff: float) -> float:
    """Map a model probability to the pipeline's scale: [0, cutoff] -> [0, 0.5], [cutoff, 1] -> [0.5, 1]."""
    prob = min(1.0, max(0.0, prob))
    if prob <= cutoff:
        return CUTOFF_SCORE * prob / cutoff
    return CUTOFF_SCORE + (1.0 - CUTOFF_SCORE) * (prob - cutoff) / (1.0 - cutoff)


def _package_version() -> str:
    from importlib.metadata import version

    return version("pymicro-wakeword")


def builtin_models() -> list[str]:
    from pymicro_wakeword import Model

    return [m.value for m in Model]


class MicroWakeWordBackend:
    name = "microwakeword"
    licence = "Apache-2.0"

    def __init__(self, models: list[str]) -> None:
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError as err:
            raise ModelError("wake-not-installed", "pymicro-wakeword is not installed: run scripts/setup.sh.") from err
        self.version = f"pymicro-wakeword {_package_version()}"
        self._features = MicroWakeWordFeatures()
        self._classifiers = {}
        for model in models:
            path = Path(model).expanduser()
            try:
                if path.suffix == ".json":  # a microWakeWord manifest beside its .tflite (custom wake word)
                    if not path.exists():
                        raise ModelError("wake-model-missing", f"wake model manifest {path} does not exist.")
                    clf = MicroWakeWord.from_config(path)
                    key = clf.id
                else:
                    clf, key = MicroWakeWord.from_builtin(Model(model)), model
            except (ValueError, KeyError, json.JSONDecodeError) as err:
                raise ModelError(
                    "wake-model-unknown",
                    f"unknown wake word model {model!r} for microwakeword; built-in ones: "
                    f"{', '.join(builtin_models())}, or a microWakeWord .json manifest path.",
                ) from err
            self._classifiers[key] = clf
        self.models = tuple(self._classifiers)

    def process(self, frame: np.ndarray) -> dict[str, float]:
        """Best calibrated score per model over the frame (the models run every 30 ms of audio)."""
        scores = dict.fromkeys(self._classifiers, 0.0)
        for features in self._features.process_streaming(np.asarray(frame, dtype=np.int16).tobytes()):
            for name, clf in self._classifiers.items():
                prob = clf.process_streaming_prob(features)
                if prob:
                    scores[name] = max(scores[name], calibrate(prob, clf.probability_cutoff))
        return scores

    def reset(self) -> None:
        # The models' windows and streaming state only; the front end's noise estimate stays (as for openWakeWord).
        for clf in self._classifiers.values():
            clf.reset()


def create(build) -> MicroWakeWordBackend:
    """Registry factory (`wake.backend: microwakeword`)."""
    return MicroWakeWordBackend(build.settings.wake.models)
