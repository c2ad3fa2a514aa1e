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
