"""Where the MCP tools send their operations.

The stdio server is thin: it forwards to the daemon over its socket (starting the daemon
when none answers) and never imports torch or opens the store. The daemon's own HTTP
endpoint calls its dispatcher directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from contextd import rpc
from contextd.launcher import ensure_daemon
from contextd.settings import Settings


class Backend(Protocol):
    def call(self, op: str, args: dict[str, Any]) -> Any:
        """Run one operation; a ContextdError says what went wrong."""
        ...


class DaemonBackend:
    """Forward to the daemon of a data dir, starting it on first need."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._starting: threading.Thread | None = None

    def warm_up(self) -> None:
        """Start the daemon in the background now, so the first tool call finds it warm."""
        if rpc.ping(self.settings.home, timeout=0.5):
            return
        self._starting = threading.Thread(target=self._start, name="contextd-start", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        try:
            ensure_daemon(self.settings)
        except Exception:  # reported again, with its reason, by the first call
            pass

    def call(self, op: str, args: dict[str, Any]) -> Any:
        starting, self._starting = self._starting, None
        if starting is not None:  # the first call waits for the warm-up's daemon
            starting.join()
        try:
            return rpc.call(self.settings.home, op, args, timeout=120)
        except rpc.DaemonUnavailable:
            ensure_daemon(self.settings)
            return rpc.call(self.settings.home, op, args, timeout=120)


class LocalBackend:
    """Inside the daemon: call its dispatcher without a socket."""

    def __init__(self, dispatch: Callable[[str, dict[str, Any], Callable], Any]) -> None:
        self.dispatch = dispatch

    def call(self, op: str, args: dict[str, Any]) -> Any:
        return self.dispatch(op, args, lambda _progress: None)
