"""Start the daemon in the background and wait until it answers (CLI `start`, MCP)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contextd import rpc
from contextd.errors import DaemonError
from contextd.home import make_home
from contextd.lock import held, holder

if TYPE_CHECKING:
    from contextd.settings import Settings

START_TIMEOUT_S = 120.0


def tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return list(deque(f, maxlen=n))
    except OSError:
        return []


def spawn(settings: Settings) -> subprocess.Popen[bytes]:
    make_home(settings.home)
    settings.log_path.parent.mkdir(parents=True, exist_ok=True)
    # Anew each start: a start that fails is diagnosed from what this one printed.
    with open(settings.log_path.with_name("daemon.stderr"), "wb") as err:
        return subprocess.Popen(
            # Its log goes to contextd.log; daemon.stderr keeps only what Python itself
            # prints there (a crash before logging is set up).
            [sys.executable, "-m", "contextd", "daemon", "--detached"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )


def ensure_daemon(settings: Settings, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
    """The running daemon's ping reply, starting one first if none answers.

    Two starters can race (an MCP client's warm-up and its first call, two terminals):
    the loser's daemon exits on the lock, and the loser then waits for the winner's. A
    command that holds the lock (`contextd index` with no daemon) is waited for, and the
    daemon started as soon as it is done.
    """
    info = rpc.ping(settings.home)
    if info:
        return info
    proc: subprocess.Popen[bytes] | None = spawn(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = rpc.ping(settings.home, timeout=1.0)
        if info:
            if proc is not None:  # our child: reaped when it exits, or `stop` waits on a zombie
                threading.Thread(target=proc.wait, name="contextd-reap", daemon=True).start()
            return info
        code = proc.poll() if proc else None
        if proc is None and not held(settings.home):
            # Ours exited on the lock, and its holder let go with no daemon answering: a
            # command indexing without the daemon (or a starter that failed) is done.
            proc = spawn(settings)
        elif code is not None:
            proc = None
            if not held(settings.home):
                lines = tail(settings.log_path.with_name("daemon.stderr"), 3) or tail(
                    settings.log_path, 3
                )
                reason = lines[-1].strip().rstrip(".") if lines else f"exit code {code}"
                raise DaemonError(
                    f"The daemon exited while starting: {reason}. See `contextd logs`."
                )
        time.sleep(0.05)
    if proc is None:
        who = holder(settings.home) or "a command indexing without the daemon?"
        raise DaemonError(
            f"Another contextd process ({who}) holds the lock on {settings.home} and no "
            f"daemon answered within {timeout:.0f}s. Wait for it to finish, then try again."
        )
    raise DaemonError(f"The daemon did not answer within {timeout:.0f}s. See `contextd logs`.")
