"""`assistant privacy opt-out|opt-in|status USER`: per-user consent to being recorded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings


def register(sub) -> None:
    p = sub.add_parser("privacy", help="per-user opt-out of recording, pseudonyms")
    psub = p.add_subparsers(dest="privacy_cmd", metavar="ACTION")
    for name, helptext, func in (
        (
            "opt-out",
            "record nothing for USER from now on; delete their voiceprint and what was recorded (unless --keep)",
            run_opt_out,
        ),
        ("opt-in", "record USER's turns again", run_opt_in),
        ("status", "whether USER is opted out, and their pseudonym in exports", run_status),
    ):
        q = psub.add_parser(name, help=helptext)
        q.add_argument("user", metavar="USER", help="the user id (session.user_id in pipeline.yaml)")
        q.add_argument("--data-dir", type=Path, help="where traces.db and the privacy settings live")
        q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
        q.add_argument("--json", action="store_true")
        if name == "opt-out":
            q.add_argument("--keep", action="store_true", help="keep the turns already recorded")
        q.set_defaults(func=func)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def _store(args: argparse.Namespace):
    from assistant.trace.store import TraceStore

    db = Path(load_settings(args.config).traces.db)
    path = db if db.is_absolute() else _data_dir(args) / db
    return TraceStore(path) if path.exists() else None


def _out(args: argparse.Namespace, data: dict, text: str) -> int:
    print(json.dumps(data) if args.json else text)
    return 0


def run_opt_out(args: argparse.Namespace) -> int:
    from assistant.speakers.enroll import forget
    from assistant.trace.privacy import opt_out, pseudonym

    store = None if args.keep else _store(args)
    deleted = opt_out(_data_dir(args), args.user, store)
    voice = forget(_data_dir(args), args.user)  # the voiceprint is the person's data too (always deleted)
    p = pseudonym(_data_dir(args), args.user)
    return _out(
        args,
        {"user_pseudonym": p, "opted_out": True, "turns_deleted": deleted, "voice_deleted": voice},
        f"{args.user} ({p}) is opted out: nothing will be recorded"
        + (f"; deleted {deleted} turns already recorded" if store is not None else "")
        + ("; deleted their voiceprint" if voice else ""),
    )


def run_opt_in(args: argparse.Namespace) -> int:
    from assistant.trace.privacy import opt_in, pseudonym

    was = opt_in(_data_dir(args), args.user)
    p = pseudonym(_data_dir(args), args.user)
    return _out(
        args,
        {"user_pseudonym": p, "opted_out": False, "was_opted_out": was},
        f"{args.user} ({p}) is opted in" + ("" if was else " (was not opted out)"),
    )


def run_status(args: argparse.Namespace) -> int:
    from assistant.trace.privacy import is_opted_out, pseudonym

    out = is_opted_out(_data_dir(args), args.user)
    p = pseudonym(_data_dir(args), args.user)
    return _out(
        args,
        {"user_pseudonym": p, "opted_out": out},
        f"{args.user}: {'opted out' if out else 'recorded'}; pseudonym in exports {p}",
    )
