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


def _encoder():
    import resemblyzer
    import torch
    from resemblyzer import hparams as hp
    from torch import nn

    weights = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
    state = torch.load(weights, map_location="cpu")["model_state"]

    import librosa

    fb = librosa.filters.mel(sr=hp.sampling_rate, n_fft=400, n_mels=hp.mel_n_channels).astype(np.float32)

    class SpectrogramEncoder(nn.Module):
        """power spectrogram (batch, frames, 201) -> mel (librosa's filterbank) -> GE2E LSTM -> L2-normed 256-d."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mel_fb", torch.from_numpy(fb.T.copy()))  # (201, 40)
            self.lstm = nn.LSTM(hp.mel_n_channels, hp.model_hidden_size, hp.model_num_layers, batch_first=True)
            self.linear = nn.Linear(hp.model_hidden_size, hp.model_embedding_size)

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
    import resemblyzer
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
        "source": "resemblyzer " + getattr(resemblyzer, "__version__", "0.1.4") + " pretrained.pt",
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
