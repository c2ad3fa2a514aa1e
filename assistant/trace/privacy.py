"""Privacy controls for traces: pseudonymous user ids, a per-user opt-out, retention, and redaction of exported text.

- Pseudonyms: HMAC-SHA256 of the user id with a per-install salt (`<data dir>/privacy_salt`, 32 random bytes, created
  on first use, readable by the owner only). Stable within an install, not reversible without the salt, different
  between installs. Delete the salt file to unlink all earlier exports from later ones.
- Opt-out: `<data dir>/privacy.json` lists the *pseudonyms* of opted-out users (the raw id is never written there).
  The pipeline records nothing for them (`is_opted_out`); `export` skips their turns even if some were recorded;
  what they taught the assistant is deleted and never written again (it lives in the running process only).
- Retention: `prune(store, older_than_days)` deletes turns, spans, events, labels and the audio files they reference.
- Redaction: phone numbers and e-mail addresses in exported text become `[PHONE]` / `[EMAIL]`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.trace.store import TraceStore

SALT_FILE = "privacy_salt"
PRIVACY_FILE = "privacy.json"


# -- pseudonyms -----------------------------------------------------------------------------------------------
def load_salt(data_dir: Path) -> bytes:
    """The install's salt, created (atomically, mode 0600) on first use."""
    path = Path(data_dir) / SALT_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(salt.hex() + "\n")
    return salt


def pseudonym_with(salt: bytes, user_id: str) -> str:
    return "u_" + hmac.new(salt, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def pseudonym(data_dir: Path, user_id: str) -> str:
    """The user's stable pseudonym on this install (`u_` + 32 hex digits of HMAC-SHA256)."""
    return pseudonym_with(load_salt(data_dir), user_id)


class Pseudonymizer:
    """Caches the salt and the pseudonyms (an export sees few distinct users and many turns)."""

    def __init__(self, data_dir: Path) -> None:
        self.salt = load_salt(data_dir)
        self._cache: dict[str, str] = {}

    def __call__(self, user_id: str | None) -> str | None:
        if user_id is None:
            return None
        p = self._cache.get(user_id)
        if p is None:
            p = self._cache[user_id] = pseudonym_with(self.salt, user_id)
        return p


# -- opt-out --------------------------------------------------------------------------------------------------
def _read_privacy(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / PRIVACY_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": 1, "opted_out": {}}
    data.setdefault("opted_out", {})
    return data


def _write_privacy(data_dir: Path, data: dict[str, Any]) -> None:
    path = Path(data_dir) / PRIVACY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


_OPT_CACHE: dict[Path, tuple[float, frozenset[str]]] = {}


def opted_out_pseudonyms(data_dir: Path) -> frozenset[str]:
    """Pseudonyms of the opted-out users (cached on the file's mtime: cheap enough to call on every turn)."""
    path = Path(data_dir) / PRIVACY_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return frozenset()
    hit = _OPT_CACHE.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    value = frozenset(_read_privacy(data_dir)["opted_out"])
    _OPT_CACHE[path] = (mtime, value)
    return value


def is_opted_out(data_dir: Path, user_id: str) -> bool:
    """True if this user asked not to be recorded: the pipeline must write no trace for their turns."""
    out = opted_out_pseudonyms(data_dir)
    return bool(out) and pseudonym(data_dir, user_id) in out


def opt_out(data_dir: Path, user_id: str, store: TraceStore | None = None) -> int:
    """Record the opt-out and forget what the user taught the assistant (assistant/understanding/teach: an opted-out
    user leaves nothing); with a store, also delete the user's turns already recorded. Returns turns deleted."""
    data = _read_privacy(data_dir)
    data["opted_out"][pseudonym(data_dir, user_id)] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_privacy(data_dir, data)
    forget_taught(data_dir, user_id)
    if store is None:
        return 0
    return store.delete_turns("s.user_id = ?", (user_id,), on_audio=_unlink)


def forget_taught(data_dir: Path, user_id: str) -> int:
    """Delete the concepts `user_id` taught (aliases, routines, value words, preferences); returns how many."""
    from assistant.understanding.teach.memory import TeachMemory

    return TeachMemory(data_dir).forget_user(user_id)


def opt_in(data_dir: Path, user_id: str) -> bool:
    """Undo an opt-out; returns whether the user was opted out."""
    data = _read_privacy(data_dir)
    was = data["opted_out"].pop(pseudonym(data_dir, user_id), None) is not None
    _write_privacy(data_dir, data)
    return was


# -- retention ------------------------------------------------------------------------------------------------
def _unlink(path: str) -> bool:
    try:
        Path(path).unlink()
        return True
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False


def prune(store: TraceStore, older_than_days: float, now: float | None = None) -> dict[str, int]:
    """Delete turns that started more than `older_than_days` ago, with their spans, events, labels and audio files
    (the response audio and any recorded request audio; never the input file a replay read)."""
    cutoff = (time.time() if now is None else now) - older_than_days * 86400
    files = 0

    def on_audio(path: str) -> None:
        nonlocal files
        files += _unlink(path)

    turns = store.delete_turns("t.started_at < ?", (cutoff,), on_audio=on_audio)
    return {"turns": turns, "audio_files": files, "cutoff": int(cutoff)}


# -- redaction ------------------------------------------------------------------------------------------------
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<![\w.:/-])(?:"
    r"(?:\+\d{1,3}[\s.-]?)?"  # country code
    r"(?:\(\d{2,5}\)[\s.-]?|\d{2,5}[\s.-])?"  # area code, (555) or 555-
    r"\d{3,4}[\s.-]?\d{3,4}"  # number
    r"|\+?\d{10,15})"  # or digits only
    r"(?![\w.:/-]*\d)"
)
_SPOKEN_DIGIT = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_SPOKEN_PHONE = re.compile(rf"\b{_SPOKEN_DIGIT}(?:[\s-]+{_SPOKEN_DIGIT}){{6,}}\b", re.IGNORECASE)


_CANDIDATE = re.compile(r"\d[\d\s().+-]{5,}\d")  # cheap scan; _PHONE then runs only around what it finds
_DIGIT_WORDS = (
    "zero ",
    "one ",
    "two ",
    "three ",
    "four ",
    "five ",
    "six ",
    "seven ",
    "eight ",
    "nine ",
    "oh ",
    "zero-",
    "one-",
    "two-",
    "three-",
    "four-",
    "five-",
    "six-",
    "seven-",
    "eight-",
    "nine-",
)


def _phones(text: str) -> list[tuple[int, int]]:
    """Spans of the phone numbers in `text` (7 to 15 digits)."""
    found: list[tuple[int, int]] = []
    for cand in _CANDIDATE.finditer(text):
        pos = max(cand.start() - 5, found[-1][1] if found else 0)  # room for a leading "+44 " or "("
        end = min(len(text), cand.end() + 8)
        while pos < cand.end():
            m = _PHONE.search(text, pos, end)
            if m is None or m.start() >= cand.end():
                break
            if 7 <= sum(c.isdigit() for c in m.group(0)) <= 15:
                found.append(m.span())
            pos = max(m.end(), pos + 1)
    return found


def _has_spoken_phone(text: str) -> bool:
    return sum(map(text.lower().count, _DIGIT_WORDS)) >= 6 and bool(_SPOKEN_PHONE.search(text))


def needs_redaction(text: str) -> bool:
    """Whether `redact` would change `text`. Fast (a few C-level scans) on text with nothing to redact."""
    return ("@" in text and bool(_EMAIL.search(text))) or bool(_phones(text)) or _has_spoken_phone(text)


def redact(text: str) -> str:
    """Replace e-mail addresses and phone numbers (written, or as a run of 7+ spoken digits) in free text."""
    if not text:
        return text
    if "@" in text:
        text = _EMAIL.sub("[EMAIL]", text)
    spans = _phones(text)
    if spans:
        parts, last = [], 0
        for a, b in spans:
            parts += [text[last:a], "[PHONE]"]
            last = b
        text = "".join(parts) + text[last:]
    if _has_spoken_phone(text):
        text = _SPOKEN_PHONE.sub("[PHONE]", text)
    return text


_KEEP_KEYS = frozenset(
    {
        "turn_id",
        "session_id",
        "device_id",
        "id",
        "entity_id",
        "path",
        "file",
        "now",
        "started_at",
        "stage",
        "backend",
        "version",
        "intent",
        "code",
        "model",
        "label",
        "type",
        "source",
    }
)


def redact_obj(value: Any, key: str | None = None) -> Any:
    """Redact every string inside a JSON-like value, except identifiers, paths and timestamps."""
    if isinstance(value, str):
        return value if key in _KEEP_KEYS or (key or "").endswith("_id") else redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v, key) for v in value]
    return value
