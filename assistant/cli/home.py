"""`assistant home import EXPORT --out FILE`: a home file from a Home Assistant-style export;
`assistant home check FILE`: validate a home file and say what it holds."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("home", help="home files: import from Home Assistant, check")
    hsub = p.add_subparsers(dest="home_command", metavar="COMMAND")
    i = hsub.add_parser(
        "import",
        help="write a home YAML from a Home Assistant-style export (JSON or YAML; the shape "
        "is in assistant/home/importer.py)",
    )
    i.add_argument("export", type=Path, help="the export: {floors, areas, entities} or a list of entity states")
    i.add_argument("--out", type=Path, required=True, help="the home YAML to write (pass it to --home)")
    i.add_argument("--name", default=None, help="the home's name (default: the export's, else 'imported home')")
    i.add_argument("--satellite-area", default=None, help="area id of the device you talk to (default: the first area)")
    i.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    i.set_defaults(func=run_import)
    c = hsub.add_parser("check", help="validate a home YAML and list its floors, areas and devices by type")
    c.add_argument("file", type=Path)
    c.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_import(args: argparse.Namespace) -> int:
    from assistant.cli.common import UsageError
    from assistant.home.importer import import_home

    if args.out.exists() and not args.force:
        raise UsageError(f"{args.out} exists; pass --force to overwrite it")
    home, notes = import_home(args.export, args.out, args.name, args.satellite_area)
    for n in notes:
        print(f"  note: {n}")
    print(
        f"wrote {args.out}: {len(home.floors)} floors, {len(home.areas)} areas, "
        f"{len(home.devices) - len(home.satellites())} devices, {len(home.satellites())} satellite(s)"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    from collections import Counter

    from assistant.home.model import Home

    home = Home.load(args.file)
    types = Counter(d.type for d in home.devices.values() if not d.satellite)
    print(
        f"{args.file}: valid. {home.name}: {len(home.floors)} floors, {len(home.areas)} areas, "
        f"{sum(types.values())} devices ({', '.join(f'{n} {t}' for t, n in types.most_common())}), "
        f"{len(home.satellites())} satellite(s)"
    )
    return 0
