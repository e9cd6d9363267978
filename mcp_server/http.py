"""Streamable HTTP, served by the daemon: loopback, a bearer token, Host/Origin checks.

The token is created at the first start in `$CONTEXTD_HOME/http-token` (mode 0600);
requests without it, or with another, get 401. The SDK's transport security rejects a
foreign Host (421) or Origin (403) against DNS rebinding, and bodies over the cap (413).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
import threading
import time
from pathlib import Path
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings

from contextd.mcp_server.backend import Backend
from contextd.mcp_server.server import build_server

log = logging.getLogger(__name__)

TOKEN_NAME = "http-token"
PATH = "/mcp"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_SESSIONS = 256  # MCP sessions open at once (each ~40 KB; an idle one goes after 30 min)


def load_token(home: Path) -> str:
    """The bearer token, created (0600) on first use."""
    path = home / TOKEN_NAME
    try:
        token = path.read_text().strip()
        mode = stat.S_IMODE(path.stat().st_mode)
        if token and mode & 0o077:  # ours: put it back as it was made, and say so
            path.chmod(0o600)
            log.warning("%s was readable by others (mode %04o); it is 0600 again", path, mode)
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class BearerAuth:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, credentials = given.strip().partition(b" ")
            ok = scheme.lower() == b"bearer"  # the scheme is case-insensitive (RFC 9110)
            if not hmac.compare_digest(credentials.strip(), self.expected) or not ok:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b'{"error": "missing or wrong bearer token"}',
                    }
                )
                return
        await self.app(scope, receive, send)


class ClientGone(logging.Filter):
    """A client that hung up mid-request is no error of the daemon's: the SDK logged each
    one as an ERROR with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from starlette.requests import ClientDisconnect

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ClientDisconnect)


def build_app(backend: Backend, token: str, host: str, port: int, max_body: int) -> Any:
    hosts = [f"{h}:{port}" for h in ({host} | (LOOPBACK if host in LOOPBACK else set()))]
    hosts = [h.replace("::1:", "[::1]:") for h in hosts]
    origins = [f"http://{h}" for h in hosts]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    sdk_log = logging.getLogger("mcp.server.streamable_http")
    if not any(isinstance(f, ClientGone) for f in sdk_log.filters):
        sdk_log.addFilter(ClientGone())
    app = build_server(backend).streamable_http_app(
        streamable_http_path=PATH,
        transport_security=security,
        max_request_body_size=max_body,
        max_sessions=MAX_SESSIONS,  # the SDK's default, 10,000, held about 380 MB
    )
    return BearerAuth(app, token)


MAX_CONNECTIONS = 256  # open at once; past it, the longest-waiting idle one is closed
REQUEST_S = 10.0  # for a whole request to arrive; uvicorn itself waits forever
CHECK_S = 1.0


def _guarded_protocol() -> type:
    """uvicorn's h11 protocol, closing connections that hold a file without asking
    anything. Anyone on the machine can connect before the token is checked: idle or
    half-sent requests left open ran the daemon out of files.

    A connection with no response under way (none begun, or the last one sent) must
    bring a whole new request within REQUEST_S, however it trickles bytes in. Past
    MAX_CONNECTIONS the one waiting longest is closed to make room, never one with a
    response under way (a tool call, an event stream), so a flood of idle connections
    cannot lock out a client that asks something."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        waiting_since = 0.0  # since when a whole request is awaited

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.waiting_since = time.monotonic()
            self._check = self.loop.call_later(CHECK_S, self._look)
            if len(self.connections) > MAX_CONNECTIONS:
                idle = [c for c in self.connections if isinstance(c, Guarded) and not c._busy()]
                min(idle, key=lambda c: c.waiting_since, default=self).transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.waiting_since = time.monotonic()  # the next request's turn

        def _busy(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _look(self) -> None:
            waited = time.monotonic() - self.waiting_since
            if not self._busy() and waited > REQUEST_S and not self.transport.is_closing():
                self.transport.close()
                return
            self._check = self.loop.call_later(CHECK_S, self._look)

        def connection_lost(self, exc: Exception | None) -> None:
            check = getattr(self, "_check", None)
            if check is not None:
                check.cancel()
            super().connection_lost(exc)

    return Guarded


class HttpServer:
    """uvicorn on its own thread, stopped and joined with the daemon."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=_guarded_protocol(),
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=2,  # an open event stream must not hold up `stop`
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://{host}:{port}{PATH}"
        self._thread = threading.Thread(target=self.server.run, name="contextd-http", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the MCP HTTP endpoint could not listen on {self.url}")
            time.sleep(0.02)
        log.info("MCP over HTTP on %s", self.url)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
