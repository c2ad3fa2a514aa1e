"""Options and output shared by the commands that run the pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.config import DEFAULT_HOME, DEFAULT_PIPELINE, default_data_dir, load_settings


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_PIPELINE, help="pipeline.yaml (default: the repo's)")
    p.add_argument("--profile", type=Path, help="hardware/NAME.yaml whose values override pipeline.yaml")
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="home YAML: rooms, devices, satellites")
    p.add_argument("--data-dir", type=Path, help="traces and skill state (default: $ASSISTANT_DATA_DIR or ~/.local/share/voice-assistant)")
    p.add_argument("--json", action="store_true", help="print one JSON object per turn (JSON Lines)")


def make_runner(args: argparse.Namespace, out_dir: Path | None = None, load_audio_stages: bool = True):
    from assistant.core.runner import Runner

    settings = load_settings(args.config, args.profile)
    return Runner(settings, args.home, data_dir=args.data_dir or default_data_dir(), out_dir=out_dir,
                  load_audio_stages=load_audio_stages)


def print_turn(rec: dict[str, Any], as_json: bool) -> None:
    if as_json:
        data = rec.to_dict() if hasattr(rec, "to_dict") else dict(rec)
        print(json.dumps(data, ensure_ascii=False, default=str), flush=True)
        return
    src = rec.get("source", {})
    where = f"{src.get('file')} @ {src.get('offset_seconds', 0):.1f}s" if src.get("kind") == "file" else src.get("kind", "")
    wake = rec.get("wake") or {}
    head = f"[{where}]" + (f" wake {wake['model']} ({wake['score']:.2f})" if wake.get("detected") else "")
    lines = [head, f"  turn      {rec['turn_id'][:12]}  session {rec['session_id'][:12]}"]
    if rec.get("transcript") is not None:
        conf = f"  (asr {rec['asr_confidence']:.2f})" if rec.get("asr_confidence") is not None else ""
        lines.append(f"  heard     \"{rec['transcript']}\"{conf}")
    if rec.get("intent"):
        slots = ", ".join(f"{k}={v}" for k, v in rec.get("slots", {}).items())
        lines.append(f"  intent    {rec['intent']} ({rec['intent_confidence']:.2f})" + (f"  slots: {slots}" if slots else ""))
    for e in rec.get("entities", []):
        lines.append(f"  entity    {e['slot']}={e['value']!r} -> {e.get('entity_id') or '?'} ({e.get('score', 0):.2f})")
    act = rec.get("action")
    if act:
        target = f" -> {act['target']}" if act.get("target") else ""
        lines.append(f"  action    {act['name']}{target} [{act['status']}]")
    if rec.get("response_text"):
        audio = f"  -> {rec['response_audio']}" if rec.get("response_audio") else ""
        lines.append(f"  says      \"{rec['response_text']}\"{audio}")
    if rec.get("error"):
        lines.append(f"  error     [{rec['error']['code']}] {rec['error']['message']}")
    lat = rec.get("latency_ms", {})
    stages = ", ".join(f"{k} {v:.0f}" for k, v in lat.items() if k in ("asr", "nlu", "resolve", "respond", "tts"))
    lines.append(f"  latency   {stages} ms; end of speech -> first audio {lat.get('end_to_end', 0):.0f} ms")
    print("\n".join(lines), flush=True)


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
