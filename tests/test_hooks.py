"""Git hooks installed the way pre-commit installs its own."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from contextd import hooks
from tests.conftest import git, write

FOREIGN = (
    b'#!/bin/sh\n# someone else\'s hook\necho ran >> "$(git rev-parse --git-dir)/foreign-ran"\n'
)


def hook_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CONTEXTD_HOME": str(home)}


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_foreign_hook_is_chained_and_restored_byte_for_byte(repo: Path, tmp_path: Path) -> None:
    hook = repo / ".git/hooks/post-commit"
    hook.write_bytes(FOREIGN)
    hook.chmod(0o751)
    before = (hook.read_bytes(), stat.S_IMODE(hook.stat().st_mode))
    home = tmp_path / "home"
    hooks.install(repo, home)
    assert hooks.installed(repo) == list(hooks.HOOKS)
    assert (repo / ".git/hooks/post-commit.contextd-legacy").read_bytes() == FOREIGN

    write(repo, "x.py", "x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x", env=hook_env(home))
    assert (repo / ".git/foreign-ran").read_text() == "ran\n"  # the foreign hook still runs
    notes = list((home / "spool").glob("*.note"))
    assert notes, "the hook leaves a note in the spool"
    hook_name, root = notes[0].read_text().splitlines()
    assert Path(root).resolve() == repo.resolve() and hook_name == "post-commit"

    hooks.install(repo, home)  # installing twice keeps the foreign hook safe
    assert (repo / ".git/hooks/post-commit.contextd-legacy").read_bytes() == FOREIGN
    hooks.uninstall(repo)
    assert (hook.read_bytes(), stat.S_IMODE(hook.stat().st_mode)) == before
    assert not (repo / ".git/hooks/post-commit.contextd-legacy").exists()
    assert not (repo / ".git/hooks/post-merge").exists()
    assert hooks.installed(repo) == []


def test_core_hooks_path_and_worktrees_are_honoured(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "my-hooks"
    git(repo, "config", "core.hooksPath", str(outside))
    hooks.install(repo, tmp_path / "home")
    assert (outside / "post-checkout").exists()
    assert not (repo / ".git/hooks/post-checkout").exists()
    hooks.uninstall(repo)
    # A hooks folder in the working tree is the team's (committed): never written to.
    git(repo, "config", "core.hooksPath", ".githooks")
    with pytest.raises(hooks.SharedHooksFolder, match="the team shares"):
        hooks.install(repo, tmp_path / "home")
    assert not (repo / ".githooks").exists() and git(repo, "status", "--porcelain") == ""
    git(repo, "config", "--unset", "core.hooksPath")

    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "wt-branch")
    hooks.install(worktree, tmp_path / "home")
    assert (repo / ".git/hooks/post-commit").exists(), "worktrees share the common hooks dir"
    hooks.uninstall(worktree)


def test_a_hook_returns_quickly_and_exits_0_with_no_daemon(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    hooks.install(repo, home)
    started = time.monotonic()
    out = subprocess.run([str(repo / ".git/hooks/post-checkout"), "a", "b", "1"], cwd=repo,
                         env=hook_env(home))  # fmt: skip
    assert out.returncode == 0 and time.monotonic() - started < 1.0


def test_add_installs_hooks_unless_told_not_to(repo: Path, tmp_path: Path, capsys) -> None:
    from contextd.cli.main import run

    assert run(["add", str(repo), "--no-hooks"]) == 0
    assert hooks.installed(repo) == []
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    assert run(["add", str(other)]) == 0
    assert hooks.installed(other) == list(hooks.HOOKS)
    assert run(["remove", "other"]) == 0
    assert hooks.installed(other) == [], "removing a source removes its hooks"


@pytest.mark.parametrize("hook", hooks.HOOKS)
def test_every_hook_is_executable_and_carries_the_id_line(repo: Path, tmp_path, hook) -> None:
    hooks.install(repo, tmp_path / "home")
    path = repo / ".git/hooks" / hook
    assert os.access(path, os.X_OK) and hooks.ID_LINE in path.read_text()
