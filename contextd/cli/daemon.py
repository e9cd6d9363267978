"""`contextd start`, `stop`, `daemon` (foreground) and `logs`."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Annotated

import typer

from contextd import rpc
from contextd.cli.common import console, err_console, settings, to_stdout
from contextd.errors import DaemonError
from contextd.launcher import ensure_daemon, tail
from contextd.lock import read_info
from contextd.logs import configure_logging, rotate_log

STOP_TIMEOUT_S = 30.0


def daemon(
    detached: Annotated[
        bool, typer.Option("--detached", hidden=True, help="Started by `contextd start`.")
    ] = False,
) -> None:
    """Run the daemon in the foreground (for systemd, launchd, or a terminal)."""
    from contextd.daemon import Daemon

    s = settings()
    configure_logging(s, stderr=not detached)  # a service manager reads stderr
    rotate_log(s.log_path)
    Daemon(s).run()


def start() -> None:
    """Start the daemon in the background; returns once it answers."""
    s = settings()
    running = rpc.ping(s.home)
    if running:
        console.print(f"contextd is already running (pid {running['pid']}).")
        return
    info = ensure_daemon(s)
    console.print(f"contextd started (pid {info['pid']}); logs: `contextd logs`.")


def stop() -> None:
    """Stop the daemon (it finishes the batch it is writing first)."""
    s = settings()
    info = read_info(s.home)
    try:
        reply = rpc.call(s.home, "stop", timeout=5)
        pid = int(reply["pid"])
    except (rpc.DaemonUnavailable, DaemonError):
        if not info:
            console.print("contextd is not running.")
            return
        pid = int(info["pid"])
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if _exited(pid):
            console.print(f"contextd stopped (pid {pid}).")
            return
        time.sleep(0.05)
    raise DaemonError(
        f"The daemon (pid {pid}) did not stop in {STOP_TIMEOUT_S:.0f}s; "
        f"`kill {pid}` ends it (the index recovers at the next start)."
    )


def _exited(pid: int) -> bool:
    """Gone, or a zombie: it has exited, and the process that started it (a long-lived
    MCP client of an older contextd) has not collected it yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def logs(
    lines: Annotated[int, typer.Option("-n", help="How many lines.", min=0)] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """Show the daemon's log."""
    path = settings().log_path
    if not path.exists() or not path.stat().st_size:
        err_console.print(
            f"No log yet at {path}: the daemon writes it once it runs (`contextd start`).",
            markup=False,
        )
        if not follow:
            return
        while not path.exists():  # follow: from the moment a daemon starts writing it
            time.sleep(0.2)
    with to_stdout():
        for line in tail(path, lines):
            sys.stdout.write(line)
    if not follow:
        return
    f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (reopened below)
    f.seek(0, os.SEEK_END)
    with to_stdout():
        try:
            while True:
                line = f.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    continue
                time.sleep(0.2)
                try:  # rotated (renamed, or made anew): follow the new file from its start
                    moved = os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
                except OSError:
                    continue
                if moved:
                    f.close()
                    f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        finally:
            f.close()
