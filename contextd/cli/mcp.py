"""`contextd mcp` (stdio, for agents) and `contextd serve --http`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from contextd import rpc
from contextd.cli.common import console, err_console, settings
from contextd.errors import ConfigError, DaemonError
from contextd.home import make_home
from contextd.logs import configure_logging

CLIENTS = ("claude", "cursor", "vscode", "codex")


def _command() -> list[str]:
    script = Path(sys.executable).with_name("contextd")
    return [str(script), "mcp"] if script.exists() else [sys.executable, "-m", "contextd", "mcp"]


def client_config(client: str) -> tuple[str, str]:
    """Ready-to-paste configuration for one MCP client, and where it goes."""
    cmd = _command()
    s = settings()
    env = {"CONTEXTD_HOME": str(s.home)}
    if client == "claude":
        home = shlex.quote(env["CONTEXTD_HOME"])
        return "run this", f"claude mcp add contextd -e CONTEXTD_HOME={home} -- {shlex.join(cmd)}"
    if client == "cursor":
        entry = {"command": cmd[0], "args": cmd[1:], "env": env}
        config = json.dumps({"mcpServers": {"contextd": entry}}, indent=2)
        return "~/.cursor/mcp.json (or .cursor/mcp.json in a project)", config
    if client == "vscode":
        entry = {"type": "stdio", "command": cmd[0], "args": cmd[1:], "env": env}
        return ".vscode/mcp.json", json.dumps({"servers": {"contextd": entry}}, indent=2)
    if client == "codex":
        args = ", ".join(json.dumps(a) for a in cmd[1:])
        return "~/.codex/config.toml", (
            f"[mcp_servers.contextd]\ncommand = {json.dumps(cmd[0])}\n"
            f"args = [{args}]\nenv = {{ CONTEXTD_HOME = {json.dumps(env['CONTEXTD_HOME'])} }}"
        )
    raise ConfigError(f"Unknown client '{client}'. Choose one of: {', '.join(CLIENTS)}.")


def mcp(
    print_config: Annotated[
        str | None,
        typer.Option(
            "--print-config",
            metavar="CLIENT",
            help=f"Print the configuration for {', '.join(CLIENTS)} and exit.",
        ),
    ] = None,
) -> None:
    """Serve MCP over stdio for a coding agent (forwards to the daemon, starting it)."""
    if print_config:  # the file it goes in to stderr: stdout can be redirected into it
        where, config = client_config(print_config)
        err_console.print(f"# {where}", markup=False, highlight=False)
        console.print(config, markup=False, highlight=False)
        return
    from contextd.mcp_server.stdio import serve_stdio

    raise typer.Exit(serve_stdio())


def serve(
    http: Annotated[bool, typer.Option("--http", help="Serve MCP over streamable HTTP.")] = False,
    port: Annotated[int, typer.Option("--port", help="HTTP port.")] = 8740,
    host: Annotated[str, typer.Option("--host", help="HTTP address.")] = "127.0.0.1",
) -> None:
    """Run the daemon in the foreground, also serving MCP over HTTP."""
    if not http:
        raise ConfigError("Nothing to serve: pass --http (stdio agents use `contextd mcp`).")
    from contextd.daemon import Daemon
    from contextd.mcp_server.http import load_token

    s = settings().model_copy(update={"http_port": port, "http_host": host})
    running = rpc.ping(s.home)
    if running:
        raise DaemonError(
            f"A contextd daemon is already running on {s.home} (pid {running['pid']}). "
            "Run `contextd stop` first, or serve HTTP from it: `contextd stop; "
            + (f"CONTEXTD_HTTP_HOST={host} " if host != "127.0.0.1" else "")
            + f"CONTEXTD_HTTP_PORT={port} contextd start`."
        )
    configure_logging(s, stderr=True)
    make_home(s.home)
    load_token(s.home)
    Daemon(s, port_from="--port", on_ready=lambda: console.print(
        f"MCP over HTTP on http://{host}:{port}/mcp; bearer token in {s.home / 'http-token'}",
        markup=False,
    )).run()  # fmt: skip
