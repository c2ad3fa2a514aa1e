"""Speaker embeddings: Resemblyzer's GE2E voice encoder (3-layer LSTM, 256-d) exported to ONNX, on onnxruntime.

The weights come from the resemblyzer wheel (Apache-2.0); `assistant train speaker-encoder` exports them to
models/speaker/ (see its MODEL_CARD.md). Preprocessing reproduces resemblyzer's `preprocess_wav` + `embed_utterance`
in numpy: volume raised (never lowered) to -30 dBFS, silences longer than ~0.2 s cut (resemblyzer uses webrtcvad;
here an energy gate over the same 30 ms windows, because the request audio is already endpointed by Silero), the
power spectrogram (n_fft 400, hop 160, periodic Hann, zero-padded centre frames: librosa's defaults), partial
utterances of 160 frames (1.6 s) at 1.3 a second, each embedded, averaged and L2-normalised. The mel filterbank
is the graph's first layer. tests/integration/test_speaker.py checks the result against resemblyzer's torch model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from assistant.config import REPO_ROOT
from assistant.errors import ModelError

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "speaker"
EXPORT_CMD = "assistant train speaker-encoder"
RATE = 16000
N_FFT = 400
HOP = 160
PARTIAL_FRAMES = 160
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann (scipy's fftbins=True)


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the level to `target_dbfs` RMS, as resemblyzer does: its mel input is not logarithmic."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 1e-9:
        return wav
    change = target_dbfs - 20 * np.log10(rms)
    return wav if change < 0 else (wav * 10 ** (change / 20)).astype(np.float32)


def trim_long_silences(wav: np.ndarray, window: int = 480, max_silence: int = 6, gate_db: float = 40.0) -> np.ndarray:
    """Drop runs of silent 30 ms windows (energy `gate_db` below the loudest window) longer than `max_silence`."""
    n = len(wav) // window
    if n < 3:
        return wav
    frames = wav[: n * window].reshape(n, window)
    db = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)
    voiced = db > db.max() - gate_db
    keep = np.convolve(voiced.astype(float), np.ones(2 * max_silence + 1), mode="same") > 0  # dilate both ways
    if keep.sum() < 3:
        return wav
    return frames[keep].reshape(-1)


def power_spectrogram(wav: np.ndarray) -> np.ndarray:
    """|STFT|^2 as (frames, 201), frames = 1 + len // 160 (librosa.stft, center=True, pad_mode='constant')."""
    padded = np.pad(wav.astype(np.float32), N_FFT // 2)
    n = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.fft.rfft(padded[idx] * _WINDOW, axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def partial_slices(n_samples: int) -> list[tuple[int, int]]:
    """Frame ranges of the partial utterances (resemblyzer's `compute_partial_slices`, rate 1.3, coverage 0.75)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((RATE / PARTIALS_PER_SECOND) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + step + 1)
    slices = [(i, i + PARTIAL_FRAMES) for i in range(0, steps, step)]
    start = slices[-1][0] * HOP
    coverage = (n_samples - start) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


class ResemblyzerOnnx:
    """`embed(samples)` -> float32 (256,), unit length: cosine similarity is a dot product."""

    name = "resemblyzer-onnx"

    def __init__(self, model_dir: Path | str | None = None, *, threads: int = 1, trim: bool = True) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        model = self.model_dir / "model.onnx"
        if not model.is_file():
            raise ModelError(
                "speaker-model-missing",
                f"Speaker encoder not found: {model}. Recreate it with `{EXPORT_CMD}` (needs the train extra: "
                "torch, resemblyzer, onnx).",
            )
        import onnxruntime as ort

        meta_path = self.model_dir / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.version = str(meta.get("source", "unknown"))
        self.trim = trim
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(
                "speaker-model-invalid", f"Cannot load {model}: {exc}. Re-export with `{EXPORT_CMD}`."
            ) from exc

    def embed(self, samples: np.ndarray, rate: int = RATE) -> np.ndarray:
        """samples: int16 (or float in [-1, 1]) mono at 16 kHz."""
        if rate != RATE:
            raise ValueError(f"the speaker encoder needs {RATE} Hz audio, not {rate}")
        wav = np.asarray(samples)
        wav = wav.astype(np.float32) / 32768.0 if wav.dtype == np.int16 else wav.astype(np.float32)
        wav = normalize_volume(wav)
        if self.trim:
            wav = trim_long_silences(wav)
        return self.embed_preprocessed(wav)

    def embed_preprocessed(self, wav: np.ndarray) -> np.ndarray:
        """A waveform already preprocessed (resemblyzer's `embed_utterance` input): partials, average, L2 norm."""
        slices = partial_slices(len(wav))
        need = slices[-1][1] * HOP
        if need >= len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        power = power_spectrogram(wav)
        batch = np.stack([power[a:b] for a, b in slices])
        partials = self.session.run(None, {"power": batch})[0]
        raw = partials.mean(axis=0)
        return (raw / max(float(np.linalg.norm(raw)), 1e-9)).astype(np.float32)
