"""Models that check themselves: each model runs on a fixed input and its output is compared with a known one.

A model file can load and still be wrong: a runtime built for another CPU, a mismatched ONNX/CTranslate2 build or a
damaged weight file once gave every sentence one intent at 5% confidence with no error. So before serving, each
stage's backend is run on fixed inputs and compared with outputs recorded on a machine where they were right
(`assistant/data/selfcheck/expected.json`):

- nlu: fixed sentences -> the expected intent, confidence within a tolerance, and different sentences must not all
  get one intent;
- asr: a bundled clip (the project's own Piper recording, "Alexa, what time is it?") -> its transcript;
- wake: the same clip -> the `alexa` score above the threshold and near the recorded score; silence -> low;
- vad: the clip's speech -> high probability, silence -> low;
- tts: a fixed sentence -> audio of about the recorded length, not silent (and, with the asr, heard back right).

`self_check(backends)` returns one result per stage; `assistant models` prints them and `assistant listen` refuses
to start when one fails. `python -m assistant.models_check --record [STAGE...]` re-records expected.json (after a
deliberate model change only; with stages named, only theirs).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant import audio as audio_io
from assistant.errors import AssistantError

DATA = Path(__file__).resolve().parent / "data" / "selfcheck"
CLIP = DATA / "alexa_what_time_is_it.flac"
EXPECTED = DATA / "expected.json"
NLU_SENTENCES = (
    "turn on the kitchen light",
    "what time is it",
    "set an alarm for seven in the morning",
    "play some jazz music",
    "what is the weather like tomorrow",
    "add milk to my shopping list",
)
TTS_SENTENCE = "The kitchen light is on."
STAGES = ("wake", "vad", "speaker", "asr", "nlu", "tts")


@dataclass
class CheckResult:
    stage: str
    ok: bool
    backend: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SelfCheckFailed(AssistantError):
    """A model gave the wrong output on its fixed input: the runtime must not be served."""


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _wer(ref: str, hyp: str) -> float:
    r, h = _words(ref).split(), _words(hyp).split()
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(h, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
    return d[len(h)] / max(1, len(r))


def load_expected(path: Path = EXPECTED) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AssistantError(
            "self-check-data",
            f"{path}: the self-check's expected outputs cannot be read ({err}); reinstall the package.",
        ) from err


def _frames(samples: np.ndarray) -> list[np.ndarray]:
    n = audio_io.FRAME_SAMPLES
    padded = np.concatenate([samples, np.zeros((-len(samples)) % n, dtype=np.int16)])
    return [padded[i : i + n] for i in range(0, len(padded), n)]


def _clip() -> np.ndarray:
    return audio_io.read_file(CLIP)


# -- measuring (the same code records expected.json and checks against it) -----------------------------------------
def measure(stage: str, backend: Any, asr: Any = None) -> dict[str, Any]:
    if stage == "nlu":
        out = {}
        for s in NLU_SENTENCES:
            r = backend.parse(s)
            out[s] = {"intent": r.intent, "confidence": round(float(r.confidence), 4)}
        return {"sentences": out}
    if stage == "asr":
        r = backend.transcribe(_clip(), "en")
        return {"transcript": r.text.strip(), "confidence": round(float(r.confidence), 4)}
    if stage == "wake":
        backend.reset()
        scores = [backend.process(f).get("alexa", 0.0) for f in _frames(_clip())]
        backend.reset()
        quiet = [
            backend.process(f).get("alexa", 0.0) for f in _frames(np.zeros(audio_io.PIPELINE_RATE * 2, dtype=np.int16))
        ]
        backend.reset()
        return {"alexa_max": round(float(max(scores)), 4), "silence_max": round(float(max(quiet)), 4)}
    if stage == "vad":
        backend.reset()
        probs = [backend.speech_probability(f) for f in _frames(_clip())]
        backend.reset()
        quiet = [backend.speech_probability(f) for f in _frames(np.zeros(audio_io.PIPELINE_RATE, dtype=np.int16))]
        backend.reset()
        return {
            "speech_max": round(float(max(probs)), 4),
            "speech_frames": int(sum(p > 0.5 for p in probs)),
            "silence_max": round(float(max(quiet)), 4),
        }
    if stage == "tts":
        audio = np.concatenate(list(backend.synthesize(TTS_SENTENCE)))
        rate = backend.sample_rate
        out = {
            "seconds": round(len(audio) / rate, 3),
            "rms": round(float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))), 1),
        }
        if asr is not None:
            import soxr

            if rate != audio_io.PIPELINE_RATE:
                audio = audio_io.to_int16(soxr.resample(audio_io.to_float(audio), rate, audio_io.PIPELINE_RATE))
            # Piper samples its voice afresh on every call and tiny.en sometimes mishears one take ("the kitchen
            # might as on"): up to three takes, the best heard one counts; a broken voice or runtime fails them all
            heard = asr.transcribe(audio, "en").text.strip()
            for _ in range(2):
                if _wer(TTS_SENTENCE, heard) <= 0.0:
                    break
                again = np.concatenate(list(backend.synthesize(TTS_SENTENCE)))
                if rate != audio_io.PIPELINE_RATE:
                    again = audio_io.to_int16(soxr.resample(audio_io.to_float(again), rate, audio_io.PIPELINE_RATE))
                retry = asr.transcribe(again, "en").text.strip()
                heard = min(heard, retry, key=lambda h: _wer(TTS_SENTENCE, h))
            out["heard"] = heard
        return out
    if stage == "speaker":
        from assistant.speakers.identify import with_noise

        clip = _clip()
        e = backend.embed(clip)
        noisy = backend.embed(with_noise(clip, 20.0, "white", seed=0))
        return {
            "norm": round(float(np.linalg.norm(e)), 4),
            "noisy_cosine": round(float(np.dot(e, noisy)), 4),
            "first": [round(float(x), 4) for x in e[:12]],
        }
    raise ValueError(f"no self-check for stage {stage!r}")


def compare(stage: str, got: dict[str, Any], exp: dict[str, Any], tol: dict[str, float]) -> list[str]:
    """What differs from the known output, in words (empty: the model is right)."""
    problems = []
    if stage == "nlu":
        intents = {v["intent"] for v in got["sentences"].values()}
        if len(intents) == 1 and len(got["sentences"]) > 1:
            problems.append(f"every sentence gets the same intent ({intents.pop()})")
        for s, e in exp["sentences"].items():
            g = got["sentences"].get(s)
            if g is None:
                continue
            if g["intent"] != e["intent"]:
                problems.append(
                    f"{s!r} -> {g['intent']} ({g['confidence']:.2f}), expected {e['intent']} ({e['confidence']:.2f})"
                )
            elif abs(g["confidence"] - e["confidence"]) > tol["nlu_confidence"]:
                problems.append(
                    f"{s!r} -> {g['intent']} at {g['confidence']:.3f}, expected {e['confidence']:.3f} "
                    f"+/- {tol['nlu_confidence']}"
                )
    elif stage == "asr":
        wer = _wer(exp["transcript"], got["transcript"])
        if wer > tol["asr_wer"]:
            problems.append(f"heard {got['transcript']!r}, expected {exp['transcript']!r} (WER {wer:.2f})")
        if abs(got["confidence"] - exp["confidence"]) > tol["asr_confidence"]:
            problems.append(
                f"confidence {got['confidence']:.3f}, expected {exp['confidence']:.3f} +/- {tol['asr_confidence']}"
            )
    elif stage == "wake":
        if abs(got["alexa_max"] - exp["alexa_max"]) > tol["wake_score"]:
            problems.append(
                f"'alexa' clip scores {got['alexa_max']:.3f}, expected {exp['alexa_max']:.3f} +/- {tol['wake_score']}"
            )
        if got["silence_max"] > tol["wake_silence_max"]:
            problems.append(f"silence scores {got['silence_max']:.3f} (> {tol['wake_silence_max']})")
    elif stage == "vad":
        if abs(got["speech_max"] - exp["speech_max"]) > tol["vad_prob"]:
            problems.append(f"speech probability {got['speech_max']:.3f}, expected {exp['speech_max']:.3f}")
        if abs(got["speech_frames"] - exp["speech_frames"]) > tol["vad_frames"]:
            problems.append(f"{got['speech_frames']} speech frames, expected {exp['speech_frames']}")
        if got["silence_max"] > tol["vad_silence_max"]:
            problems.append(f"silence has speech probability {got['silence_max']:.3f}")
    elif stage == "speaker":
        if abs(got["norm"] - 1.0) > 1e-3:
            problems.append(f"the voice embedding has length {got['norm']:.4f}, not 1")
        if abs(got["noisy_cosine"] - exp["noisy_cosine"]) > tol["speaker_cosine"]:
            problems.append(
                f"the clip and its 20 dB noisy copy score {got['noisy_cosine']:.3f}, expected {exp['noisy_cosine']:.3f}"
            )
        if max(abs(g - e) for g, e in zip(got["first"], exp["first"])) > tol["speaker_values"]:
            problems.append(f"the clip's embedding starts {got['first']}, expected {exp['first']}")
    elif stage == "tts":
        if abs(got["seconds"] - exp["seconds"]) > tol["tts_seconds_rel"] * exp["seconds"]:
            problems.append(f"{TTS_SENTENCE!r} lasts {got['seconds']:.2f} s, expected {exp['seconds']:.2f} s")
        if got["rms"] < tol["tts_rms_rel"] * exp["rms"]:
            problems.append(f"the voice is (almost) silent: RMS {got['rms']:.0f}, expected about {exp['rms']:.0f}")
        if "heard" in got and _wer(TTS_SENTENCE, got["heard"]) > tol["tts_heard_wer"]:
            problems.append(f"the ASR hears {got['heard']!r} for {TTS_SENTENCE!r}")
    return problems


def check_stage(stage: str, backend: Any, asr: Any = None, expected: dict[str, Any] | None = None) -> CheckResult:
    expected = expected or load_expected()
    name = f"{getattr(backend, 'name', '?')} {getattr(backend, 'version', '')}".strip()
    t0 = time.perf_counter()
    try:
        got = measure(stage, backend, asr)
    except Exception as err:  # noqa: BLE001 - a model that crashes on its fixed input fails its check
        return CheckResult(
            stage,
            False,
            name,
            round(time.perf_counter() - t0, 3),
            [f"crashed on its fixed input: {type(err).__name__}: {err}"],
        )
    problems = compare(stage, got, expected[stage], expected["tolerance"])
    return CheckResult(stage, not problems, name, round(time.perf_counter() - t0, 3), problems, got)


def self_check(backends: dict[str, Any], stages: tuple[str, ...] = STAGES) -> list[CheckResult]:
    """Check every given backend (None or a stage with no expected output is skipped)."""
    expected = load_expected()
    asr = backends.get("asr")
    return [
        check_stage(stage, backends[stage], asr, expected)
        for stage in stages
        if backends.get(stage) is not None and stage in expected and _checkable(stage, backends[stage])
    ]


def _checkable(stage: str, backend: Any) -> bool:
    """Only the shipped engines have recorded outputs; a plug-in backend (registry) is not judged by them."""
    known = {
        "wake": ("openwakeword", "microwakeword", "cascade"),  # each scores the clip ~1, silence ~0 (same expectations)
        "vad": "silero-vad",
        "asr": "faster-whisper",
        "nlu": "onnx-joint-nlu",
        "tts": "piper",
        "speaker": "speaker-id",
    }
    names = known.get(stage, ())
    return getattr(backend, "name", "") in ((names,) if isinstance(names, str) else names)


def runner_backends(runner: Any) -> dict[str, Any]:
    return {stage: runner.backend(stage) for stage in STAGES}


def require_ok(results: list[CheckResult]) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        detail = "; ".join(f"{r.stage} ({r.backend}): {', '.join(r.problems)}" for r in failed)
        raise SelfCheckFailed(
            "model-self-check-failed",
            f"A model gives wrong outputs on its fixed self-check input, so it is not served: "
            f"{detail}. Reinstall (scripts/setup.sh) or check the CPU/runtime build.",
        )


def record(path: Path = EXPECTED, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """Measure the shipped models now and write expected.json (only after a deliberate model change). `stages`: only
    these are re-measured (the model that changed); the others keep their recorded outputs."""
    from assistant.config import load_settings
    from assistant.core import registry

    settings = load_settings()
    build = registry.Build(settings=settings)
    backends = {s: registry.create(s, getattr(settings, s).backend, build) for s in STAGES}
    doc = {
        "about": "Known outputs of the shipped models on fixed inputs (assistant/models_check.py). Recorded with "
        "`python -m assistant.models_check --record`.",
        "backends": {s: f"{b.name} {getattr(b, 'version', '')}".strip() for s, b in backends.items()},
        "tolerance": {
            "nlu_confidence": 0.05,
            "asr_wer": 0.0,
            "asr_confidence": 0.1,
            "wake_score": 0.15,
            "wake_silence_max": 0.2,
            "vad_prob": 0.15,
            "vad_frames": 4,
            "vad_silence_max": 0.3,
            "tts_seconds_rel": 0.15,
            "tts_rms_rel": 0.3,
            "tts_heard_wer": 0.25,
            "speaker_cosine": 0.05,
            "speaker_values": 0.02,
        },
    }
    old = load_expected(path) if path.is_file() and set(stages) != set(STAGES) else {}
    doc["tolerance"] |= old.get("tolerance", {})  # a partial record keeps the tolerances as they were
    for s in STAGES:
        if s in stages or s not in old:
            doc[s] = measure(s, backends[s], backends["asr"])
        else:
            doc[s], doc["backends"][s] = old[s], old["backends"][s]
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


if __name__ == "__main__":
    import sys

    if "--record" in sys.argv:  # `--record nlu`: only that stage
        only = tuple(a for a in sys.argv[sys.argv.index("--record") + 1 :] if a in STAGES) or STAGES
        print(json.dumps(record(stages=only), indent=1))
    else:
        from assistant.config import load_settings
        from assistant.core import registry

        st = load_settings()
        b = registry.Build(settings=st)
        res = self_check({s: registry.create(s, getattr(st, s).backend, b) for s in STAGES})
        print(json.dumps([r.to_dict() for r in res], indent=1))
        sys.exit(0 if all(r.ok for r in res) else 1)
