"""Whether contextd can write its data dir: a full disk makes the daemon degraded, not dead.

A write that fails for lack of space (SQLite's "database or disk is full", ENOSPC from
Chroma or the filesystem) is rolled back where it happened and recorded here; `status`
says "degraded" with the reason. Once space comes back (more free bytes than at the
failure, or a while has passed) the daemon runs a reconcile and wakes the backlog, and the
first write that succeeds clears the record.
"""

from __future__ import annotations

import errno
import shutil
import threading
import time
from pathlib import Path

LOW_SPACE_BYTES = 1024 * 1024  # less than this free on the data dir's disk: degraded
RETRY_S = 30.0  # retry after a full disk at least this often, even with no space freed
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
FULL_TEXTS = ("disk is full", "no space left", "disk quota exceeded", "file too large")


def is_disk_full(exc: BaseException) -> bool:
    """Is this error (or one it was raised from) a write refused for lack of space?"""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in FULL_ERRNOS:
            return True
        if any(t in str(cur).lower() for t in FULL_TEXTS):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def free_bytes(home: Path) -> int | None:
    try:
        return shutil.disk_usage(home).free
    except OSError:
        return None


def low_space(home: Path) -> str | None:
    """A reason to call the data dir degraded when its disk is (nearly) full, else None."""
    free = free_bytes(home)
    if free is not None and free < LOW_SPACE_BYTES:
        return f"the disk holding {home} has {free // 1024} KiB free"
    return None


class Health:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = threading.Lock()
        self.disk_full: str | None = None  # the last write refused for lack of space
        self._free_at_failure = 0
        self._failed_at = 0.0

    def failed(self, exc: BaseException) -> None:
        if not is_disk_full(exc):
            return
        with self._lock:
            self.disk_full = f"{time.strftime('%H:%M:%S')} {exc}"
            self._free_at_failure = free_bytes(self.home) or 0
            self._failed_at = time.monotonic()

    def succeeded(self) -> None:
        with self._lock:
            self.disk_full = None

    def should_retry(self) -> bool:
        """After a full disk: has space come back (or has it been a while)? Once per change."""
        with self._lock:
            if self.disk_full is None:
                return False
            free = free_bytes(self.home) or 0
            if free >= self._free_at_failure + LOW_SPACE_BYTES or (
                time.monotonic() - self._failed_at > RETRY_S
            ):
                self._free_at_failure, self._failed_at = free, time.monotonic()
                return True
            return False

    def degraded(self) -> list[str]:
        reasons = []
        if self.disk_full:
            reasons.append(f"a write failed for lack of space: {self.disk_full}")
        low = low_space(self.home)
        if low:
            reasons.append(low)
        return reasons
