"""The daemon's local socket: one JSON request line, zero or more progress lines, one reply.

The socket lives under $CONTEXTD_HOME with mode 0600 (its folder too). When that path is
too long for a Unix socket (108 bytes), it lives in a private 0700 folder under the temp
dir named for the data dir instead, so every client can still compute where it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import socket
import socketserver
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from contextd import __version__
from contextd.errors import ContextdError
from contextd.lock import INFO_NAME

log = logging.getLogger(__name__)

SOCKET_NAME = "daemon.sock"
# What the daemon's answers look like: a command and a daemon of different contextd
# versions (an upgrade while the daemon runs) do not talk, they say to restart it. Raise
# the number whenever an operation's arguments or answer change.
PROTOCOL = f"{__version__}+2"
UNVERSIONED_OPS = frozenset({"ping", "stop"})  # the way out works whatever the version
MAX_UNIX_PATH = 100
MAX_REQUEST = 1 << 20
RPC_THREADS = 16


class DaemonUnavailable(Exception):
    """No daemon answers on the socket (not running, starting, or frozen)."""


class DaemonLost(DaemonUnavailable):
    """The daemon took the request, then went away before answering (killed, crashed)."""


class RemoteError(ContextdError):
    """A known error raised by the daemon, carried back to the command."""


def socket_path(home: Path) -> Path:
    """Where the daemon of this data dir listens."""
    path = home / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_UNIX_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"contextd-{os.getuid()}-{digest}" / SOCKET_NAME


Emit = Callable[[dict[str, Any]], None]
Handler = Callable[[str, dict[str, Any], Emit], Any]
Request = tuple[Any, Any]  # a connected socket and its address


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST + 1)
        if not line:
            return
        try:
            if len(line) > MAX_REQUEST:
                raise ContextdError("The request is too large.")
            request = json.loads(line)
            op, args = str(request["op"]), dict(request.get("args") or {})
        except (ValueError, KeyError, TypeError) as exc:
            self._send({"ok": False, "error": f"Malformed request ({exc}).", "kind": "protocol"})
            return
        except ContextdError as exc:
            self._send({"ok": False, "error": str(exc), "kind": "ContextdError"})
            return
        try:
            result = self.server.handler(op, args, lambda p: self._send({"progress": p}))
        except ContextdError as exc:
            self._send({"ok": False, "error": str(exc), "kind": type(exc).__name__})
        except Exception as exc:
            log.exception("request %s failed", op)
            self._send({"ok": False, "error": f"{type(exc).__name__}: {exc}", "kind": "bug"})
        else:
            self._send({"ok": True, "result": result})

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.wfile.write(json.dumps(message, default=str).encode() + b"\n")
            self.wfile.flush()
        except OSError:
            pass  # the client went away; nothing to tell it


class _Server(socketserver.UnixStreamServer):
    """Requests are served by a small pool of threads, the one idle most recently first,
    not by a new thread each: a thread keeps its catalog connection, and with it SQLite's
    page cache and memoised counts, from one request to the next. (A new connection per
    request left one open each time, and started every search with a cold cache.)"""

    allow_reuse_address = True

    def __init__(self, path: Path, handler: Handler) -> None:
        self.handler = handler
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Request | None]] = []  # most recently idle last
        self._waiting: deque[Request] = deque()  # requests no thread was free for
        self._threads = 0
        self._closed = False
        super().__init__(str(path), _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if self._idle:
                self._idle.pop().put((request, client_address))
                return
            if self._threads >= RPC_THREADS:  # all busy (long `index` waits): queue it
                self._waiting.append((request, client_address))
                return
            self._threads += 1
            name = f"contextd-rpc-{self._threads}"
        inbox: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        inbox.put((request, client_address))
        # A daemon thread: a request still waiting never holds the process up at exit.
        threading.Thread(target=self._work, args=(inbox,), name=name, daemon=True).start()

    def _work(self, inbox: queue.SimpleQueue[Request | None]) -> None:
        item = inbox.get()
        while item is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
            with self._lock:
                if self._waiting:
                    item = self._waiting.popleft()
                    continue
                if self._closed:
                    return
                self._idle.append(inbox)
            item = inbox.get()

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)


class RpcServer:
    """Serves requests on its own thread until `close()`."""

    def __init__(self, home: Path, handler: Handler) -> None:
        self.path = socket_path(home)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # stale: we hold the data dir lock, so no live daemon owns it
        old = os.umask(0o177)
        try:
            self._server = _Server(self.path, handler)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        st = os.stat(self.path)
        self._bound = (st.st_dev, st.st_ino)  # ours to unlink at close, and no other
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="contextd-rpc", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that must run
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._bound:  # else a new data dir's daemon's
                self.path.unlink()
        except FileNotFoundError:
            pass


def _exchange(home: Path, op: str, args: dict[str, Any], timeout: float | None) -> Iterator[dict]:
    path = socket_path(home)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise DaemonUnavailable(str(exc)) from None
    if op not in UNVERSIONED_OPS:
        _check_protocol(home, sock)
    sock.settimeout(timeout)
    with sock, sock.makefile("rb") as reader:
        try:
            sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
        except OSError as exc:  # not taken (a daemon stopping, or one refusing its size)
            raise DaemonUnavailable(str(exc)) from None
        try:
            for line in reader:
                yield json.loads(line)
        except TimeoutError:
            raise DaemonUnavailable(f"the daemon did not answer {op} within {timeout}s") from None
        except OSError as exc:
            raise DaemonLost(str(exc)) from None


def _check_protocol(home: Path, sock: socket.socket) -> None:
    """The daemon that answered speaks this command's protocol, or a ContextdError."""
    try:
        info = json.loads((home / INFO_NAME).read_text())
    except (OSError, ValueError):
        return  # no daemon wrote it (one always does before it serves)
    if not isinstance(info, dict) or info.get("protocol") == PROTOCOL:
        return
    sock.close()
    raise ContextdError(
        f"The running daemon (pid {info.get('pid', '?')}) and this process are from different "
        "versions of contextd (one was upgraded while the other ran). Restart the older: "
        "the daemon with `contextd stop`, then `contextd start`; an agent's MCP server "
        "(`contextd mcp`) by restarting the agent."
    )


def call(
    home: Path,
    op: str,
    args: dict[str, Any] | None = None,
    timeout: float | None = 30.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Send one request and return its result; a daemon-side known error is re-raised."""
    for message in _exchange(home, op, args or {}, timeout):
        if "progress" in message:
            if on_progress:
                on_progress(message["progress"])
            continue
        if message.get("ok"):
            return message.get("result")
        raise RemoteError(str(message.get("error")))
    raise DaemonLost(f"the daemon closed the connection during {op}")


def ping(home: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        result = call(home, "ping", timeout=timeout)
    except (DaemonUnavailable, ContextdError):
        return None
    return result if isinstance(result, dict) else None
