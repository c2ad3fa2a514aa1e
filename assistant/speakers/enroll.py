"""Enrollment from audio files (`assistant voices enroll NAME FILES...`): each file is one utterance of the person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.speakers.voices import Voice, VoiceStore, check_name

MIN_SECONDS = 1.0
"""Shorter files add too little of the voice (a GE2E partial utterance is 1.6 s)."""
RATE = 16000


def build_identifier(settings: Any, data_dir: Path):
    """The speaker stage as pipeline.yaml configures it (the encoder is loaded here, ~0.1 s)."""
    from assistant.core import registry

    return registry.create("speaker", settings.speaker.backend, registry.Build(settings=settings, data_dir=data_dir))


def enroll_files(identifier, name: str, files: list[Path], replace: bool = False) -> tuple[Voice, list[str]]:
    """Embed every file and add it to `name`'s voiceprint. Returns (the voice, files skipped with the reason).

    A file that cannot be decoded is an error before anything is stored (nothing half-enrolled)."""
    from assistant import audio as audio_io

    name = check_name(name)
    embeddings, seconds, skipped = [], 0.0, []
    for f in files:
        samples = audio_io.read_file(Path(f))  # AudioInputError says what is wrong with the file
        dur = len(samples) / RATE
        if dur < MIN_SECONDS:
            skipped.append(f"{f}: {dur:.1f} s of audio, under {MIN_SECONDS:.0f} s")
            continue
        embeddings += identifier.enrollment_embeddings(samples)
        seconds += dur
    if not embeddings:
        raise AssistantError(
            "voice-no-audio",
            f"None of the files is long enough to enroll {name} (each needs {MIN_SECONDS:.0f} s of speech): "
            + "; ".join(skipped),
        )
    used = len(files) - len(skipped)
    voice = identifier.store.enroll(name, embeddings, seconds, identifier.version, replace=replace, utterances=used)
    return voice, skipped


def forget(data_dir: Path, name: str) -> bool:
    return VoiceStore(Path(data_dir)).forget(name)
