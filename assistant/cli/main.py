"""`assistant ...`: every module in assistant/cli/ (but main and common) registers its own subcommands (argparse)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from assistant.cli.common import GLOBAL_OPTIONS, UsageError, hoist_global_options
from assistant.errors import AssistantError


def build_parser() -> argparse.ArgumentParser:
    import assistant.cli as commands

    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Offline voice assistant that learns from its mistakes.",
        epilog="Options of a command (" + ", ".join(GLOBAL_OPTIONS) + ") may also come before it: "
        "`assistant --config X say ...` is `assistant say ... --config X`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the stages do")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name not in ("main", "common") and not mod.name.startswith("_"):
            importlib.import_module(f"assistant.cli.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a hub
    parser = build_parser()
    args = parser.parse_args(hoist_global_options(parser, sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        print(f"{parser.prog} {args.command}: error: {err.message}", file=sys.stderr)
        return 2
    except AssistantError as err:
        print(f"error [{err.code}]: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a read-only or missing folder: say which file, not a traceback
        if args.verbose:
            raise
        print(f"error [os-error]: {err} (run with -v for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
