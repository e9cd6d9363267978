"""Real watchdog observers; waits are queue timeouts, not sleeps."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import queue
import shutil
from pathlib import Path

import pytest

from contextd.connectors import watch
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


def test_a_data_dirs_own_writes_are_no_events(tmp_path: Path) -> None:
    """With the data dir inside a watched folder, the daemon's own catalog and log writes
    were events: an index run that never ended."""
    home = tmp_path / ".local/share/contextd"
    home.mkdir(parents=True)
    (home / ".contextd-data-dir").write_text("a data dir\n")
    q: queue.Queue = queue.Queue()
    w = Watchers(lambda s, p: q.put((s, p)))
    w.start()
    try:
        assert w.watch("home", tmp_path) == "events"
        (home / "logs").mkdir()
        (home / "logs" / "daemon.log").write_text("indexed\n")
        (home / "catalog.sqlite3").write_text("rows\n")
        (tmp_path / "plan.md").write_text("# Plan\n")
        seen = collect(5, q, {"plan.md"}) | drain(q)
    finally:
        w.stop()
    assert seen == {"plan.md"}


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


def test_a_root_counts_as_replaced_only_when_it_is(tmp_path: Path) -> None:
    w = Watchers(lambda s, p: None, polling_interval_s=0.2)
    w._unwatched = lambda root, limit=5: ["deep"]  # type: ignore[method-assign]  # a huge tree
    w._refused = lambda source, root, missing: True  # type: ignore[method-assign]
    w.start()
    try:
        root = tmp_path / "src"
        root.mkdir()
        assert w.watch("src", root) == "polling"  # fell back: the same root all along
        assert w.replaced_roots() == []
        shutil.rmtree(root)
        assert w.replaced_roots() == ["src"]
        root.mkdir()
        w.watch("src", root)
        assert w.replaced_roots() == []
    finally:
        w.stop()


def inotify_masks() -> list[int]:
    """The event mask of every inotify watch this process holds (Linux /proc)."""
    masks = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                masks += [int(line.split(" mask:")[1].split()[0], 16)
                          for line in info if line.startswith("inotify wd:")]  # fmt: skip
        except OSError:
            continue
    return masks


IN_ACCESS, IN_CLOSE_NOWRITE, IN_OPEN = 0x1, 0x10, 0x20


def test_only_changes_are_asked_of_inotify_so_reads_cannot_flood_it(tmp_path: Path) -> None:
    """watchdog asks by default for every open and read-only close too: in a large tree an
    editor, grep or the reconcile's own reading then overflow the kernel queue, and each
    overflow makes watchdog drop and re-add every watch (seen on the stdlib: 5 overflows
    from reading its files once)."""
    for i in range(40):
        (tmp_path / f"d{i % 8}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 8}" / f"f{i}.py").write_text(f"x = {i}\n")
    q: queue.Queue = queue.Queue()
    w = Watchers(lambda s, p: q.put((s, p)))
    w.start()
    try:
        assert w.watch("src", tmp_path) == "events"
        masks = inotify_masks()
        assert len(masks) >= 9  # the root and its 8 folders
        assert all(m & (IN_ACCESS | IN_CLOSE_NOWRITE | IN_OPEN) == 0 for m in masks)
        (tmp_path / "d3" / "f3.py").write_text("x = 'changed'\n")
        (tmp_path / "d4" / "f4.py").rename(tmp_path / "d4" / "g4.py")
        (tmp_path / "d5" / "f5.py").unlink()
        (tmp_path / "d9").mkdir()
        (tmp_path / "d9" / "new.py").write_text("y = 1\n")
        want = {"d3/f3.py", "d4/f4.py", "d4/g4.py", "d5/f5.py", "d9/new.py"}
        seen = collect(5, q, want)
    finally:
        w.stop()
    assert want <= seen


def drop_watch(folder: Path) -> None:
    """Remove this process's inotify watch on `folder`, as a busy watchdog that has not
    added it yet, or an overflow of inotify's queue, leaves a folder unwatched."""
    libc, inode = ctypes.CDLL(None, use_errno=True), folder.stat().st_ino
    for fd in os.listdir("/proc/self/fd"):
        if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
            continue
        with open(f"/proc/self/fdinfo/{fd}") as info:
            for line in info:
                if (
                    line.startswith("inotify wd:")
                    and int(line.split(" ino:")[1].split()[0], 16) == inode
                ):
                    assert libc.inotify_rm_watch(int(fd), int(line.split()[1][3:])) == 0
                    return
    raise AssertionError(f"no watch on {folder}")


def unwatched(root: Path) -> list[str]:
    return watch.unwatched_folders(root, watch.watched_inodes() or set())


def test_an_unwatched_folder_below_the_watch_limit_is_watched_again_not_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Unwatched folders are not proof of the watch limit: the kernel is asked. When it
    takes more watches, the tree is watched anew (and caught up), not polled for good."""
    monkeypatch.setattr(watch, "RECHECK_S", 0.1)
    caught_up: queue.Queue[str] = queue.Queue()
    q: queue.Queue = queue.Queue()
    w = Watchers(lambda s, p: q.put((s, p)), polling_interval_s=0.2, on_fallback=caught_up.put)
    root = tmp_path / "src"
    (root / "a" / "deep").mkdir(parents=True)
    w.start()
    try:
        assert w.watch("src", root) == "events"
        drop_watch(root / "a" / "deep")
        assert unwatched(root) == ["a/deep"]
        with caplog.at_level(logging.INFO, logger="contextd.connectors.watch"):
            (root / "new").mkdir()  # a new folder: its watch is checked a moment later
            assert caught_up.get(timeout=10) == "src"
        assert w.mode("src") == "events"
        assert unwatched(root) == []
        assert "watching the tree anew" in caplog.text and "limit" not in caplog.text
        drain(q)
        (root / "a" / "deep" / "seen.md").write_text("# seen by inotify again\n")
        assert "a/deep/seen.md" in collect(5, q, {"a/deep/seen.md"})
    finally:
        w.stop()
