"""What people taught the assistant: one JSON file in the data dir (`taught.json`), written atomically.

A concept is one taught meaning of a phrase:
    alias       "call the floor lamp Bob": phrase -> a device or an area of the home
    routine     "when I say good night, turn off all the lights and lock the back door": phrase -> request texts, run
                one by one through the same skills (so unlocking inside a routine still asks first)
    value       "comfortable means 21 degrees": phrase -> the words of a slot value, used after "to"/"at"
    preference  "I'm a Warriors fan", "I like jazz": a slot (team, genre, artist, station ...) -> a value

Scope: a concept belongs to the user who taught it (`user`), or to the household (`user` None) when the speaker is
not known (the default user id). A lookup sees the user's own concepts first, then the household's. An opted-out
user's concepts are never written (they live in this process only) and opting out deletes what was stored.
The file is keyed by home name, so one data dir can serve several homes. Pure logic and JSON, no models.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.text import norm_key

_LOGGER = logging.getLogger(__name__)
FILE_NAME = "taught.json"
KINDS = ("alias", "routine", "value", "preference")
UNKNOWN_USERS = frozenset({"", "default", "unknown", "guest"})
"""User ids that name nobody in particular: what they teach is the household's."""


def personal(user_id: str | None) -> str | None:
    """The user a concept of this speaker belongs to; None (the household) for an unknown speaker."""
    return None if user_id is None or user_id.strip().lower() in UNKNOWN_USERS else user_id


@dataclass
class Concept:
    kind: str
    phrase: str
    """What the user says, as said ("study mode"); `key` is its normalised form."""
    meaning: dict[str, Any]
    """alias: {device_ids, area_id, name}; routine: {steps: [text]}; value: {text}; preference: {slot, value, entity}"""
    user: str | None = None
    home: str = ""
    id: str = field(default_factory=lambda: "c_" + uuid.uuid4().hex[:12])
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    uses: int = 0
    said: str = ""
    """The sentence that taught it."""

    @property
    def key(self) -> str:
        return phrase_key(self.phrase)

    def describe(self) -> str:
        """What it means, in words: "turn off the tv, then start a 45 minute timer", "the floor lamp"."""
        m = self.meaning
        if self.kind == "routine":
            return ", then ".join(m.get("steps", []))
        if self.kind == "alias":
            return f"the {m.get('name')}"
        if self.kind == "value":
            return str(m.get("text"))
        return str(m.get("display") or m.get("value"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Concept:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def sound_key(phrase: str) -> str:
    """What a phrase sounds like (metaphone per word): "steady mode" and "study mode" are the same, as Whisper
    hears one for the other."""
    import jellyfish

    return " ".join(jellyfish.metaphone(w) or w for w in phrase_key(phrase).split())


def phrase_key(phrase: str) -> str:
    """The key a phrase is stored and looked up by: lower case, words only, no article in front, no "mode" behind."""
    k = norm_key(phrase)
    for prefix in ("the ", "my ", "a "):
        if k.startswith(prefix) and len(k) > len(prefix):
            k = k[len(prefix) :]
    return k


class TeachMemory:
    """All concepts of a data dir. Reads the file on first use and after another process wrote it (mtime)."""

    def __init__(self, data_dir: Path | None) -> None:
        self.path = Path(data_dir) / FILE_NAME if data_dir is not None else None
        self._concepts: list[Concept] = []
        self._volatile: list[Concept] = []
        """Concepts of opted-out users: this process only, never written."""
        self._mtime: int | None = None
        self._damaged = False
        self._lock = threading.Lock()

    # -- file ---------------------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._concepts, self._mtime = [], None
            return
        if mtime == self._mtime:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._concepts = [Concept.from_dict(c) for c in data.get("concepts", [])]
        except (OSError, ValueError, TypeError, AttributeError) as err:  # a damaged file teaches nothing
            _LOGGER.warning("ignoring unreadable %s: %s", self.path, err)
            self._concepts = []
            self._damaged = True
        self._mtime = mtime

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"version": 1, "concepts": [c.to_dict() for c in self._concepts]}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._damaged and self.path.exists():  # keep what could not be read, for a person to look at
                kept = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
                self.path.replace(kept)
                _LOGGER.warning("kept the unreadable %s as %s", self.path, kept)
            self._damaged = False
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
            self._mtime = self.path.stat().st_mtime_ns
        except OSError as err:  # full disk, read-only dir: the concept lives in this process only
            _LOGGER.warning("taught concepts not saved to %s: %s", self.path, err)
            tmp.unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------------------------
    def concepts(self, home: str | None = None, user: str | None = None, include_home: bool = True) -> list[Concept]:
        """The concepts of `home` a user sees: their own first, then the household's (`include_home`)."""
        with self._lock:
            self._load()
            every = [*self._volatile, *self._concepts]
        mine = [c for c in every if (home is None or c.home == home) and user is not None and c.user == user]
        shared = [c for c in every if (home is None or c.home == home) and c.user is None] if include_home else []
        return mine + shared

    def all(self) -> list[Concept]:
        with self._lock:
            self._load()
            return list(self._concepts)

    def find(self, home: str, user: str | None, phrase: str, kind: str | None = None) -> Concept | None:
        """The concept of that phrase; else the one concept that sounds the same (a misheard word)."""
        key = phrase_key(phrase)
        pool = [c for c in self.concepts(home, user) if kind is None or c.kind == kind]
        for c in pool:
            if c.key == key:
                return c
        if len(key) < 4:
            return None
        sound = sound_key(key)
        alike = {c.key: c for c in pool if sound_key(c.key) == sound}
        return next(iter(alike.values())) if len(alike) == 1 else None

    # -- writing ------------------------------------------------------------------------------------------------
    def put(self, concept: Concept, volatile: bool = False) -> Concept:
        """Store `concept`, replacing one of the same owner and phrase."""
        with self._lock:
            self._load()
            pool = self._volatile if volatile else self._concepts
            for i, c in enumerate(pool):
                if c.home == concept.home and c.user == concept.user and c.key == concept.key:
                    concept.id, concept.created, concept.uses = c.id, c.created, c.uses
                    concept.updated = time.time()
                    pool[i] = concept
                    break
            else:
                pool.append(concept)
            if not volatile:
                self._save()
        return concept

    def remove(self, ids: set[str]) -> int:
        with self._lock:
            self._load()
            n = len(self._concepts) + len(self._volatile)
            self._concepts = [c for c in self._concepts if c.id not in ids]
            self._volatile = [c for c in self._volatile if c.id not in ids]
            removed = n - len(self._concepts) - len(self._volatile)
            if removed:
                self._save()
        return removed

    def clear(self) -> None:
        """Forget everything (every home, every user): the evaluation starts each dialogue from nothing."""
        with self._lock:
            self._concepts, self._volatile = [], []
            self._save()

    def forget_user(self, user: str, home: str | None = None) -> int:
        """Everything this user taught (all homes unless `home`); the household's concepts stay."""
        return self.remove({c.id for c in [*self._volatile, *self.all()] if c.user == user and home in (None, c.home)})

    def count_use(self, ids: list[str]) -> None:
        """A taught concept was applied: count it (what `what have you learned` and the learning jobs read)."""
        if not ids:
            return
        with self._lock:
            self._load()
            hit = False
            for c in [*self._concepts, *self._volatile]:
                if c.id in ids:
                    c.uses += 1
                    hit = hit or c in self._concepts
            if hit:
                self._save()


class MemoryView:
    """The concepts one speaker sees in one home: what a turn's context carries (`TurnContext.taught`).

    `applied` lists the concepts the turn used (the runner puts them in the record's `taught` field)."""

    def __init__(self, memory: TeachMemory, home: str, user_id: str | None, opted_out: bool = False) -> None:
        self.memory = memory
        self.home = home
        self.user_id = user_id
        self.user = personal(user_id)
        self.opted_out = opted_out
        self.applied: list[dict[str, Any]] = []

    def concepts(self, kind: str | None = None) -> list[Concept]:
        return [c for c in self.memory.concepts(self.home, self.user) if kind is None or c.kind == kind]

    def mine(self) -> list[Concept]:
        """What this speaker taught (the household's, for an unknown speaker)."""
        return [c for c in self.concepts() if c.user == self.user]

    def find(self, phrase: str, kind: str | None = None) -> Concept | None:
        return self.memory.find(self.home, self.user, phrase, kind)

    def preference(self, slot: str) -> Concept | None:
        return next((c for c in self.concepts("preference") if c.meaning.get("slot") == slot), None)

    def device_for(self, said: str) -> Concept | None:
        """A taught alias that names `said` ("bob", "the big lamp")."""
        c = self.find(said, "alias")
        return c if c is not None and c.meaning.get("device_ids") else None

    def area_for(self, said: str) -> Concept | None:
        c = self.find(said, "alias")
        return c if c is not None and c.meaning.get("area_id") else None

    def define(self, kind: str, phrase: str, meaning: dict[str, Any], said: str = "") -> Concept:
        concept = Concept(kind=kind, phrase=phrase, meaning=meaning, user=self.user, home=self.home, said=said)
        return self.memory.put(concept, volatile=self.opted_out)

    def forget(self, concept: Concept) -> int:
        return self.memory.remove({concept.id})

    def forget_mine(self) -> int:
        ids = {c.id for c in self.mine()}
        return self.memory.remove(ids)

    def used(self, concept: Concept, how: str, **detail: Any) -> None:
        self.applied.append({"id": concept.id, "kind": concept.kind, "phrase": concept.phrase, "how": how, **detail})
