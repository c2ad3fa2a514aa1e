"""`assistant devices`: the microphones and speakers PortAudio sees, to choose audio.input_device/output_device."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("devices", help="list audio input/output devices (for audio.input_device/output_device)")
    p.add_argument("--json", action="store_true", help="one JSON object per device")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from assistant.apps.sound import list_devices

    devices = list_devices()
    if args.json:
        for d in devices:
            print(json.dumps(d))
        return 0
    console = Console()
    if not devices:
        console.print(
            "No audio devices found. Plug in a microphone/speaker (USB) or load the sound card driver "
            "(see hardware/README.md), then run `assistant devices` again."
        )
        return 1
    table = Table(title="Audio devices (audio.input_device / output_device match part of a name)")
    for col, justify in (
        ("index", "right"),
        ("name", "left"),
        ("host API", "left"),
        ("in ch", "right"),
        ("out ch", "right"),
        ("default rate", "right"),
        ("default", "left"),
    ):
        table.add_column(col, justify=justify)
    for d in devices:
        table.add_row(
            str(d["index"]),
            d["name"],
            d["hostapi"],
            str(d["inputs"]),
            str(d["outputs"]),
            str(d["default_rate"]),
            d["default"],
        )
    console.print(table)
    console.print(
        "A PulseAudio/PipeWire source or sink (e.g. an echo-cancelled one) is chosen as "
        '"pulse:NODE_NAME" (names from `pactl list short sources` / `sinks`).'
    )
    return 0
