"""What home commands and scheduled home commands share: which covers ask before opening, and the question that
asks which device was meant (kept apart so neither module imports the other)."""

from __future__ import annotations

from assistant.core.stages.respond import Response
from assistant.home.grammar import Command
from assistant.home.targets import Selection, noun_for
from assistant.skills.base import join_words, say

CONFIRM_OPEN_CLASSES = ("garage", "gate")
"""Covers that ask "are you sure?" before they open (as unlocking does)."""


def ask_which(cmd: Command, sel: Selection) -> Response:
    """\"Which light: the desk lamp or the floor lamp?\" when a request fits several devices about equally."""
    devs = sel.ask
    noun = noun_for(devs, False)
    text = f"Which {noun}: {join_words([f'the {d.name}' for d in devs], 'or')}?"
    pending = {
        "skill": "home_commands",
        "kind": "choose_device",
        "command": cmd.to_dict(),
        "candidates": [d.id for d in devs],
        "intent": f"home_{cmd.action}",
    }
    return say(
        text,
        "clarify",
        "clarify",
        params={"command": cmd.to_dict(), "candidates": [d.id for d in devs]},
        expects_reply=True,
        pending=pending,
    )


def needs_confirm(cmd: Command, devices) -> bool:
    """Unlocking, or opening a garage door or gate (however it is said: open, a position, turn on, toggle)."""
    return cmd.action == "unlock" or (
        cmd.action in ("open", "position", "turn_on", "toggle")
        and any(d.type == "cover" and d.device_class in CONFIRM_OPEN_CLASSES for d in devices)
    )


def ask_to_confirm(text: str, cmd: Command, device_ids: list[str]) -> Response:
    """Ask "are you sure?"; a yes carries out `cmd` on `device_ids` (home_commands' follow-up)."""
    pending = {
        "skill": "home_commands",
        "kind": "confirm",
        "command": cmd.to_dict(),
        "device_ids": device_ids,
        "intent": f"home_{cmd.action}",
    }
    return say(
        text,
        "confirm",
        "clarify",
        params={"command": cmd.to_dict(), "device_ids": device_ids},
        expects_reply=True,
        pending=pending,
    )
