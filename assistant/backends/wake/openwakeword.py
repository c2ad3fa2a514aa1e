"""openWakeWord models (TFLite, shipped with their runtime by the pyopen-wakeword package).

The pre-trained models are CC BY-NC-SA 4.0 (non-commercial): see README "Licences".
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from assistant.errors import ModelError

# After a reset the feature extractor replays this much silence to refill its windows; the library's own
# 8 s costs ~0.5 s of CPU per reset, 2 s is enough to fill the 1.3 s the classifiers look at.
_AUTOFILL_SAMPLES: Final = 2 * 16000


def _package_version() -> str:
    from importlib.metadata import version

    return version("pyopen-wakeword")


class OpenWakeWordBackend:
    name = "openwakeword"

    def __init__(self, models: list[str], energy_gate_dbfs: float | None = None) -> None:
        """`energy_gate_dbfs`: skip all work while the room is quieter than this (gate.py); None: always run."""
        try:
            from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures
        except ImportError as err:
            raise ModelError("wake-not-installed", "pyopen-wakeword is not installed: run scripts/setup.sh.") from err
        self.version = f"pyopen-wakeword {_package_version()}"
        self._features = OpenWakeWordFeatures.from_builtin()
        self._features.new_audio_samples = _AUTOFILL_SAMPLES
        self._classifiers = {}
        for model in models:
            path = Path(model).expanduser()
            try:
                if path.suffix == ".tflite":
                    if not path.exists():
                        raise ModelError("wake-model-missing", f"wake model file {path} does not exist.")
                    clf = OpenWakeWord.from_model(path)
                else:
                    clf = OpenWakeWord.from_builtin(Model(model))
            except ValueError as err:
                known = ", ".join(m.value for m in Model)
                raise ModelError(
                    "wake-model-unknown",
                    f"unknown wake word model {model!r}; built-in ones: {known}, or a .tflite path.",
                ) from err
            self._classifiers[clf.id if path.suffix == ".tflite" else model] = clf
        self.models = tuple(self._classifiers)
        self._gate = None
        if energy_gate_dbfs is not None:
            from assistant.backends.wake.gate import EnergyGate

            self._gate = EnergyGate(energy_gate_dbfs)
            self.version += f" (energy gate {energy_gate_dbfs:g} dBFS)"

    def process(self, frame: np.ndarray) -> dict[str, float]:
        scores = dict.fromkeys(self._classifiers, 0.0)
        frame = np.asarray(frame, dtype=np.int16)
        for admitted in self._gate.admit(frame) if self._gate is not None else [frame]:
            for embedding in self._features.process_streaming(admitted.tobytes()):
                for name, clf in self._classifiers.items():
                    for prob in clf.process_streaming(embedding):
                        scores[name] = max(scores[name], float(prob))
        return scores

    def reset(self) -> None:
        # Only the classifiers' embedding windows: the feature stream stays continuous (cheap reset).
        for clf in self._classifiers.values():
            clf.reset()


def create(build) -> OpenWakeWordBackend:
    """Registry factory (`wake.backend: openwakeword`)."""
    w = build.settings.wake
    return OpenWakeWordBackend(w.models, energy_gate_dbfs=w.energy_gate_dbfs)
