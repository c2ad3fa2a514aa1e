"""Give a simulator run made before runs kept their audio (`SimConfig.keep_audio`) the request audio a device with
`traces.keep_request_audio` would have kept: the very samples the pipeline heard, taken from the speech cache (its
key is the spoken text, the voice and the noise, all in `sim_truth.jsonl`), written to `requests/<turn>.flac`
beside the trace store and named in each record's `request_audio`.

    python -m assistant.simulate.backfill_audio RUN_DIR... --cache SIM_CACHE

Turns whose audio is not in the cache are left without (counted as `missing`); nothing is synthesized.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

from assistant import audio as audio_io
from assistant.simulate.speech_cache import SpeechCache


def backfill(run_dir: Path, cache_root: Path) -> dict[str, int]:
    run_dir, cache_root = Path(run_dir), Path(cache_root)
    index = sqlite3.connect(f"file:{cache_root / 'index.sqlite'}?mode=ro", uri=True)
    db = sqlite3.connect(run_dir / "traces.db")
    counts = {"written": 0, "kept": 0, "missing": 0}
    try:
        with open(run_dir / "sim_truth.jsonl", encoding="utf-8") as f:
            truth = [json.loads(line) for line in f if line.strip()]
        for t in truth:
            if not t.get("spoken") or not t.get("voice"):
                continue
            out = run_dir / "requests" / f"{t['turn_id']}.flac"
            if not out.exists():
                said = t.get("audio_text") or t["spoken"]  # a cut-off request's audio holds the words before the pause
                key = SpeechCache.key_of(said, t["voice"], t["noise"])
                row = index.execute("SELECT file FROM audio WHERE key = ?", (key,)).fetchone()
                src = cache_root / "audio" / row[0] if row else None
                if src is None or not src.exists():
                    counts["missing"] += 1
                    continue
                audio_io.write_flac(out, np.load(src), audio_io.PIPELINE_RATE)
                counts["written"] += 1
            else:
                counts["kept"] += 1
            db.execute(
                "UPDATE turns SET record = json_set(record, '$.request_audio', ?) WHERE turn_id = ?",
                (str(out.resolve()), t["turn_id"]),
            )
        db.commit()
    finally:
        db.close()
        index.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant.simulate.backfill_audio", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="simulator output folders (traces.db + sim_truth.jsonl)")
    p.add_argument("--cache", type=Path, required=True, help="the speech cache the runs were made with")
    args = p.parse_args(argv)
    for r in args.runs:
        if not (r / "traces.db").is_file() or not (r / "sim_truth.jsonl").is_file():
            print(f"{r}: not a simulator run (traces.db and sim_truth.jsonl expected)", file=sys.stderr)
            return 2
        print(r, backfill(r, args.cache), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
