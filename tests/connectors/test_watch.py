"""Real watchdog observers; waits are queue timeouts, not sleeps."""

from __future__ import annotations

import errno
import os
import queue
from pathlib import Path

import pytest

from contextd.connectors.watch import Watchers


def collect(timeout: float, q: queue.Queue, until: set[str]) -> set[str]:
    seen: set[str] = set()
    while not until <= seen:
        try:
            _, paths = q.get(timeout=timeout)
        except queue.Empty:
            break
        seen |= paths
    return seen


def drain(q: queue.Queue, timeout: float = 0.5) -> set[str]:
    seen: set[str] = set()
    while True:
        try:
            seen |= q.get(timeout=timeout)[1]
        except queue.Empty:
            return seen


def test_events_name_the_final_file_and_never_temp_files(tmp_path: Path) -> None:
    q: queue.Queue = queue.Queue()
    w = Watchers(lambda s, p: q.put((s, p)))
    w.start()
    try:
        assert w.watch("src", tmp_path) == "events"
        (tmp_path / "pkg").mkdir()
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "index").write_text("x")
        (tmp_path / "pkg" / ".mod.py.swp").write_text("swap")
        (tmp_path / "pkg" / "mod.py.tmp").write_text("new content")
        os.replace(tmp_path / "pkg" / "mod.py.tmp", tmp_path / "pkg" / "mod.py")
        seen = collect(5, q, {"pkg/mod.py"}) | drain(q)
    finally:
        w.stop()
    assert "pkg/mod.py" in seen
    assert not {p for p in seen if p.endswith((".swp", ".tmp")) or p.startswith(".git")}


def test_a_refused_inotify_watch_falls_back_to_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    q: queue.Queue = queue.Queue()
    w = Watchers(lambda s, p: q.put((s, p)), polling_interval_s=0.2)

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(w._events, "schedule", refuse)
    w.start()
    try:
        assert w.watch("src", tmp_path) == "polling"
        assert w.mode("src") == "polling"
        (tmp_path / "late.md").write_text("# Late\n")
        seen = collect(10, q, {"late.md"})
    finally:
        w.stop()
    assert "late.md" in seen
