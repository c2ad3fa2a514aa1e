"""`assistant serve wyoming`: the assistant as Wyoming services (ASR, TTS, wake word, intent handling) for Home
Assistant, and the brain of Wyoming satellites (assistant/apps/wyoming/)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from assistant.cli.common import add_pipeline_options, eprint, make_runner


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the assistant over a protocol (wyoming: Home Assistant, satellites)")
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    w = protocols.add_parser(
        "wyoming",
        help="Wyoming ASR / TTS / wake word / intent handling server, and the brain of Wyoming satellites",
    )
    w.add_argument(
        "--uri",
        default="tcp://127.0.0.1:10700",
        help="where to listen: tcp://HOST:PORT or unix://PATH (default tcp://127.0.0.1:10700: this machine only)",
    )
    w.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a tcp:// address other than localhost (e.g. tcp://0.0.0.0:10700 for Home Assistant elsewhere)",
    )
    w.add_argument(
        "--satellite",
        action="append",
        default=[],
        metavar="[DEVICE@]URI",
        help="connect to a Wyoming satellite (wyoming-satellite) and be its brain; DEVICE is one of the home's "
        "satellites (e.g. kitchen.speaker@tcp://192.168.1.20:10700); repeat for several",
    )
    w.add_argument("--workers", type=int, default=4, help="threads for model work (default 4)")
    add_pipeline_options(w)
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.apps.wyoming.satellite import SatelliteLink, parse_target
    from assistant.apps.wyoming.server import check_uri, serve
    from assistant.apps.wyoming.service import Service

    check_uri(args.uri, args.allow_remote)
    targets = [parse_target(s) for s in args.satellite]
    runner = make_runner(args, out_dir=getattr(args, "out", None))
    service = Service(runner, workers=max(1, args.workers))
    try:
        links = [SatelliteLink(service, uri, device) for uri, device in targets]

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, systemd: stop cleanly
                loop.add_signal_handler(sig, stop.set)
            started = asyncio.Event()
            task = asyncio.create_task(serve(service, args.uri, links, started=started, stop=stop))
            await started.wait()
            eprint(f"Wyoming server on {args.uri}" + "".join(f"; satellite {s}" for s in args.satellite))
            await task

        asyncio.run(main())
    finally:
        service.close()
        runner.close()
    return 0
