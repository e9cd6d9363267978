"""One writer per data dir: an exclusive flock held for the life of the writer.

The daemon holds it while it runs; a command run with no daemon holds it while it works.
`daemon.json` beside it names the daemon that holds it (pid, start time, socket).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from contextd.errors import ConfigError
from contextd.home import make_home

LOCK_NAME = "contextd.lock"
INFO_NAME = "daemon.json"


class DataDirLock:
    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> bool:
        """Take the lock, waiting up to wait_s; False if another process holds it."""
        make_home(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # a read-only file system, or a data dir of another user
            raise ConfigError(
                f"Cannot write to the data dir {self.path.parent} ({exc.strerror}). Make it "
                "writable, or point CONTEXTD_HOME at a folder you can write."
            ) from None
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
                continue
            self._fd = fd
            with contextlib.suppress(OSError):  # who holds it, for the others' messages
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(_me()).encode(), 0)
            return True

    def still_ours(self) -> bool:
        """Is the lock file we hold still the data dir's? Not when the data dir was
        deleted (and perhaps made anew): then no command can find or stop us."""
        if self._fd is None:
            return False
        try:
            here, held = os.stat(self.path), os.fstat(self._fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _me() -> dict[str, Any]:
    args = [os.path.basename(sys.argv[0]) or "python", *sys.argv[1:]]
    if args[0] in ("__main__.py", "-c"):
        args[0] = "contextd"
    return {"pid": os.getpid(), "command": " ".join(args)[:200]}


def _held_by(home: Path) -> tuple[int, str] | None:
    """(pid, command line) of who holds the data dir's lock; None when unknown (an
    earlier contextd took it, which wrote no name)."""
    try:
        held_by = json.loads((home / LOCK_NAME).read_text() or "{}")
        return int(held_by["pid"]), str(held_by["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder_command(home: Path) -> str:
    """The command line of who holds the data dir's lock ("contextd index"), or ""."""
    held_by = _held_by(home)
    return held_by[1] if held_by else ""


def holder(home: Path) -> str:
    """Who holds the data dir's lock, as a message names it: "pid 1234, `contextd
    index`" (or "" when unknown)."""
    held_by = _held_by(home)
    return f"pid {held_by[0]}, `{held_by[1]}`" if held_by else ""


def write_info(home: Path, **info: Any) -> None:
    path = home / INFO_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def held(home: Path) -> bool:
    """Whether another process holds the data dir's lock (a daemon, or a command)."""
    lock = DataDirLock(home)
    if not lock.acquire():
        return True
    lock.release()
    return False


def read_info(home: Path) -> dict[str, Any] | None:
    """What the running daemon wrote of itself. None when its process is gone, or when
    nothing holds the lock: a daemon killed with -9 leaves the file behind, and its pid
    may belong to another program by now."""
    try:
        info = json.loads((home / INFO_NAME).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not held(home):
        return None
    return dict(info)


def clear_info(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / INFO_NAME).unlink()
