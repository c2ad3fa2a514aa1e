"""`assistant models`: every model, where it comes from, its licence, size and checksum; each loaded offline."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import socket
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from assistant.config import DEFAULT_PIPELINE, REPO_ROOT, load_settings
from assistant.files import sha256_file

MANIFEST = REPO_ROOT / "models" / "manifest.yaml"


def register(sub) -> None:
    p = sub.add_parser("models", help="list every model and check that each loads with the network blocked")
    p.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
    p.add_argument("--no-load", action="store_true", help="only list and checksum, do not load the models")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="load, but do not run each model on its fixed input (assistant/models_check.py)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


@contextlib.contextmanager
def network_blocked() -> Iterator[None]:
    """Any attempt to resolve a host or open a connection raises: proves a load is offline."""

    def refuse(*_a: Any, **_k: Any):
        raise OSError("network access attempted while loading a model (blocked by `assistant models`)")

    saved = socket.socket.connect, socket.getaddrinfo, socket.create_connection
    socket.socket.connect, socket.getaddrinfo, socket.create_connection = refuse, refuse, refuse  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.getaddrinfo, socket.create_connection = saved  # type: ignore[method-assign,assignment]


def _file_for(entry: dict[str, Any]) -> Path | None:
    if entry.get("path"):
        return REPO_ROOT / entry["path"]
    spec = importlib.util.find_spec(entry["module"])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / entry["file"]


def inspect_models() -> list[dict[str, Any]]:
    entries = yaml.safe_load(MANIFEST.read_text())["models"]
    rows = []
    for e in entries:
        path = _file_for(e)
        row = {
            "id": e["id"],
            "stage": e["stage"],
            "package": e.get("package") or "this repo",
            "package_version": None,
            "file": str(path) if path else None,
            "licence": e["licence"],
            "size_mb": None,
            "sha256": None,
            "checksum": "missing",
        }
        if e.get("package"):
            with contextlib.suppress(PackageNotFoundError):
                row["package_version"] = version(e["package"])
        if path is not None and path.exists():
            row["size_mb"] = round(path.stat().st_size / 1e6, 2)
            row["sha256"] = sha256_file(path)
            expected = e.get("sha256")
            row["checksum"] = "ok" if expected == row["sha256"] else ("unpinned" if expected is None else "MISMATCH")
        rows.append(row)
    return rows


def load_stages(config: Path, instances: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Instantiate every configured backend with the network blocked; report load time or the error.
    `instances` (if given) receives the loaded backends, for the self-check."""
    from assistant.config import DEFAULT_HOME
    from assistant.core import registry
    from assistant.home.model import Home

    settings = load_settings(config)
    build = registry.Build(settings=settings, home=Home.load(DEFAULT_HOME))
    out = {}
    with network_blocked():
        for stage in ("wake", "vad", "speaker", "asr", "nlu", "resolve", "tts"):
            t0 = time.perf_counter()
            try:
                backend = registry.create(stage, getattr(settings, stage).backend, build)
                if instances is not None:
                    instances[stage] = backend
                out[stage] = {
                    "loaded": True,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "backend": f"{backend.name} {getattr(backend, 'version', '')}".strip(),
                }
            except Exception as err:  # noqa: BLE001 - report every failing stage, not just the first
                out[stage] = {"loaded": False, "error": f"{type(err).__name__}: {err}"}
    return out


def _short_file(file: str | None) -> str:
    """The weights file, relative to the repo or to its package's site-packages (the full path is in --json)."""
    if not file:
        return "-"
    path = Path(file)
    parts = path.parts
    if "site-packages" in parts:
        return str(Path(*parts[parts.index("site-packages") + 1 :]))
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO_ROOT))
    return file


def run(args: argparse.Namespace) -> int:
    from assistant.models_check import self_check

    rows = inspect_models()
    instances: dict[str, Any] = {}
    loads = {} if args.no_load else load_stages(args.config, instances)
    checks = [] if args.no_load or args.no_check else [c.to_dict() for c in self_check(instances)]
    bad = (
        [r for r in rows if r["checksum"] in ("missing", "MISMATCH")]
        + [s for s in loads.values() if not s["loaded"]]
        + [c for c in checks if not c["ok"]]
    )
    if args.json:
        print(json.dumps({"models": rows, "loads": loads, "checks": checks, "ok": not bad}, indent=2))
        return 1 if bad else 0
    table = Table(title="models (weights from installed packages and models/; nothing is downloaded)")
    for col in ("id", "stage", "package", "file", "licence", "MB", "sha256", "check"):
        table.add_column(col, overflow="fold")
    for r in rows:
        pkg = f"{r['package']} {r['package_version'] or ''}".strip()
        table.add_row(
            r["id"],
            r["stage"],
            pkg,
            _short_file(r["file"]),
            r["licence"],
            str(r["size_mb"] or "-"),
            (r["sha256"] or "-")[:16],
            r["checksum"],
        )
    console = Console()
    console.print(table)
    for stage, s in loads.items():
        msg = f"loaded in {s['seconds']} s: {s['backend']}" if s["loaded"] else f"[red]FAILED[/]: {s['error']}"
        console.print(f"{stage:8s} offline load {msg}")
    for c in checks:
        verdict = "ok" if c["ok"] else "[red]WRONG OUTPUT[/]: " + "; ".join(c["problems"])
        console.print(f"{c['stage']:8s} self-check on its fixed input ({c['seconds']} s): {verdict}", highlight=False)
    if bad:
        console.print(
            "[red]Some models are missing, do not load or give wrong outputs: run scripts/setup.sh, or "
            "`assistant train nlu` for models/nlu; a wrong output on a machine where the files check out "
            "means the runtime (CPU build) is not right for this machine.[/]"
        )
    return 1 if bad else 0
