"""`assistant ui`: a local, read-mostly web app over the trace store (docs/ui.md)."""

from __future__ import annotations

from assistant.ui.app import UiConfig, create_app, needs_token, serve

__all__ = ["UiConfig", "create_app", "needs_token", "serve"]
