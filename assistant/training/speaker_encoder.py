"""`assistant train speaker-encoder`: export Resemblyzer's shipped GE2E voice encoder to ONNX (models/speaker/).

Nothing is trained: the weights are `pretrained.pt` inside the resemblyzer wheel (Apache-2.0; a 3-layer LSTM over 40
mel bands, 256-d output, trained with the GE2E loss on LibriSpeech, VoxCeleb 1+2). The graph takes the *power*
spectrogram (n_fft 400, hop 160, as `librosa.feature.melspectrogram` computes it) and applies librosa's 40-band
Slaney mel filterbank as its first layer, so the runtime (assistant/backends/speaker/resemblyzer_onnx.py) needs only
numpy's FFT and onnxruntime, not librosa or torch. Needs the `train` extra (torch, resemblyzer).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

OPSET = 17
N_MELS, HIDDEN, LAYERS, EMBEDDING = 40, 256, 3, 256
"""resemblyzer/hparams.py (its package is not imported: its __init__ needs webrtcvad, which needs pkg_resources)."""


def weights_path() -> Path:
    """pretrained.pt inside the installed resemblyzer wheel, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("resemblyzer is not installed: pip install '.[train]' (or 'resemblyzer==0.1.4').")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def _encoder():
    import torch
    from torch import nn

    weights = weights_path()
    state = torch.load(weights, map_location="cpu")["model_state"]

    import librosa

    fb = librosa.filters.mel(sr=16000, n_fft=400, n_mels=N_MELS).astype(np.float32)

    class SpectrogramEncoder(nn.Module):
        """power spectrogram (batch, frames, 201) -> mel (librosa's filterbank) -> GE2E LSTM -> L2-normed 256-d."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mel_fb", torch.from_numpy(fb.T.copy()))  # (201, 40)
            self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
            self.linear = nn.Linear(HIDDEN, EMBEDDING)

        def forward(self, power):
            mels = torch.matmul(power, self.mel_fb)
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / torch.clamp(torch.norm(raw, dim=1, keepdim=True), min=1e-9)

    model = SpectrogramEncoder()
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("similarity")}, strict=False
    )
    if [m for m in missing if m != "mel_fb"] or [u for u in unexpected if not u.startswith("similarity")]:
        raise RuntimeError(f"pretrained.pt does not fit the encoder: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, weights


def export(out_dir: Path) -> dict:
    from importlib.metadata import version

    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, weights = _encoder()
    dummy = torch.rand(2, 160, 201)
    path = out_dir / "model.onnx"
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["power"],
        output_names=["embedding"],
        dynamic_axes={"power": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    meta = {
        "source": f"resemblyzer {version('resemblyzer')} pretrained.pt",
        "source_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "sample_rate": 16000,
        "n_fft": 400,
        "hop_length": 160,
        "n_mels": 40,
        "partial_frames": 160,
        "partials_per_second": 1.3,
        "min_coverage": 0.75,
        "norm_target_dbfs": -30.0,
        "embedding_size": 256,
        "opset": OPSET,
        "torch": torch.__version__,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta["bytes"] = path.stat().st_size
    return meta


if __name__ == "__main__":
    from assistant.config import REPO_ROOT

    print(json.dumps(export(REPO_ROOT / "models" / "speaker"), indent=1))
