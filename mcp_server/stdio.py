"""`contextd mcp`'s hot path: serve stdio without importing the CLI (typer, rich).

Agents launch this process often; it must answer `tools/list` fast. stdout carries
protocol messages only: logs go to the data dir's log file, errors to stderr.
"""

from __future__ import annotations

import sys

from contextd.errors import ContextdError
from contextd.logs import configure_logging
from contextd.settings import load_settings


def serve_stdio() -> int:
    try:
        settings = load_settings()
        configure_logging(settings)
    except ContextdError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    from contextd.mcp_server.backend import DaemonBackend
    from contextd.mcp_server.server import build_server

    backend = DaemonBackend(settings)
    backend.warm_up()
    build_server(backend).run()
    return 0
