"""Faults a daemon meets in the wild: a damaged store, a full disk, a locked catalog, a
checkout storm, the inotify watch limit. Real daemon, real Chroma, real SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import git as run_git
from tests.conftest import write
from tests.daemon_helpers import (
    CONTEXTD,
    contextd,
    pending,
    start_daemon,
    stop_daemon,
    wait_converged,
)


def daemon_env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "CONTEXTD_RECONCILE_INTERVAL_S": "3600"}  # fmt: skip
    return env | {f"CONTEXTD_{k.upper()}": v for k, v in settings.items()}


def small_repo(root: Path, files: int, dirs: int = 10) -> None:
    root.mkdir(parents=True)
    run_git(root, "init", "-q", "-b", "main")
    for i in range(files):
        write(root, f"pkg{i % dirs}/mod_{i}.py", f"def task_{i}(x):\n    return x + {i}\n")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "initial")


def doctor(env: dict[str, str]) -> dict[str, dict[str, int]]:
    return dict(json.loads(contextd(env, "doctor", "--json").stdout))


def clean(report: dict[str, dict[str, int]]) -> bool:
    return all(not (r["lost"] or r["orphan"] or r["duplicate"]) for r in report.values())


def test_a_damaged_catalog_is_named_in_a_few_lines(tmp_path: Path) -> None:
    """SQLite's check lists every bad cell: the "one line" error for a catalog with 20 KB
    overwritten was about a hundred lines, and what to do was lost below them."""
    from contextd.catalog import damage

    path = tmp_path / "catalog.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("CREATE INDEX t_body ON t (body)")
    db.executemany("INSERT INTO t (body) VALUES (?)", [(f"row {i} " * 12,) for i in range(4000)])
    db.commit()
    db.close()
    with path.open("r+b") as f:
        f.seek(8192)
        f.write(b"\x00" * 20000)  # 20 KB of the file lost
    found = damage(path)
    assert found and "\n" not in found and found.count("; ") <= 2, found
    assert len(found) < 400 and "more)" in found


# -- a damaged vector store --------------------------------------------------------------


def seed_cache(home: Path) -> int:
    """Random vectors in the embedding cache for every pending chunk: the daemon writes
    them to Chroma without model work (the model is beside the point here)."""
    from contextd.embedder import DEFAULT_MODEL_ID

    db = sqlite3.connect(home / "catalog.sqlite3")
    hashes = [h for (h,) in db.execute("SELECT DISTINCT hash FROM chunks WHERE embedded = 0")]
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((len(hashes), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    db.executemany(
        "INSERT OR REPLACE INTO vectors (model, hash, vector) VALUES (?, ?, ?)",
        [(DEFAULT_MODEL_ID, h, v.tobytes()) for h, v in zip(hashes, vectors, strict=True)],
    )
    db.commit()
    db.close()
    return len(hashes)


def test_a_damaged_or_deleted_vector_store_is_rebuilt_from_the_catalog(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "big"
    n = 1100  # past Chroma's sync threshold, so the HNSW files on disk are what it loads
    small_repo(root, n, dirs=20)
    env = daemon_env(home, watch="polling", polling_interval_s="3600")
    contextd(env, "add", str(root), "--name", "big")
    contextd(env, "index", "--no-wait")
    assert seed_cache(home) == n
    contextd(env, "start")
    try:
        wait_converged(env, "big", root, timeout=300)
    finally:
        stop_daemon(env)
    segments = [d for d in (home / "chroma").iterdir() if (d / "header.bin").exists()]
    assert segments, "Chroma wrote HNSW files"
    for seg in segments:  # zero every HNSW file, and cut one short
        for f in seg.iterdir():
            f.write_bytes(b"\0" * f.stat().st_size)
        (seg / "data_level0.bin").write_bytes(b"\0" * 100)

    started = time.monotonic()
    contextd(env, "start")
    try:
        wait_converged(env, "big", root, timeout=300)
        recovered = time.monotonic() - started
        out = contextd(env, "doctor").stdout
        assert "vector store was rebuilt" in out and f"{n} chunks" in out, out
        assert clean(doctor(env))
        log = (home / "logs" / "contextd.log").read_text() if (home / "logs").exists() else ""
        assert not log or "rebuilding" in log
    finally:
        stop_daemon(env)
    print(f"\nFIGURE damaged HNSW: {n} chunks rebuilt from the cache, daemon start to "
          f"converged in {recovered:.1f}s")  # fmt: skip

    import chromadb  # the collection deleted outright, found by `contextd doctor`

    client = chromadb.PersistentClient(path=str(home / "chroma"))
    for col in client.list_collections():
        client.delete_collection(col.name)
    del client
    started = time.monotonic()
    out = subprocess.run([*CONTEXTD, "doctor"], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "vector store was rebuilt" in out.stdout and "missing or empty" in out.stdout
    assert f"pending {n}" in out.stdout, out.stdout
    contextd(env, "index")
    recovered = time.monotonic() - started
    report = doctor(env)
    assert clean(report) and report["big"]["pending"] == 0 and report["big"]["chunks"] == n
    print(f"FIGURE deleted collection: doctor + index rebuilt {n} chunks in {recovered:.1f}s")


# -- a locked catalog ----------------------------------------------------------------------


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def locked_catalog(tmp_path: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    root = tmp_path / "repo"
    small_repo(root, 3)
    env = daemon_env(home)
    contextd(env, "add", str(root), "--name", "repo", "--no-hooks")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(home / "catalog.sqlite3")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    yield env
    locker.kill()
    locker.wait()


@pytest.mark.parametrize("command", [["status"], ["index"], ["search", "task"]])
def test_a_locked_catalog_is_a_clear_error_within_the_timeout(
    locked_catalog, command, tmp_path
) -> None:
    # What the same command costs with nothing locked (interpreter, imports: slow on a
    # busy machine), so that what is measured is the wait for the lock.
    free = {**locked_catalog, "CONTEXTD_HOME": str(tmp_path / "free")}
    started = time.monotonic()
    subprocess.run([*CONTEXTD, *command], env=free, capture_output=True, timeout=60)
    baseline = time.monotonic() - started
    started = time.monotonic()
    out = subprocess.run([*CONTEXTD, *command], env=locked_catalog, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    elapsed = time.monotonic() - started
    assert out.returncode == 1, out.stderr
    assert "locked by another process" in out.stderr and "contextd stop" in out.stderr
    assert "unexpected" not in out.stderr
    print(
        f"\nFIGURE locked catalog: `contextd {command[0]}` failed clearly in {elapsed:.1f}s "
        f"({elapsed - baseline:.1f}s more than with nothing locked)"
    )
    assert elapsed - baseline < 5.0


# -- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MB tmpfs to use as CONTEXTD_HOME."""
    mount = tmp_path / "disk"
    mount.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {out.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write zeros until the disk refuses."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (256 * 1024))
                f.flush()
        except OSError:
            pass


def status(env: dict[str, str]) -> dict:
    return dict(json.loads(contextd(env, "status", "--json").stdout))


def test_a_full_disk_makes_the_daemon_degraded_and_it_recovers(small_disk, tmp_path) -> None:
    home, root = small_disk / "home", tmp_path / "repo"
    small_repo(root, 20)
    env = start_daemon(home, polling_interval_s="0.5", watch="polling")
    try:
        contextd(env, "add", str(root), "--name", "repo")
        wait_converged(env, "repo", root, timeout=120)
        filler = small_disk / "filler"
        fill(filler)
        for i in range(20):
            write(root, f"new/mod_{i}.py", f"def added_{i}(y):\n    return y * {i}\n")
        deadline = time.monotonic() + 60
        while not status(env)["degraded"] and time.monotonic() < deadline:
            time.sleep(0.5)
        data = status(env)
        assert data["degraded"] and data["daemon"]["pid"], data
        text = contextd(env, "status").stdout
        assert "degraded" in text and "free space" in text
        time.sleep(3)  # the daemon keeps trying against the full disk, and stays up
        data = status(env)
        assert data["daemon"]["pid"]
        db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()

        freed = time.monotonic()
        filler.unlink()
        wait_converged(env, "repo", root, timeout=120)
        recovered = time.monotonic() - freed
        deadline = time.monotonic() + 30
        while status(env)["degraded"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status(env)["degraded"] == []
        assert clean(doctor(env))
        print(f"\nFIGURE disk full: recovered {recovered:.1f}s after space was freed")
    finally:
        stop_daemon(env)


def test_a_full_disk_under_the_embedded_store_is_named_and_search_still_answers(
    small_disk, tmp_path
) -> None:
    """Chroma's own "database or disk is full" came out as `unexpected error ... please
    report it` (exit 3), then as a store that "cannot be opened" with advice to reindex,
    whose run crashed in turn. Each is now the one line a full catalog already gave."""
    home, root = small_disk / "home", tmp_path / "repo"
    small_repo(root, 20)
    env = start_daemon(home)
    stop_daemon(env)  # only its environment: these commands run in process
    contextd(env, "add", str(root), "--name", "repo", "--no-hooks")
    contextd(env, "index", "--no-wait")
    filler = small_disk / "filler"
    fill(filler)
    # Not a byte free: even the catalog cannot open its shared-memory file, so search
    # cannot answer either (with a little space left, it answers by keyword, marked).
    for args in (["index"], ["reindex"], ["search", "task_3"]):
        out = contextd(env, *args, check=False)
        assert out.returncode == 1, (args, out.stderr)
        assert "is full" in out.stderr and "Free some space" in out.stderr, out.stderr
        assert "unexpected error" not in out.stderr and "Traceback" not in out.stderr
    filler.unlink()
    contextd(env, "index")
    assert clean(doctor(env))
    answer = json.loads(contextd(env, "search", "task_3", "--json").stdout)
    assert answer["degraded"] is None and answer["results"][0]["dense"] > 0


# -- the inotify watch limit ---------------------------------------------------------------


def test_past_the_watch_limit_a_source_is_polled_and_stays_correct(tmp_path, monkeypatch) -> None:
    """inotify refuses to watch the root itself (ENOSPC, as past
    fs.inotify.max_user_watches; simulated, as it runs on any machine): the source is
    polled instead, says so, and still sees edits and deletions. The tests below lower the
    real limit where the machine allows it."""
    import errno
    import queue

    from contextd.connectors.watch import Watchers

    def refuse(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    root = tmp_path / "repo"
    small_repo(root, 30, dirs=10)
    seen: queue.Queue[set[str]] = queue.Queue()
    watchers = Watchers(lambda _source, paths: seen.put(paths), polling_interval_s=0.3)
    monkeypatch.setattr(watchers._events, "schedule", refuse)
    watchers.start()
    try:
        assert watchers.watch("repo", root) == "polling"
        assert watchers.mode("repo") == "polling"
        started = time.monotonic()
        write(root, "pkg3/late.py", "def late():\n    return 'seen by polling'\n")
        (root / "pkg4/mod_4.py").unlink()
        got: set[str] = set()
        while not {"pkg3/late.py", "pkg4/mod_4.py"} <= got:
            got |= seen.get(timeout=10)
        print(f"\nFIGURE watch limit: polling saw an edit and a deletion in "
              f"{time.monotonic() - started:.1f}s")  # fmt: skip
    finally:
        watchers.stop()


LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


def inotify_watches_in_use() -> int:
    """Watches every process of this user holds now (the limit is per user)."""
    uid, n = os.getuid(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                        n += sum(line.startswith("inotify wd:") for line in info)
        except OSError:
            continue  # a process that ended meanwhile
    return n


def watch_mode(env: dict[str, str], source: str) -> str:
    return str(next(r["watch"] for r in status(env)["sources"] if r["name"] == source))


def folders(root: Path) -> int:
    return sum(1 for _ in os.walk(root))


@pytest.fixture
def watch_limit() -> Iterator[Callable[[int], None]]:
    """Sets the machine's real fs.inotify.max_user_watches, restored afterwards. Skips
    where the machine does not allow it (not root, a read-only /proc/sys); the simulated
    refusal above still runs there."""
    try:
        original = LIMIT.read_text()
        LIMIT.write_text(original)
    except OSError as exc:
        pytest.skip(f"cannot set fs.inotify.max_user_watches on this machine: {exc}")
    try:
        yield lambda n: LIMIT.write_text(f"{n}\n")
    finally:
        LIMIT.write_text(original)


def test_a_tree_past_the_real_watch_limit_is_polled(tmp_path, watch_limit) -> None:
    """The real limit, lowered below what the tree needs: watchdog watches the root and
    skips the sub-folders it cannot watch without a word, so the check against the
    kernel's own list of watches is what moves the source to polling."""
    import queue

    from contextd.connectors.watch import Watchers

    root = tmp_path / "repo"
    small_repo(root, 60, dirs=40)
    watch_limit(inotify_watches_in_use() + 5)
    seen: queue.Queue[set[str]] = queue.Queue()
    watchers = Watchers(lambda _source, paths: seen.put(paths), polling_interval_s=0.3)
    watchers.start()
    try:
        assert watchers.watch("repo", root) == "polling"
        write(root, "pkg37/late.py", "def late():\n    return 'seen by polling'\n")
        got: set[str] = set()
        while "pkg37/late.py" not in got:
            got |= seen.get(timeout=10)
    finally:
        watchers.stop()


def test_folders_created_past_the_real_watch_limit_move_the_daemon_to_polling(
    tmp_path, watch_limit
) -> None:
    """The tree fits under the limit when the daemon starts; then a branch adds 40 folders
    that do not. The daemon notices the unwatched folders, polls instead, catches up on
    what it missed, and goes on seeing edits."""
    home, root = tmp_path / "home", tmp_path / "repo"
    small_repo(root, 20, dirs=5)
    watch_limit(inotify_watches_in_use() + folders(root) + 8)
    env = start_daemon(home, polling_interval_s="0.5")
    try:
        contextd(env, "add", str(root), "--name", "repo")
        wait_converged(env, "repo", root, timeout=120)
        assert watch_mode(env, "repo") == "events"
        started = time.monotonic()
        for i in range(40):
            write(root, f"grown/area{i}/feature_{i}.py", f"def grown_{i}(v):\n    return v * {i}\n")
        deadline = time.monotonic() + 30
        while watch_mode(env, "repo") != "polling":
            assert time.monotonic() < deadline, "still on events with folders unwatched"
            time.sleep(0.2)
        moved = time.monotonic() - started
        wait_converged(env, "repo", root, timeout=120)
        caught_up = time.monotonic() - started
        write(root, "grown/area39/feature_39.py", "def changed_after(v):\n    return -v\n")
        edited = time.monotonic()
        wait_converged(env, "repo", root, timeout=60)
        seen_edit = time.monotonic() - edited
        log = (home / "logs" / "contextd.log").read_text()
        assert "inotify watch limit reached" in log and "max_user_watches" in log
        assert clean(doctor(env))
        print(
            f"\nFIGURE watch limit (real sysctl): polling after {moved:.1f}s, all 40 new "
            f"folders indexed after {caught_up:.1f}s, a later edit seen in {seen_edit:.1f}s"
        )
    finally:
        stop_daemon(env)


# -- a checkout storm ----------------------------------------------------------------------


def test_a_checkout_between_branches_that_differ_in_500_files_converges(tmp_path) -> None:
    home, root = tmp_path / "home", tmp_path / "storm"
    small_repo(root, 5)
    run_git(root, "checkout", "-q", "-b", "wide")
    for i in range(500):
        write(root, f"wide{i % 25}/w_{i}.py", f"def wide_{i % 40}(z):\n    return z - {i % 40}\n")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "wide")
    run_git(root, "checkout", "-q", "main")
    env = start_daemon(home)
    try:
        contextd(env, "add", str(root), "--name", "storm")
        wait_converged(env, "storm", root, timeout=120)
        started = time.monotonic()
        run_git(root, "checkout", "-q", "wide")
        wait_converged(env, "storm", root, timeout=300)
        there = time.monotonic() - started
        run_git(root, "checkout", "-q", "main")
        wait_converged(env, "storm", root, timeout=300)
        back = time.monotonic() - started - there
        assert clean(doctor(env)) and pending(home, "storm") == 0
        print(f"\nFIGURE checkout storm (500 files): {there:.1f}s there, {back:.1f}s back")
    finally:
        stop_daemon(env)
