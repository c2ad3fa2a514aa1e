"""Enrollment by voice ("learn my voice": a name, then three guided phrases) and "who am I?".

The phrases' voice embeddings come from the speaker stage (`context.voice`, never traced); between turns they wait in
`<data dir>/voices_pending.json` (mode 0600), not in the trace's pending state, and become the person's voiceprint
(`assistant/speakers/voices.py`) after the last phrase. A typed request has no voice: the skill asks to hear it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

from assistant.core.stages.respond import Response
from assistant.errors import AssistantError
from assistant.skills.base import Turn, is_cancel, say
from assistant.speakers.voices import VoiceStore, check_name

PHRASES = (
    "the quick brown fox jumps over the lazy dog",
    "turn on the lights in the kitchen and play some music",
    "what will the weather be like tomorrow morning",
)
PENDING_FILE = "voices_pending.json"
PRIVATE_INTENTS = ("calendar_", "email_")
"""Intent prefixes of one person's private data: never answered for a voice the speaker stage could not name."""
_LEARN = re.compile(
    r"\b(?:learn|remember|enrol+|recogni[sz]e|know|save|register)\s+(?:my|our|this)\s+voice\b"
    r"|\bvoice\s+(?:enrol+ment|registration)\b"
)
_WHO = re.compile(
    r"^\W*(?:who\s+am\s+i|who\s+is\s+(?:speaking|talking)|do\s+you\s+(?:know|recogni[sz]e)\s+(?:me|my\s+voice))\W*$"
)
_NAME_IN = re.compile(r"\b(?:i'm|i am|my name is|this is|it's|it is|call me)\s+([a-z][\w'-]*)", re.IGNORECASE)


def _name_from(text: str) -> str | None:
    m = _NAME_IN.search(text)
    word = m.group(1) if m else text.strip(" .!?,")
    if not word or len(word.split()) > 2:
        return None
    try:
        return check_name(word.lower())
    except AssistantError:
        return None


class _Pending:
    """Phrase embeddings between turns, per name (owner-only file; deleted when enrollment ends)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / PENDING_FILE

    def load(self, name: str) -> list[list[list[float]]]:
        """Per phrase said so far, its embeddings (the recording's, then its noisy copies')."""
        try:
            return json.loads(self.path.read_text()).get(name, [])
        except (FileNotFoundError, json.JSONDecodeError):
            return []

    def save(self, name: str, phrases: list[list[list[float]]]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({name: phrases}, f)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class VoicesSkill:
    name = "voices"
    intents: ClassVar[frozenset[str]] = frozenset()

    def handle(self, turn: Turn) -> Response:  # no NLU intent: `try_handle` decides from the words
        return self.try_handle(turn) or say("Sorry, I can't do that.", "voice.none", "unsupported")

    def try_handle(self, turn: Turn) -> Response | None:
        text = turn.text.lower()
        if _WHO.search(text):
            return self.who(turn)
        if not _LEARN.search(text):
            return None
        m = _NAME_IN.search(text)
        name = _name_from(m.group(0)) if m else None
        if name is None:
            return say(
                "Sure. What's your name?",
                "voice.enroll",
                "clarify",
                expects_reply=True,
                pending={"skill": self.name, "step": "name"},
            )
        return self._ask_phrase(turn, name, 0)

    def guard_private(self, turn: Turn) -> Response | None:
        """ "What's on my calendar" from an unknown voice: ask who is speaking instead of opening anyone's data."""
        spk = turn.context.speaker or {}
        if spk.get("decision") != "unknown" or not turn.intent.startswith(PRIVATE_INTENTS):
            return None
        return say(
            "I don't recognise your voice, so I can't open anyone's personal things. Who is speaking? "
            'If I should know you, say "learn my voice".',
            "voice.who",
            "failed",
            params={"intent": turn.intent},
            result={"person": None, "score": spk.get("score")},
        )

    def who(self, turn: Turn) -> Response:
        spk = turn.context.speaker or {}
        person = turn.context.person
        if person:
            how = "by your voice" if spk.get("decision") == "identified" else "from this device's settings"
            return say(f"You're {person.capitalize()} ({how}).", "voice.who", "done", result={"person": person})
        if spk.get("decision") == "unknown":
            return say(
                'I don\'t recognise your voice. Say "learn my voice" to teach me.',
                "voice.who",
                "done",
                result={"person": None, "score": spk.get("score")},
            )
        return say(
            "I don't know who is speaking: nobody's voice is enrolled. Say \"learn my voice\" to start.",
            "voice.who",
            "done",
            result={"person": None},
        )

    def _ask_phrase(self, turn: Turn, name: str, step: int, prefix: str = "") -> Response:
        lead = prefix or (
            f"Thanks, {name.capitalize()}. I'll ask you to say {len(PHRASES)} sentences. " if step == 0 else ""
        )
        return say(
            f"{lead}Please say: {PHRASES[step]}.",
            "voice.enroll",
            "clarify",
            params={"name": name, "phrase": step + 1},
            expects_reply=True,
            pending={"skill": self.name, "step": step, "name": name},
        )

    def follow_up(self, turn: Turn, pending: dict[str, Any]) -> Response | None:
        pend = _Pending(turn.context.data_dir)
        if is_cancel(turn.text):
            pend.clear()
            return say("Okay, I stopped learning your voice.", "voice.enroll", "cancelled")
        if pending.get("step") == "name":
            name = _name_from(turn.text)
            if name is None:
                return say(
                    "Sorry, I didn't get your name. What's your name?",
                    "voice.enroll",
                    "clarify",
                    expects_reply=True,
                    pending={"skill": self.name, "step": "name"},
                )
            return self._ask_phrase(turn, name, 0)
        name, step = str(pending.get("name")), int(pending.get("step", 0))
        voice = turn.context.voice
        if not voice or voice.get("embedding") is None:
            return self._ask_phrase(turn, name, step, prefix="I need to hear your voice for this. ")
        embs = [voice["embedding"], *voice.get("noisy", [])]
        got = [*pend.load(name), [[round(float(x), 6) for x in e] for e in embs]]
        if step + 1 < len(PHRASES):
            pend.save(name, got)
            return self._ask_phrase(turn, name, step + 1, prefix="Thanks. ")
        pend.clear()
        import numpy as np

        v = VoiceStore(turn.context.data_dir).enroll(
            name,
            [np.asarray(e, dtype=np.float32) for phrase in got for e in phrase],
            float(voice.get("seconds", 0.0)) * len(got),
            str(voice.get("encoder", "")),
            utterances=len(got),
        )
        return say(
            f"Thanks, {name.capitalize()}. I'll recognise your voice from now on.",
            "voice.enroll",
            "done",
            target=f"voice:{name}",
            params={"name": name},
            result={"utterances": v.utterances},
        )
