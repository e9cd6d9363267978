"""The MCP server as agents reach it: a stdio subprocess, and HTTP served by the daemon."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import git, write
from tests.daemon_helpers import contextd, start_daemon, stop_daemon, wait_converged

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], int]]:
    base = tmp_path_factory.mktemp("mcp")
    port = free_port()
    env = start_daemon(base / "home", http_port=str(port))
    repo = base / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, "billing.py", "def refund_payment(order):\n    '''Give the money back.'''\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    contextd(env, "add", str(repo), "--name", "shop", "--no-hooks")
    wait_converged(env, "shop", repo)
    yield env, port
    stop_daemon(env)


def test_the_stdio_server_never_loads_the_model_or_the_store() -> None:
    code = (
        "import sys, contextd.cli.main, contextd.mcp_server.server, contextd.mcp_server.backend;"
        "print(json.dumps(sorted(m for m in ('torch', 'chromadb', 'sentence_transformers')"
        " if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


async def test_a_stdio_subprocess_lists_tools_and_searches(served) -> None:
    env, _ = served
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "contextd", "mcp"],
        env={k: v for k, v in env.items() if k.startswith(("CONTEXTD_", "HF_"))},
    )
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"search", "read", "sources", "status"}
        r = await client.call_tool("search", {"query": "give the money back", "k": 2})
        assert not r.is_error
        assert r.structured_content["results"][0]["path"] == "billing.py"
        r = await client.call_tool("status", {})
        assert r.structured_content["running"]
        assert r.structured_content["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        from contextd import __version__

        assert client.server_info is not None and client.server_info.version == __version__


async def test_a_stdio_session_starts_the_daemon_and_reports_a_broken_source(
    tmp_path: Path,
) -> None:
    """No daemon runs: the server's warm-up starts one, and the first call must not race
    it. Then a source's folder vanishes, and `sources` and `status` must say so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "contextd", "mcp"], env=env)
    try:
        async with Client(params) as client:
            r = await client.call_tool("sources", {})
            assert not r.is_error, r.content
            assert r.structured_content["sources"] == []
            notes = tmp_path / "notes"
            write(notes, "gizmo.md", "# Gizmo\n\nThe gizmo rotation policy.\n")
            contextd(env, "add", str(notes), "--name", "notes")
            contextd(env, "index", "notes")
            r = await client.call_tool("sources", {})
            assert r.structured_content["sources"][0]["up_to_date"] is True
            shutil.rmtree(notes)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = await client.call_tool("status", {})
                (row,) = r.structured_content["sources"]
                if row["errors"]:
                    break
                await anyio.sleep(0.2)
            # Either check may see it first: the daemon's look at its roots, or a scan.
            gone = ("is gone (moved or deleted)", "not a directory any more")
            assert any(words in row["errors"][0] for words in gone), row["errors"]
            assert row["up_to_date"] is False and r.structured_content["problems"] == []
    finally:
        stop_daemon(env)


def test_http_needs_the_token_and_refuses_foreign_origins(served) -> None:
    env, port = served
    token = (Path(env["CONTEXTD_HOME"]) / "http-token").read_text().strip()
    assert (Path(env["CONTEXTD_HOME"]) / "http-token").stat().st_mode & 0o777 == 0o600
    url = f"http://127.0.0.1:{port}/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx2.Client(timeout=10) as http:
        assert http.post(url, json=body, headers=headers).status_code == 401
        wrong = {**headers, "Authorization": "Bearer not-the-token"}
        assert http.post(url, json=body, headers=wrong).status_code == 401
        good = {**headers, "Authorization": f"Bearer {token}"}
        lower = {**headers, "Authorization": f"bearer {token}"}  # the scheme has no case
        assert http.post(url, json=body, headers=lower).status_code != 401
        assert (
            http.post(url, json=body, headers={**headers, "Authorization": token}).status_code
            == 401
        )
        foreign = {**good, "Origin": "http://evil.example"}
        assert http.post(url, json=body, headers=foreign).status_code == 403
        huge = http.post(
            url,
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={**good, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413


def test_serve_refuses_at_once_while_a_daemon_runs(served) -> None:
    env, port = served
    out = contextd(env, "serve", "--http", "--port", str(free_port()), check=False)
    assert out.returncode == 1 and "already running" in out.stderr
    assert "MCP over HTTP on" not in out.stdout


def test_a_taken_port_is_one_line_and_leaves_the_data_dir_usable(tmp_path: Path) -> None:
    """The daemon cannot listen: `start` says so at once, and nothing is left holding the
    data dir (before, the daemon hung in its shutdown with the lock held)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        started = time.monotonic()
        out = contextd({**env, "CONTEXTD_HTTP_PORT": port}, "start", check=False)
        assert out.returncode == 1 and "Set CONTEXTD_HTTP_PORT to another" in out.stderr
        assert time.monotonic() - started < 60
        out = contextd(env, "serve", "--http", "--port", port, check=False)
        assert out.returncode == 1 and "Is the port taken? Set --port to another" in out.stderr
        assert "MCP over HTTP on" not in out.stdout
    assert "daemon: not running" in contextd(env, "status").stdout  # no lock left behind
    start_daemon(tmp_path / "home")
    stop_daemon(env)


async def test_an_http_client_with_the_token_searches(served) -> None:
    env, port = served
    token = (Path(env["CONTEXTD_HOME"]) / "http-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}", "Origin": f"http://127.0.0.1:{port}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
        async with Client(transport) as client:
            r = await client.call_tool("search", {"query": "refund", "k": 1})
            assert not r.is_error and r.structured_content["results"][0]["path"] == "billing.py"


def test_connections_that_ask_nothing_are_closed_and_cannot_lock_anyone_out(monkeypatch) -> None:
    """Anyone on the machine can connect before the token is checked. Connections that
    sent nothing, half a request, or a body trickled after the 401 stayed open for good:
    20,000 of them ran the daemon out of files, and a full cap locked everyone out. Now a
    connection with no response under way must bring a whole request in time, and past
    the cap the longest-waiting one makes room."""
    from contextd.mcp_server import http as door

    async def ok(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    monkeypatch.setattr(door, "MAX_CONNECTIONS", 5)
    monkeypatch.setattr(door, "REQUEST_S", 1.0)
    monkeypatch.setattr(door, "CHECK_S", 0.1)
    port = free_port()
    server = door.HttpServer(door.BearerAuth(ok, "the-token"), "127.0.0.1", port)
    server.start()
    held: list[socket.socket] = []
    try:
        for i in range(12):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 3 == 1:
                s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a request
            elif i % 3 == 2:  # a whole request announcing a body, answered 401 at once
                s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n\r\nx")
                assert b"401" in s.recv(300)
            held.append(s)
        time.sleep(0.2)
        assert sum(1 for s in held if not _closed(s, 0.05)) <= 5  # past the cap: room made
        token = {"Authorization": "Bearer the-token"}
        with httpx2.Client() as http:  # a full cap never shuts out a client that asks
            assert http.get(f"http://127.0.0.1:{port}/", headers=token).text == "ok"
        for _ in range(15):  # the body trickles in after the 401: it must not keep it open
            for s in held:
                try:
                    s.sendall(b"y")
                except OSError:
                    pass
            time.sleep(0.1)
        assert all(_closed(s, 2) for s in held), "connections outlive the request deadline"
        with httpx2.Client() as http:
            assert http.get(f"http://127.0.0.1:{port}/", headers=token).text == "ok"
    finally:
        for s in held:
            s.close()
        server.stop()


def _closed(s: socket.socket, wait: float) -> bool:
    """Has the server closed this connection (EOF or a reset, after what it sent)?"""
    s.settimeout(wait)
    try:
        while s.recv(4096):
            pass  # the rest of an answer
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_an_http_endpoint_no_client_could_use_is_refused_at_configuration() -> None:
    """Port 0 listened on a random port and advertised `:0`; 0.0.0.0 listened everywhere
    and then answered every request 421, as no client sends Host: 0.0.0.0."""
    from pydantic import ValidationError

    from contextd.settings import Settings

    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Settings(http_port=0)
    for host in ("0.0.0.0", "::", "[::]"):
        with pytest.raises(ValidationError, match="the one address clients will use"):
            Settings(http_host=host)


def test_a_client_hanging_up_is_not_logged_as_an_error() -> None:
    from starlette.requests import ClientDisconnect

    from contextd.mcp_server.http import ClientGone

    def record(exc: BaseException) -> logging.LogRecord:
        info = (type(exc), exc, None)
        return logging.LogRecord("sdk", logging.ERROR, __file__, 1, "POST failed", None, info)

    assert not ClientGone().filter(record(ClientDisconnect()))
    assert ClientGone().filter(record(ValueError("a real failure")))


def test_the_http_token_file_is_kept_private(tmp_path: Path) -> None:
    from contextd.mcp_server.http import load_token

    token = load_token(tmp_path)
    path = tmp_path / "http-token"
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # loosened by hand, or by a backup restore
    assert load_token(tmp_path) == token and path.stat().st_mode & 0o777 == 0o600


def test_open_mcp_sessions_are_capped(monkeypatch) -> None:
    """Sessions a client never closes stay for 30 minutes; the SDK's cap of 10,000 let a
    client hold about 380 MB. Past the cap a new session is refused with a 503."""
    from contextd.mcp_server import http as door
    from contextd.mcp_server.backend import LocalBackend

    monkeypatch.setattr(door, "MAX_SESSIONS", 3)
    port = free_port()
    app = door.build_app(LocalBackend(lambda op, args, emit: None), "tok", "127.0.0.1", port, 2**20)
    server = door.HttpServer(app, "127.0.0.1", port)
    server.start()
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    headers = {"Authorization": "Bearer tok", "Accept": "application/json, text/event-stream"}
    try:
        with httpx2.Client(timeout=10) as http:
            codes = [http.post(f"http://127.0.0.1:{port}/mcp", json=init, headers=headers)
                     .status_code for _ in range(4)]  # fmt: skip
        assert codes == [200, 200, 200, 503]
    finally:
        server.stop()
