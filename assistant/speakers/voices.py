"""The household's enrolled voices: one voiceprint per person, kept in the data dir (one home per data dir).

`<data dir>/voices.json` (mode 0600: a voiceprint is biometric data) holds, per person, the embeddings of their
enrollment utterances (the voiceprint is their normalised mean), how many seconds they cover and when they were
added. Nothing else keeps a voiceprint: the trace stores only the identification's scores. `forget(name)` (and
`assistant privacy opt-out NAME`) deletes the person's voiceprint.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError

VOICES_FILE = "voices.json"
_NAME = re.compile(r"^[\w][\w .'-]{0,39}$")


@dataclass(frozen=True)
class Voice:
    name: str
    voiceprint: np.ndarray
    utterances: int
    seconds: float
    enrolled_at: str
    encoder: str


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise AssistantError(
            "voice-bad-name", f"{name!r} is not a usable name: use 1-40 letters, digits, spaces, . ' or - ."
        )
    return name


class VoiceStore:
    """Read and change `<data dir>/voices.json`; cheap to call per turn (re-read only when the file changes)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / VOICES_FILE
        self._cache: tuple[int, dict[str, Voice]] | None = None

    # -- reading ----------------------------------------------------------------------------------------------
    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"version": 1, "people": {}}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise AssistantError(
                "voices-corrupt", f"{self.path} is not valid JSON ({err}); re-enroll after deleting it."
            ) from err
        data.setdefault("people", {})
        return data

    def voices(self) -> dict[str, Voice]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        out = {}
        for name, p in self._read()["people"].items():
            emb = np.asarray(p["embeddings"], dtype=np.float32)
            mean = emb.mean(axis=0)
            out[name] = Voice(
                name=name,
                voiceprint=mean / max(float(np.linalg.norm(mean)), 1e-9),
                utterances=int(p.get("utterances", len(emb))),
                seconds=float(p.get("seconds", 0.0)),
                enrolled_at=p.get("enrolled_at", ""),
                encoder=p.get("encoder", ""),
            )
        self._cache = (mtime, out)
        return out

    def names(self) -> list[str]:
        return sorted(self.voices())

    # -- changing ---------------------------------------------------------------------------------------------
    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        tmp.replace(self.path)
        self._cache = None

    def enroll(
        self,
        name: str,
        embeddings: list[np.ndarray],
        seconds: float,
        encoder: str,
        replace: bool = False,
        utterances: int | None = None,
    ) -> Voice:
        """Add embeddings to `name`'s voiceprint (or replace it); `utterances`: how many recordings they come from
        (default one each; enrollment adds noisy copies of each recording)."""
        name = check_name(name)
        if not embeddings:
            raise AssistantError("voice-no-audio", f"No usable speech to enroll {name} from.")
        data = self._read()
        person = data["people"].get(name)
        if person is not None and person.get("encoder") not in (None, encoder):
            replace = True  # embeddings of another encoder do not mix
        if person is None or replace:
            person = {"embeddings": [], "seconds": 0.0, "utterances": 0}
        person["embeddings"] += [[round(float(x), 6) for x in e] for e in embeddings]
        person["seconds"] = round(person["seconds"] + seconds, 2)
        person["utterances"] = person.get("utterances", 0) + (len(embeddings) if utterances is None else utterances)
        person["encoder"] = encoder
        person["enrolled_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data["people"][name] = person
        self._write(data)
        return self.voices()[name]

    def forget(self, name: str) -> bool:
        """Delete `name`'s voiceprint; returns whether there was one."""
        data = self._read()
        if data["people"].pop(name, None) is None:
            return False
        self._write(data)
        return True
