"""Coded errors: every failure that reaches a user or a trace carries a stable code and a fix."""

from __future__ import annotations


class AssistantError(Exception):
    """Base error with a stable machine-readable code and a human message that says what to do."""

    code: str = "assistant-error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(AssistantError):
    """pipeline.yaml, a hardware profile or a home file is malformed."""


class ModelError(AssistantError):
    """A model file is missing or cannot be loaded."""


class AudioInputError(AssistantError):
    """Audio that cannot be decoded, is empty, or is not audio at all."""


class StageError(AssistantError):
    """A stage failed during a turn; `stage` names which one."""

    stage: str = "pipeline"

    def __init__(self, code: str, message: str, stage: str | None = None) -> None:
        super().__init__(code, message)
        if stage is not None:
            self.stage = stage


class WakeError(StageError):
    stage = "wake"


class AsrError(StageError):
    stage = "asr"


class NluError(StageError):
    stage = "nlu"


class ResolveError(StageError):
    stage = "resolve"


class RespondError(StageError):
    stage = "respond"


class TtsError(StageError):
    stage = "tts"
