"""`assistant eval nlu --data FILE`: intent accuracy, slot span F1 and confusions of the NLU model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model (nlu)")
    esub = p.add_subparsers(dest="eval_target", metavar="TARGET")
    n = esub.add_parser("nlu", help="evaluate the NLU model on SLURP-style JSONL or an HWU64 CSV file/folder")
    n.add_argument("--data", type=Path, required=True, help="SLURP .jsonl, HWU64 .csv, or a folder of HWU64 CSVs")
    n.add_argument("--model-dir", type=Path, default=None, help="default: models/nlu")
    n.add_argument("--limit", type=int, default=None, help="only the first N rows")
    n.add_argument("--threads", type=int, default=1)
    n.add_argument("--spoken", choices=["piper", "espeak"],
                   help="speak each sentence with this voice and evaluate on what the ASR heard (slow: ~0.5 s a row)")
    n.add_argument("--transcripts", type=Path, default=None,
                   help="with --spoken: a JSON Lines file of what the ASR heard, reused and extended, so another NLU "
                        "model is evaluated on the same transcripts without synthesizing and decoding again")
    n.add_argument("--json", action="store_true", help="print the metrics as JSON")
    n.set_defaults(func=run_nlu)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_nlu(args: argparse.Namespace) -> int:
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.training.nlu_eval import evaluate, format_report

    if not args.data.exists():
        print(f"data not found: {args.data}")
        return 2
    backend = OnnxJointNlu(args.model_dir, threads=args.threads)
    if args.spoken:
        backend = _Spoken(backend, args.spoken, args.transcripts)
    metrics = evaluate(args.data, backend, limit=args.limit)
    if args.spoken:
        import statistics

        metrics["spoken"] = {"voice": args.spoken, "asr": backend.asr.version,
                             "mean_wer": round(statistics.fmean(backend.wers), 4) if backend.wers else None}
    print(json.dumps(metrics, indent=1) if args.json else format_report(metrics))
    return 0


class _Spoken:
    """NLU on what the ASR hears: each gold sentence is synthesized (Piper or espeak-ng), transcribed by the
    pipeline's faster-whisper backend, and the transcript is parsed. Slots are then scored by value."""

    def __init__(self, nlu, voice: str, transcripts: Path | None = None) -> None:
        from assistant.config import load_settings
        from assistant.core import registry

        settings = load_settings()
        self.nlu, self.voice = nlu, voice
        self.asr = registry.create("asr", settings.asr.backend, registry.Build(settings=settings))
        self.wers: list[float] = []
        self.transcripts, self.heard = transcripts, {}
        if transcripts is not None and transcripts.exists():
            for line in transcripts.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if row.get("voice") == voice and row.get("asr") == self.asr.version:
                    self.heard[row["text"]] = row["heard"]

    def parse(self, text: str, context=None):
        import jiwer

        from assistant.simulate.voices import espeak_speech, piper_speech
        from assistant.text import normalize_dataset as clean

        heard = self.heard.get(text)
        if heard is None:
            audio = piper_speech(text) if self.voice == "piper" else espeak_speech(text)
            heard = self.heard[text] = self.asr.transcribe(audio, "en").text
            if self.transcripts is not None:
                with self.transcripts.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"voice": self.voice, "asr": self.asr.version, "text": text, "heard": heard}) + "\n")
        if clean(text):
            self.wers.append(jiwer.wer(clean(text), clean(heard) or "-"))
        return self.nlu.parse(heard or " ", context)
