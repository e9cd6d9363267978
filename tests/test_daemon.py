"""A real daemon process, real watchdog and real git: the index follows what people do."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git as run_git
from tests.conftest import write
from tests.daemon_helpers import (
    CONTEXTD,
    contextd,
    indexed,
    start_daemon,
    stop_daemon,
    wait_converged,
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = start_daemon(tmp_path_factory.mktemp("d") / "home")
    yield env
    stop_daemon(env)


@pytest.fixture(scope="module")
def hooks_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A daemon that polls once an hour: only git hooks can tell it anything."""
    env = start_daemon(tmp_path_factory.mktemp("h") / "home", watch="polling",
                       polling_interval_s="3600")  # fmt: skip
    yield env
    stop_daemon(env)


def new_repo(tmp_path: Path, env: dict[str, str], name: str) -> tuple[Path, callable]:
    root = tmp_path / name
    root.mkdir()

    def g(*args: str) -> str:
        return run_git(root, *args, env={**os.environ, **env})

    g("init", "-q", "-b", "main")
    write(root, "app/core.py", "def handle(request):\n    return request\n")
    write(root, "README.md", "# Project\n\nA sample.\n")
    g("add", "-A")
    g("commit", "-q", "-m", "initial")
    contextd(env, "add", str(root), "--name", name)
    wait_converged(env, name, root)
    return root, g


def test_commit_amend_and_delete_recreate_converge(daemon, tmp_path: Path) -> None:
    root, g = new_repo(tmp_path, daemon, "basic")
    write(root, "app/billing.py", "def invoice(order):\n    return order.total\n")
    g("add", "-A")
    g("commit", "-q", "-m", "billing")
    wait_converged(daemon, "basic", root)
    write(root, "app/billing.py", "def invoice(order):\n    return order.total * 1.2\n")
    g("commit", "-q", "-a", "--amend", "--no-edit")
    wait_converged(daemon, "basic", root)
    (root / "app/core.py").unlink()
    wait_converged(daemon, "basic", root)
    write(root, "app/core.py", "def handle(request):\n    return 'new'\n")
    wait_converged(daemon, "basic", root)


def test_branches_merge_reset_and_stash_converge(daemon, tmp_path: Path) -> None:
    root, g = new_repo(tmp_path, daemon, "branches")
    g("checkout", "-q", "-b", "feature")
    write(root, "app/feature.py", "def shiny():\n    return 42\n")
    write(root, "app/core.py", "def handle(request):\n    return request.upper()\n")
    g("add", "-A")
    g("commit", "-q", "-m", "feature")
    wait_converged(daemon, "branches", root)
    g("checkout", "-q", "main")
    wait_converged(daemon, "branches", root)
    g("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    wait_converged(daemon, "branches", root)
    g("reset", "-q", "--hard", "HEAD~1")
    wait_converged(daemon, "branches", root)
    write(root, "README.md", "# Project\n\nWork in progress.\n")
    g("stash", "-q")
    wait_converged(daemon, "branches", root)
    g("stash", "pop", "-q")
    wait_converged(daemon, "branches", root)


def test_pull_rebase_converges(daemon, tmp_path: Path) -> None:
    root, g = new_repo(tmp_path, daemon, "rebased")
    upstream = tmp_path / "upstream.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(upstream))
    g("remote", "add", "origin", str(upstream))
    g("push", "-q", "origin", "main")
    other = tmp_path / "other"
    run_git(tmp_path, "clone", "-q", str(upstream), str(other))
    write(other, "app/remote.py", "def from_upstream():\n    return 'hi'\n")
    run_git(other, "add", "-A")
    run_git(other, "commit", "-q", "-m", "upstream work")
    run_git(other, "push", "-q", "origin", "main")
    write(root, "app/local.py", "def local_work():\n    return 1\n")
    g("add", "-A")
    g("commit", "-q", "-m", "local work")
    g("pull", "-q", "--rebase", "origin", "main")
    assert (root / "app/remote.py").exists()
    wait_converged(daemon, "rebased", root)


def test_an_atomic_save_is_indexed_and_temp_files_never_are(daemon, tmp_path: Path) -> None:
    root, _ = new_repo(tmp_path, daemon, "editor")
    target = root / "app/core.py"
    for tmp_name in ("core.py.tmp", ".core.py.swp", "core.py~", "4913"):
        tmp = root / "app" / tmp_name
        tmp.write_text("def handle(request):\n    return 'saved atomically'\n")
        if tmp_name == "core.py.tmp":
            os.replace(tmp, target)
    wait_converged(daemon, "editor", root)
    home = Path(daemon["CONTEXTD_HOME"])
    from tests.daemon_helpers import indexed

    assert "saved atomically" in target.read_text()
    assert set(indexed(home, "editor")) == {"app/core.py", "README.md"}


def test_a_source_folder_replaced_by_a_fresh_copy_is_watched_again(daemon, tmp_path) -> None:
    root, g = new_repo(tmp_path, daemon, "replaced")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    write(copy, "app/fresh.py", "def fresh():\n    return 'from the new copy'\n")
    run_git(copy, "add", "-A")
    run_git(copy, "commit", "-q", "-m", "in the copy")
    shutil.rmtree(root)  # rm -rf, then a fresh clone in its place
    time.sleep(0.5)
    shutil.copytree(copy, root)
    wait_converged(daemon, "replaced", root)
    write(root, "app/later.py", "def later():\n    return 'seen by the new watch'\n")
    wait_converged(daemon, "replaced", root)  # events again, not the hourly reconcile
    rows = json.loads(contextd(daemon, "status", "--json").stdout)["sources"]
    assert next(r for r in rows if r["name"] == "replaced")["errors"] == []


def test_a_folder_moved_away_is_said_unwatched_and_read_again_when_back(
    daemon, tmp_path: Path
) -> None:
    """`mv notes notes-moved` showed a healthy source, its watch went on reporting edits
    in notes-moved as notes' own, and a file made meanwhile was missed until a restart."""
    home = Path(daemon["CONTEXTD_HOME"])
    root = tmp_path / "notes"
    write(root, "plan.md", "# Plan\n\nWrite it down.\n")
    contextd(daemon, "add", str(root), "--name", "notes")

    def wait_for(check, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while not (found := check()):
            assert time.monotonic() < deadline, what
            time.sleep(0.1)
        return found

    def errors() -> list[str]:
        rows = json.loads(contextd(daemon, "status", "--json").stdout)["sources"]
        return next(r for r in rows if r["name"] == "notes")["errors"]

    wait_for(lambda: "plan.md" in indexed(home, "notes"), "plan.md never indexed")
    moved = tmp_path / "notes-moved"
    root.rename(moved)
    gone = wait_for(lambda: errors(), "no error while the folder was away")
    assert "is gone" in gone[0] and "contextd remove notes" in gone[0], gone
    write(moved, "plan.md", "# Plan\n\nWrite it down, from elsewhere.\n")
    write(moved, "capy.md", "# Capybaras\n\nMade while the folder was away.\n")
    time.sleep(1.5)
    assert "capy.md" not in indexed(home, "notes")  # not the watch of another folder
    moved.rename(root)
    wait_for(lambda: "capy.md" in indexed(home, "notes"), "capy.md missed after the return")
    wait_for(lambda: errors() == [], "the error outlived the folder's return")
    write(root, "later.md", "# Later\n")
    wait_for(lambda: "later.md" in indexed(home, "notes"), "no watch after the return")
    contextd(daemon, "remove", "notes")  # the daemon is shared: leave no source behind


def test_an_ignore_file_change_takes_effect_at_once(daemon, tmp_path: Path) -> None:
    root, g = new_repo(tmp_path, daemon, "ignoring")
    write(root, "app/local_notes.py", "NOTES = 'meant to stay on this machine'\n")
    wait_converged(daemon, "ignoring", root)
    write(root, ".gitignore", "app/local_notes.py\n")
    wait_converged(daemon, "ignoring", root, timeout=15)
    write(root, "app/scratch.py", "SCRATCH = 'mine alone'\n")
    wait_converged(daemon, "ignoring", root)
    write(root, ".git/info/exclude", "app/scratch.py\n")  # git's own, inside .git
    wait_converged(daemon, "ignoring", root, timeout=15)


def test_hooks_alone_carry_commits_merges_checkouts_and_rebases(hooks_only, tmp_path) -> None:
    env = hooks_only
    root, g = new_repo(tmp_path, env, "hooked")
    write(root, "app/first.py", "def first():\n    return 1\n")
    g("add", "-A")
    g("commit", "-q", "-m", "first")
    wait_converged(env, "hooked", root)
    g("checkout", "-q", "-b", "side")
    write(root, "app/side.py", "def side():\n    return 2\n")
    g("add", "-A")
    g("commit", "-q", "-m", "side")
    g("checkout", "-q", "main")
    wait_converged(env, "hooked", root)
    g("merge", "-q", "--no-ff", "-m", "merge side", "side")
    wait_converged(env, "hooked", root)
    write(root, "app/first.py", "def first():\n    return 'amended'\n")
    g("commit", "-q", "-a", "--amend", "--no-edit")
    wait_converged(env, "hooked", root)


def test_status_reports_the_daemon_and_each_source(daemon, tmp_path: Path) -> None:
    new_repo(tmp_path, daemon, "shown")
    data = json.loads(contextd(daemon, "status", "--json").stdout)
    assert data["daemon"]["pid"] > 0 and data["daemon"]["uptime_s"] >= 0
    row = next(r for r in data["sources"] if r["name"] == "shown")
    assert row["watch"] == "events" and row["indexed_commit"] == row["head"]
    assert (
        row["queued"] == 0 and row["pending"] == 0 and row["reconciled_at"] and row["errors"] == []
    )


def test_search_is_answered_by_the_daemon(daemon, tmp_path: Path) -> None:
    root, _ = new_repo(tmp_path, daemon, "searched")
    write(root, "app/pay.py", "def refund_payment(order):\n    '''Give the money back.'''\n")
    wait_converged(daemon, "searched", root)
    answer = json.loads(contextd(daemon, "search", "give money back", "--source", "searched",
                                 "--json").stdout)  # fmt: skip
    assert answer["results"][0]["path"] == "app/pay.py"
    assert answer["calibrated"] and answer["verdict"] in ("found", "uncertain", "not_found")


def test_many_requests_leave_the_daemon_with_a_bounded_number_of_open_files(
    daemon, tmp_path: Path
) -> None:
    """A daemon runs for weeks: every request used to leave a catalog connection open."""
    from contextd.rpc import call

    root, _ = new_repo(tmp_path, daemon, "requested")
    write(root, "app/ship.py", "def ship_order(order):\n    return order.box()\n")
    wait_converged(daemon, "requested", root)
    home = Path(daemon["CONTEXTD_HOME"])
    pid = json.loads(contextd(daemon, "status", "--json").stdout)["daemon"]["pid"]
    from contextd.rpc import RPC_THREADS

    def open_files_after_300_searches() -> int:
        for i in range(300):
            answer = call(home, "search", {"query": f"ship order {i}", "k": 3})
            assert answer["results"][0]["path"] == "app/ship.py"
        return len(os.listdir(f"/proc/{pid}/fd"))

    before = len(os.listdir(f"/proc/{pid}/fd"))
    first, second = open_files_after_300_searches(), open_files_after_300_searches()
    # Each request thread of the pool keeps one connection (database and WAL files).
    assert first - before <= 2 * RPC_THREADS, f"{first - before} more open files"
    assert second - first <= 2, f"{second - first} more open files after another 300"


def test_a_second_daemon_on_the_same_data_dir_refuses_at_once(daemon) -> None:
    started = time.monotonic()
    out = subprocess.run([*CONTEXTD, "daemon"], env=daemon, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    elapsed = time.monotonic() - started
    assert out.returncode == 1 and "already running" in out.stderr and "pid" in out.stderr
    assert elapsed < 5


def test_two_starts_at_once_both_get_the_one_daemon_in_a_private_data_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    starts = [
        subprocess.Popen(
            [*CONTEXTD, "start"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        outs = [p.communicate(timeout=120) for p in starts]
        assert [p.returncode for p in starts] == [0, 0], outs
        pids = {json.loads(contextd(env, "status", "--json").stdout)["daemon"]["pid"]}
        assert len(pids) == 1
        assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700  # it holds the code
    finally:
        stop_daemon(env)
    (tmp_path / "home").chmod(0o755)  # as an earlier contextd left it
    contextd(env, "status")
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700


def test_stop_never_signals_a_process_a_killed_daemon_left_its_pid_to(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    bystander = subprocess.Popen(["sleep", "60"])  # the pid a kill -9'd daemon left behind
    try:
        info = {"pid": bystander.pid, "started_at": 1.0, "socket": str(home / "daemon.sock")}
        (home / "daemon.json").write_text(json.dumps(info))
        out = contextd(env, "stop")
        assert "not running" in out.stdout
        time.sleep(0.2)
        assert bystander.poll() is None, "stop signalled a process that is not contextd"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_daemon_started_by_a_long_lived_client_stops_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MCP client over stdio starts the daemon as its child and lives on. The daemon
    exited at `contextd stop`, but as a zombie nobody collected: stop waited 30 s, failed
    with "did not stop", and the client's next call started another daemon."""
    from contextd.launcher import ensure_daemon
    from contextd.settings import load_settings

    home = tmp_path / "home"
    monkeypatch.setenv("CONTEXTD_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    pid = int(ensure_daemon(load_settings())["pid"])  # this test process is the client
    began = time.monotonic()
    out = contextd(env, "stop", check=False)
    assert out.returncode == 0 and f"contextd stopped (pid {pid})" in out.stdout, out.stderr
    assert time.monotonic() - began < 15
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the daemon is left a zombie"


def test_a_start_waits_for_a_command_holding_the_lock_then_starts_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `contextd index` working and no daemon, `start` (and an agent's first MCP call)
    waited the whole 120 s, then failed: its daemon had exited on the lock, and none was
    started again once the index let go (from a tester)."""
    import threading

    from contextd.launcher import ensure_daemon
    from contextd.lock import DataDirLock
    from contextd.settings import load_settings

    home = tmp_path / "home"
    monkeypatch.setenv("CONTEXTD_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = load_settings()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    lock = DataDirLock(home)  # this process plays the command at work
    assert lock.acquire()
    refused = contextd(env, "daemon", check=False)  # it named a daemon that was not there
    assert refused.returncode == 1 and "Another contextd command (pid " in refused.stderr
    assert f"is working on {home}: the daemon can start once it is done" in refused.stderr

    threading.Timer(3.0, lock.release).start()
    began = time.monotonic()
    pid = int(ensure_daemon(settings, timeout=90)["pid"])
    waited = time.monotonic() - began
    out = contextd(env, "stop", check=False)
    assert 3.0 <= waited < 45, waited
    assert f"contextd stopped (pid {pid})" in out.stdout, out.stderr


@pytest.mark.parametrize("gone", ["deleted", "moved"])
def test_a_daemon_whose_data_dir_is_deleted_stops_and_a_new_one_is_left_alone(
    tmp_path: Path, gone: str
) -> None:
    """`rm -rf` of the data dir left a daemon that no `status` or `stop` could find,
    beside the next one `start` made; stopping late, it must not take the new one's files.
    Moved, its log's reopening raised out of `log.error`, and the daemon died unclean."""
    env = start_daemon(tmp_path / "home")
    first = json.loads(contextd(env, "status", "--json").stdout)["daemon"]["pid"]
    if gone == "deleted":
        shutil.rmtree(tmp_path / "home")
    else:
        (tmp_path / "home").rename(tmp_path / "home.old")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(first):
        time.sleep(0.2)
    if outlived := _alive(first):
        os.kill(first, signal.SIGTERM)  # no orphan left running when this fails
    assert not outlived, "the daemon outlived its data dir"
    if gone == "moved":
        stderr = (tmp_path / "home.old/logs/daemon.stderr").read_text(errors="replace")
        assert "Traceback" not in stderr, stderr[-3000:]
    try:
        contextd(env, "start")
        second = json.loads(contextd(env, "status", "--json").stdout)["daemon"]
        assert second["pid"] not in (None, first)
    finally:
        stop_daemon(env)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has stopped
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_hook_against_a_frozen_daemon_returns_at_once_and_counts_later(daemon, tmp_path) -> None:
    root, g = new_repo(tmp_path, daemon, "frozen")
    pid = json.loads(contextd(daemon, "status", "--json").stdout)["daemon"]["pid"]
    write(root, "app/late.py", "def late():\n    return 'after the thaw'\n")
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        g("add", "-A")
        g("commit", "-q", "-m", "while frozen")
        assert time.monotonic() - started < 2.0
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_converged(daemon, "frozen", root)


def test_notes_spooled_while_down_are_handled_at_the_next_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = start_daemon(home, watch="polling", polling_interval_s="3600")
    root, g = new_repo(tmp_path, env, "spooled")
    stop_daemon(env)
    write(root, "app/offline.py", "def offline():\n    return 'while the daemon was down'\n")
    g("add", "-A")
    g("commit", "-q", "-m", "offline work")
    spool = home / "spool"
    deadline = time.monotonic() + 10
    while not list(spool.glob("*.note")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(spool.glob("*.note")), "the hook leaves its note for the next start"
    contextd(env, "start")
    try:
        wait_converged(env, "spooled", root)
        assert not list(spool.glob("*.note")), "spooled notes are consumed at start"
    finally:
        stop_daemon(env)


def test_a_storm_of_hook_notes_leaves_the_daemon_running(daemon, tmp_path: Path) -> None:
    root, g = new_repo(tmp_path, daemon, "storm")
    hook = root / ".git" / "hooks" / "post-commit"
    env = {**os.environ, **daemon}
    for _ in range(300):
        subprocess.run([str(hook)], cwd=root, env=env, check=True)
    write(root, "app/after_storm.py", "def calm():\n    return 'still here'\n")
    g("add", "-A")
    g("commit", "-q", "-m", "after the storm")
    wait_converged(daemon, "storm", root)
    assert json.loads(contextd(daemon, "status", "--json").stdout)["daemon"]["pid"] > 0
    assert not list((Path(daemon["CONTEXTD_HOME"]) / "spool").glob("*.note"))


def test_index_through_the_daemon_waits_until_every_chunk_is_embedded(daemon, tmp_path) -> None:
    root, _ = new_repo(tmp_path, daemon, "waited")
    for i in range(30):
        write(root, f"app/mod_{i}.py", f"def task_{i}(x):\n    '''Step {i} of the job.'''\n")
    summary = json.loads(contextd(daemon, "index", "waited", "--json").stdout)
    row = next(r for r in summary["sources"] if r["source"] == "waited")
    # The watcher may have started on them first; either way, none is left unembedded.
    assert summary["pending"] == row["pending"] == 0 and row["files"] == 32
    assert row["searchable_seconds"] <= summary["seconds"]
    data = json.loads(contextd(daemon, "status", "--json").stdout)
    shown = next(r for r in data["sources"] if r["name"] == "waited")
    assert shown["pending"] == 0 and shown["chunks"] >= 30


def test_a_search_the_daemon_answers_loads_no_model_store_or_settings(daemon, tmp_path) -> None:
    new_repo(tmp_path, daemon, "light")
    probe = (
        "import sys\n"
        "from contextd.cli.main import run\n"
        "code = run(['search', 'handle request', '--source', 'light', '-k', '2'])\n"
        "heavy = {'torch', 'numpy', 'chromadb', 'sentence_transformers', 'pydantic_settings',\n"
        "         'contextd.redaction', 'pathspec'}  # the scan's: 50 ms of the command\n"
        "print('loaded:', sorted(heavy & set(sys.modules)), code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=daemon, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "app/core.py" in out.stdout and "loaded: [] 0" in out.stdout


def test_a_daemon_of_another_version_is_named_and_can_still_be_stopped(tmp_path: Path) -> None:
    """An upgrade while the daemon runs: the new `status` crashed on `KeyError: 'store'`
    and `index` on `KeyError: 'searchable_seconds'` (exit 3, a traceback). Every command
    now says to restart it, in one line; `stop` still works."""
    home = tmp_path / "home"
    env = start_daemon(home)
    try:
        info_path = home / "daemon.json"
        info = json.loads(info_path.read_text())
        assert info["protocol"]
        info_path.write_text(json.dumps({**info, "protocol": "0.0.1+1"}))  # as an old one
        for args in (["status"], ["search", "anything"], ["index"], ["sources", "--json"]):
            out = contextd(env, *args, check=False)
            assert out.returncode == 1, (args, out.stderr)
            assert "are from different versions of contextd" in out.stderr
            assert "`contextd stop`, then `contextd start`" in out.stderr
            assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    finally:
        stop_daemon(env)
    assert "not running" in contextd(env, "status").stdout


def test_an_index_cut_by_an_earlier_chunker_is_served_by_keyword_and_named(
    tmp_path: Path,
) -> None:
    """After an upgrade that changed the chunker, `start` failed (so every MCP tool did),
    and `status` showed nothing wrong. The daemon now serves the keyword index, marked,
    and `status` names the reindex that makes it whole."""
    import sqlite3

    from contextd.settings import Settings
    from contextd.store import open_client

    home, root = tmp_path / "home", tmp_path / "repo"
    write(root, "billing.py", "def post_invoice(entry):\n    '''Email the receipt.'''\n")
    env = start_daemon(home)
    stop_daemon(env)
    contextd(env, "add", str(root), "--name", "repo")
    contextd(env, "index")
    client = open_client(Settings(home=home))
    (col,) = [c for c in client.list_collections() if c.name.startswith("contextd-")]
    col.modify(metadata={**(col.metadata or {}), "chunker_version": 1})  # as an old one
    db = sqlite3.connect(home / "catalog.sqlite3")
    db.execute("DELETE FROM meta WHERE key = 'chunker_version'")  # older catalogs lack it
    db.commit()
    db.close()
    env = start_daemon(home)  # before: "The daemon exited while starting"
    try:
        answer = json.loads(contextd(env, "search", "post_invoice", "--json").stdout)
        assert "chunker v1" in answer["degraded"] and "contextd reindex" in answer["degraded"]
        assert answer["results"][0]["path"] == "billing.py"
        text = contextd(env, "search", "post_invoice").stdout
        assert "Keyword results only" in text and "none for keyword results only" in text
        assert "not calibrated for this embedding model" not in text  # not the reason
        text = contextd(env, "status").stdout
        assert "not usable" in text and "chunker v1" in text, text
        write(root, "tax.py", "def compute_vat_surcharge(amount):\n    return amount\n")
        deadline = time.monotonic() + 30  # an edit still reaches the keyword index
        while "tax.py" not in contextd(env, "search", "compute_vat_surcharge").stdout:
            assert time.monotonic() < deadline, "the edit never reached the keyword index"
            time.sleep(0.5)
        contextd(env, "reindex")
        answer = json.loads(contextd(env, "search", "post_invoice", "--json").stdout)
        assert answer["degraded"] is None and answer["results"][0]["dense"] > 0
        assert "not usable" not in contextd(env, "status").stdout
    finally:
        stop_daemon(env)
    # Another model is not served: its queries would need that model (or a download).
    other = {**env, "CONTEXTD_MODEL": str(tmp_path)}
    out = contextd(other, "start", check=False)
    assert out.returncode == 1 and "The index was built with model" in out.stderr, out.stderr


def test_the_backlog_runs_no_model_while_the_store_cannot_take_vectors(
    app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each try embedded a 512-chunk slice and dropped it when the store refused it."""
    from contextd.errors import ChunkerMismatch
    from contextd.store import open_client

    root = tmp_path / "notes"
    for i in range(20):
        write(root, f"n{i}.md", f"# Note {i}\n\nabout topic {i}\n")
    app.index(app.catalog.add_source("notes", root, "folder"), embed=False)
    assert app.catalog.pending_count() == 20
    client = open_client(app.settings)
    (col,) = [c for c in client.list_collections() if c.name.startswith("contextd-")]
    col.modify(metadata={**(col.metadata or {}), "chunker_version": 1})
    app.__dict__.pop("store", None)  # opened again, as by a daemon after an upgrade
    calls = []
    real = app.embedder.embed
    monkeypatch.setattr(  # the embedder is shared by the tests: restored afterwards
        app.embedder, "embed", lambda texts, *rest: calls.append(len(texts)) or real(texts, *rest)
    )
    with pytest.raises(ChunkerMismatch):
        app.indexer.embed_pending()
    assert calls == [] and app.catalog.pending_count() == 20


def test_the_log_is_written_once_and_follows_a_rotation(tmp_path: Path) -> None:
    """Every line went to contextd.log and daemon.stderr alike, and after logrotate moved
    contextd.log away the daemon went on writing to the moved file (`logs` showed nothing)."""
    from contextd.logs import MAX_LOG_BYTES, rotate_log

    home, root = tmp_path / "home", tmp_path / "notes"
    write(root, "a.md", "# A\n\nfirst\n")
    env = start_daemon(home)
    try:
        log = home / "logs" / "contextd.log"
        assert "daemon ready" in log.read_text()
        assert "daemon ready" not in (home / "logs" / "daemon.stderr").read_text()
        log.rename(log.with_name("contextd.log.1"))  # as logrotate does
        contextd(env, "add", str(root), "--name", "notes")
        deadline = time.monotonic() + 30
        while "notes" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the daemon never wrote the new log"
            time.sleep(0.2)
        assert "notes" in contextd(env, "logs", "-n", "20").stdout
    finally:
        stop_daemon(env)
    big = tmp_path / "big.log"
    big.write_bytes(b"x" * (MAX_LOG_BYTES + 1))
    rotate_log(big)
    assert not big.exists() and (tmp_path / "big.log.1").stat().st_size == MAX_LOG_BYTES + 1


def test_a_source_is_not_current_while_its_catch_up_waits(app, repo: Path) -> None:
    """Right after a start, `status` said a source was up to date (and MCP `sources`
    `up_to_date`) before the catch-up scan had looked at what changed while it was down."""
    from contextd import ops
    from contextd.mcp_server.server import _source_info
    from contextd.worker import Reconcile, Worker

    app.index(app.catalog.add_source("shop", repo, "git"))
    write(repo, "src/offline.py", "def offline():\n    return 'edited while the daemon was down'\n")
    worker = Worker(app, settle_s=0.01, reconcile_interval_s=3600)
    first, second = Reconcile("shop"), Reconcile(None)
    worker.submit(first)  # a hook's look, taken before the next one came
    worker.submit(second)  # as the daemon does when it starts
    worker.queue.get_nowait()
    worker._process([first])
    assert worker.state("shop").rescan, "the second look is still to come"
    row = {**ops.sources(app)[0], "busy": worker.state("shop").rescan, "queued": 0}
    assert not _source_info(row).up_to_date
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while worker.state("shop").rescan or worker.busy():
            assert time.monotonic() < deadline, "the catch-up never ran"
            time.sleep(0.05)
    finally:
        worker.stop()
        worker.join(timeout=30)
    assert "src/offline.py" in app.catalog.file_states("shop")
