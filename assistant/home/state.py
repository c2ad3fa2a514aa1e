"""Device states outlive the process: a light turned on by one `assistant say` is on for the next.

One JSON file in the data dir, keyed by the home file, written atomically (a crash never leaves half a file).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

_LOGGER = logging.getLogger(__name__)


class HomeStateFile:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "home_state.json"

    def restore(self, home) -> None:
        if not self.path.exists():
            return
        try:
            saved = json.loads(self.path.read_text()).get(str(home.source), {})
        except (OSError, ValueError) as err:
            _LOGGER.warning("ignoring unreadable %s: %s", self.path, err)
            return
        for device_id, state in saved.items():
            if device_id in home.devices:
                try:
                    home.set_state(device_id, **state)
                except (KeyError, ValueError, TypeError) as err:  # the home file changed since: keep its defaults
                    _LOGGER.info("not restoring %s: %s", device_id, err)

    def save(self, home) -> None:
        try:
            data = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            data = {}
        data[str(home.source)] = home.states()
        # a temporary name of this process's own: several processes may save at once (the last one wins, whole)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1, default=str))
            tmp.replace(self.path)
        except OSError as err:  # full disk, read-only data dir: the turn was answered; the state lives in memory
            _LOGGER.warning("device states not saved to %s: %s", self.path, err)
            tmp.unlink(missing_ok=True)
