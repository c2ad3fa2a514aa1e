"""The live loop's status line: one line in a terminal (rich), plain log lines otherwise (systemd journal)."""

from __future__ import annotations

import time
from typing import ClassVar


class StatusLine:
    """One line in a terminal (rich), plain log lines otherwise (systemd journal)."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self._live = None
        self._last = None
        if enabled and self.console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(Text(""), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()

    _STYLE: ClassVar[dict[str, str]] = {
        "idle": "dim",
        "listening": "bold green",
        "thinking": "bold yellow",
        "speaking": "bold cyan",
        "no microphone": "bold red",
    }

    def show(self, state: str, detail: str = "") -> None:
        if not self.enabled or (state, detail) == self._last:
            return
        self._last = (state, detail)
        if self._live is not None:
            self._live.update(
                self._text.assemble(
                    ("● ", self._STYLE.get(state, "")),
                    (f"{state:<10}", self._STYLE.get(state, "")),
                    (f"  {detail}", "dim"),
                )
            )
        else:
            self.console.print(
                f"[{time.strftime('%H:%M:%S')}] {state}" + (f": {detail}" if detail else ""), highlight=False
            )

    def __call__(self, event) -> None:
        """A subscriber to the runner's events: the live loop's StateChanged."""
        from assistant.core.events import StateChanged

        if isinstance(event, StateChanged):
            self.show(event.state, event.detail)

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
