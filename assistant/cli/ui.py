"""`assistant ui [--port 8770] [--host 127.0.0.1] [--data-dir DIR]`: the trace viewer (assistant/ui, docs/ui.md)."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings
from assistant.errors import AssistantError


def register(sub) -> None:
    p = sub.add_parser("ui", help="a local web app over the traces: turns, timelines, defects, learning, latency")
    p.add_argument("--port", type=int, default=8770, help="port (default 8770)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other needs the token printed at start)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where traces.db lives (default: $ASSISTANT_DATA_DIR or ~/.local/share/voice-assistant)",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="response audio dir (default ./out)")
    p.add_argument(
        "--audio-root",
        type=Path,
        action="append",
        default=[],
        help="another folder whose audio files may be played (recordings, an export); repeatable",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.ui import UiConfig, needs_token, serve

    data_dir = args.data_dir or default_data_dir()
    db = Path(load_settings(args.config).traces.db)
    path = db if db.is_absolute() else data_dir / db
    if not path.exists():
        raise AssistantError("no-traces", f"No trace store at {path}: run `assistant replay`, `say` or `listen` first.")
    token = secrets.token_urlsafe(18) if needs_token(args.host) else None
    serve(
        UiConfig(
            db_path=path,
            data_dir=data_dir,
            out_dir=args.out,
            host=args.host,
            port=args.port,
            audio_roots=list(args.audio_root),
            token=token,
        )
    )
    return 0
