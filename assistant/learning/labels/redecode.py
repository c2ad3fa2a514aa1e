"""What the request's words and audio say about where a turn failed: the re-decode counterfactual, and the signs of a
request the endpointer cut off at a pause.

Re-decode: decode a failed turn's kept request audio a second way and see what changes.

The pipeline decodes greedily (beam 1) to answer fast; offline there is time for a beam of 5, or for a stronger model
(Whisper base, `REDECODE_MODELS`). When the wider search
hears different words and the NLU then understands them (confidently, or as the goal's later attempt), the words were
to blame (ASR). When it hears the same words, the transcript is what the audio holds, and a failure after it points
at the understanding or the skill. Issue 14 names this "the strongest evidence, cheap offline".

Only turns that might have failed are re-decoded (`worth_redecoding`: not carried out, unsure, or retried), at about
a quarter of the audio's length on one thread with tiny.en. Results are cached per audio file; `cache_file` keeps
them between runs (training and evaluation decode the same stores again and again).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from assistant.learning.labels.features import TurnView
from assistant.learning.signals import similarity
from assistant.text import normalize_unicode as _norm

RD_FEATURES = (
    "rd_has",
    "rd_changed",
    "rd_sim",
    "rd_asr_conf",
    "rd_nlu_same",
    "rd_nlu_conf",
    "rd_conf_gain",
    "rd_target_gain",
    "rd_target_fixes",
    "rd_lm_gain",
)


_OPEN_ENDINGS = frozenset(
    "a an the to for of in on at by with from and or but my your his her their our some any this that these those "
    "set turn play put add remind tell what's whats is are about into".split()
)


def cut_off_features(t: TurnView, target: TurnView | None, lm: Any) -> dict[str, float]:
    """A request that ends where a sentence cannot ("set a timer for"), that the LM does not expect to end there, and
    whose later attempt begins with the same words and goes on: the endpointer ended it at a pause."""
    words = _norm(t.transcript).split()
    f = {"ep_open_end": 0.0, "ep_end_logp": 0.0, "ep_prefix_of_target": 0.0, "ep_words_vs_target": 1.0}
    if not words:
        return f
    f["ep_open_end"] = float(words[-1] in _OPEN_ENDINGS)
    if lm is not None:
        f["ep_end_logp"] = math.log10(lm.p(words[-1], "</s>"))
    if target is not None and target.transcript:
        tw = _norm(target.transcript).split()
        lead = 0
        for a, b in zip(words, tw):
            if a != b:
                break
            lead += 1
        f["ep_prefix_of_target"] = float(lead >= 2 and lead == len(words) and len(tw) > len(words))
        f["ep_words_vs_target"] = len(words) / max(len(tw), 1)
    return f


def worth_redecoding(t: TurnView, retried: bool) -> bool:
    """A turn that might have failed: not carried out, an unsure hearing or understanding, or tried again."""
    if not t.request_audio or not t.substantive:
        return False
    return t.status != "done" or t.intent_conf < 0.85 or (t.asr_conf or 0.0) < 0.8 or retried


REDECODE_MODELS = {
    # name -> (faster-whisper model, beam, encoder window seconds): what `--redecode-model` picks
    "tiny.en": ("tiny.en", 5, None),  # the pipeline's own model with a wider beam
    "base": ("base", 1, 10.0),  # a stronger recogniser (the asr-base extra), greedy, on a 10 s window: ~0.2 s a turn
}


class Redecoder:
    """faster-whisper on the kept audio: the pipeline's model with a wider beam (`tiny.en`) or a stronger model
    (`base`), loaded on first use."""

    def __init__(
        self,
        enabled: bool = True,
        beam_size: int | None = None,
        cache_file: Path | None = None,
        asr: Any = None,
        model: str = "tiny.en",
    ):
        if model not in REDECODE_MODELS:
            raise ValueError(f"redecode model {model!r}: one of {', '.join(REDECODE_MODELS)}")
        self.enabled = enabled
        self.model = model
        name, beam, window = REDECODE_MODELS[model]
        self.beam_size = beam if beam_size is None else beam_size
        self.window_seconds = window
        self._asr = asr
        self.cache_file = Path(cache_file) if cache_file else None
        self._cache: dict[str, tuple[str, float]] = {}
        self._dirty = False
        self.decodes = 0
        self.missing = 0
        self.without_audio_share = 0.0
        """Training only: the share of sessions treated as if their store kept no audio (hashed by session), so one
        model labels both stores with request audio and the default ones without (`traces.keep_request_audio`)."""
        if self.cache_file is not None and self.cache_file.is_file():
            self._cache = {k: tuple(v) for k, v in json.loads(self.cache_file.read_text()).items()}

    @property
    def asr(self) -> Any:
        if self._asr is None:
            from assistant.backends.asr.faster_whisper import FasterWhisperAsr

            name = REDECODE_MODELS[self.model][0]
            self._asr = FasterWhisperAsr(name, beam_size=self.beam_size, threads=1, window_seconds=self.window_seconds)
        return self._asr

    def decode(self, path: str) -> tuple[str, float] | None:
        """(text, confidence) of the wider decode, or None when the file is gone (pruned, moved)."""
        p = Path(path)
        key = f"{p.name}:{self.beam_size}" + ("" if self.model == "tiny.en" else f":{self.model}")
        if key in self._cache:
            return self._cache[key]
        if not p.is_file():
            self.missing += 1
            return None
        from assistant import audio as audio_io

        samples = audio_io.read_file(p)
        # the same audio in another store (a simulator run again, a copied store) is decoded once
        content = f"sha1:{hashlib.sha1(samples.tobytes()).hexdigest()}:{self.beam_size}:{self.model}"
        if content in self._cache:
            self._cache[key] = self._cache[content]
            return self._cache[key]
        r = self.asr.transcribe(samples, "en")
        self.decodes += 1
        self._cache[key] = self._cache[content] = (r.text, float(r.confidence))
        self._dirty = True
        return self._cache[key]

    @property
    def cached(self) -> int:
        """Re-decodes held (from the cache file and this run)."""
        return len(self._cache)

    def save(self) -> None:
        if self.cache_file is not None and self._dirty:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            self.cache_file.write_text(json.dumps(self._cache))
            self._dirty = False

    def _as_without_audio(self, session_id: str) -> bool:
        if self.without_audio_share <= 0:
            return False
        h = int(hashlib.sha1(session_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return h < self.without_audio_share

    def features(
        self, t: TurnView, target: TurnView | None, retried: bool, parse: Any, lm: Any = None
    ) -> dict[str, float]:
        """`parse(text) -> (intent, confidence)`: the NLU re-run (cached by the caller); `lm`: the request LM."""
        f = dict.fromkeys(RD_FEATURES, 0.0)
        if not self.enabled or not worth_redecoding(t, retried) or self._as_without_audio(t.session_id):
            return f
        got = self.decode(t.request_audio or "")
        if got is None:
            return f
        text, conf = got
        f["rd_has"] = 1.0
        f["rd_asr_conf"] = conf
        f["rd_changed"] = float(_norm(text) != _norm(t.transcript))
        f["rd_sim"] = similarity(text, t.transcript) / 100 if text and t.transcript else 0.0
        if not f["rd_changed"]:
            f["rd_nlu_same"], f["rd_nlu_conf"] = 1.0, t.intent_conf
            return f
        intent, nconf = parse(text)
        f["rd_nlu_same"] = float(intent == t.intent)
        f["rd_nlu_conf"] = nconf
        f["rd_conf_gain"] = nconf - t.intent_conf
        if target is not None and target.transcript:
            f["rd_target_gain"] = (
                similarity(text, target.transcript) - similarity(t.transcript, target.transcript)
            ) / 100
            f["rd_target_fixes"] = float(intent == target.intent and t.intent != target.intent)
        if lm is not None:
            f["rd_lm_gain"] = lm.score(text)["lm_logp"] - lm.score(t.transcript)["lm_logp"]
        return f
