"""Git hooks installed the way pre-commit installs its own."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contextd import hooks
from contextd.errors import SourceError
from tests.conftest import git, write

FOREIGN = (
    b'#!/bin/sh\n# someone else\'s hook\necho ran >> "$(git rev-parse --git-dir)/foreign-ran"\n'
)


def hook_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CONTEXTD_HOME": str(home)}


def data_dir(tmp_path: Path, name: str = "home") -> Path:
    home = tmp_path / name
    home.mkdir()
    return home


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
    home = data_dir(tmp_path)
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


def test_two_data_dirs_watching_one_repository_each_keep_their_hooks(
    repo: Path, tmp_path: Path
) -> None:
    """Each data dir's daemon hears of every commit, and each one leaving takes only its
    own line; the foreign hook comes back when the last one goes."""
    hook = repo / ".git/hooks/post-commit"
    hook.write_bytes(FOREIGN)
    hook.chmod(0o755)
    a, b, gone = data_dir(tmp_path, "a b"), data_dir(tmp_path, "b$`x"), tmp_path / "gone"
    hooks.install(repo, a)
    hooks.install(repo, b)
    hooks.install(repo, b)  # installing again lists it once
    hooks.install(repo, gone)  # a data dir deleted since: never made again by a hook
    assert hooks.homes_of(hook) == [a, b, gone]
    assert hooks.installed(repo, a) == hooks.installed(repo, b) == list(hooks.HOOKS)

    def commit(name: str) -> None:
        write(repo, name, "x = 1\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", name, env={**os.environ, "CONTEXTD_HOME": ""})

    def notes(home: Path) -> int:
        return len(list((home / "spool").glob("*.note")))

    commit("a.py")
    assert (notes(a), notes(b)) == (1, 1) and not gone.exists()

    removed, others = hooks.uninstall(repo, a)
    assert removed == [] and others == [b, gone]
    assert hooks.installed(repo, a) == [] and hooks.installed(repo, b) == list(hooks.HOOKS)
    commit("b.py")
    assert (notes(a), notes(b)) == (1, 2)
    assert (repo / ".git/foreign-ran").read_text() == "ran\nran\n"

    hooks.uninstall(repo, b)
    removed, others = hooks.uninstall(repo, gone)
    assert len(removed) == len(hooks.HOOKS) and others == []
    assert hook.read_bytes() == FOREIGN and hooks.installed(repo) == []


def test_a_hook_written_before_data_dirs_were_listed_keeps_its_data_dir(
    repo: Path, tmp_path: Path
) -> None:
    old, new = data_dir(tmp_path, "old"), data_dir(tmp_path, "new")
    hooks.install(repo, old)
    hook = repo / ".git/hooks/post-merge"
    text = hook.read_text()  # the shape contextd wrote before: one data dir, in a default
    lines = [x for x in text.splitlines() if not x.startswith(hooks.HOME_LINE)]
    hook.write_text("\n".join(lines) + f'\nhome="${{CONTEXTD_HOME:-{old}}}"\n')
    assert hooks.homes_of(hook) == [old]
    hooks.install(repo, new)
    assert hooks.homes_of(hook) == [old, new]


def test_core_hooks_path_and_worktrees_are_honoured(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "my-hooks"
    git(repo, "config", "core.hooksPath", str(outside))
    hooks.install(repo, tmp_path / "home")
    assert (outside / "post-checkout").exists()
    assert not (repo / ".git/hooks/post-checkout").exists()
    hooks.uninstall(repo)
    # A hooks folder in the working tree is the team's (committed): never written to.
    assert not hooks.shared_folder(repo)
    git(repo, "config", "core.hooksPath", ".githooks")
    assert hooks.shared_folder(repo)  # so `status` does not ask for hooks there
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


def test_pre_commit_installed_after_ours_keeps_both_hooks_running(repo: Path, tmp_path) -> None:
    """pre-commit renames the hook it finds to `<hook>.legacy` and runs it: ours must still
    find the hook it moved aside, and uninstalling hands pre-commit that hook back."""
    hook = repo / ".git/hooks/post-commit"
    hook.write_bytes(FOREIGN)
    hook.chmod(0o755)
    write(repo, ".pre-commit-config.yaml", "repos: []\n")
    home = data_dir(tmp_path)
    hooks.install(repo, home)
    pre_commit = Path(sys.executable).with_name("pre-commit")
    subprocess.run([str(pre_commit), "install", "-t", "post-commit"], cwd=repo, check=True,
                   capture_output=True, env={**os.environ, "PATH": f"{pre_commit.parent}:"
                                             f"{os.environ['PATH']}"})  # fmt: skip
    assert hooks.is_ours(repo / ".git/hooks/post-commit.legacy")

    def commit(name: str) -> None:
        write(repo, name, "x = 1\n")
        git(repo, "add", "-A")
        path = f"{pre_commit.parent}:{os.environ['PATH']}"
        git(repo, "commit", "-q", "-m", name, env={**hook_env(home), "PATH": path})

    commit("a.py")
    assert (repo / ".git/foreign-ran").read_text() == "ran\n"
    assert len(list((home / "spool").glob("*.note"))) == 1, "ours ran too, once"
    # `contextd add` again (it reinstalls) must not chain pre-commit behind a second ours.
    hooks.install(repo, home)
    assert hooks.installed(repo) == list(hooks.HOOKS)
    commit("a2.py")
    assert (repo / ".git/foreign-ran").read_text() == "ran\nran\n"
    assert len(list((home / "spool").glob("*.note"))) == 2
    hooks.uninstall(repo)
    assert (repo / ".git/hooks/post-commit.legacy").read_bytes() == FOREIGN
    commit("b.py")
    assert (repo / ".git/foreign-ran").read_text() == "ran\nran\nran\n"
    assert hooks.installed(repo) == []


@pytest.mark.parametrize("given", ["relative-home", "~/contextd-home"])
def test_a_hook_never_writes_where_a_relative_contextd_home_points(repo, tmp_path, given):
    home = data_dir(tmp_path)
    hooks.install(repo, home)
    write(repo, "x.py", "x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x", env={**os.environ, "CONTEXTD_HOME": given})
    assert git(repo, "status", "--porcelain") == "", "nothing appears in the work tree"
    assert list((home / "spool").glob("*.note")), "the note went to the installed data dir"


def test_remove_leaves_hooks_another_source_uses_and_forgets_a_repo_that_is_gone(
    repo: Path, tmp_path: Path, capsys
) -> None:
    from contextd.cli.main import run

    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "wt-branch")
    assert run(["add", str(repo)]) == 0 and run(["add", str(worktree), "--name", "wt"]) == 0
    capsys.readouterr()
    assert run(["remove", "wt"]) == 0
    assert "hooks stay, since shop use(s) them too" in capsys.readouterr().out
    assert hooks.installed(repo) == list(hooks.HOOKS)

    shutil.rmtree(repo / ".git")  # no longer a repository: still removable
    assert run(["remove", "shop"]) == 0
    out = capsys.readouterr().out
    assert "Removed 'shop'" in out and "hooks were left as they are" in out
    assert run(["sources", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []


def test_reading_a_repository_never_takes_git_index_lock(repo: Path) -> None:
    """`git status` refreshes a stat-dirty index and writes it, under .git/index.lock: a
    user's rebase or commit at that moment fails. Ours must leave the index alone."""
    from contextd.connectors.git import GitSource

    index = repo / ".git/index"
    before = index.stat().st_mtime_ns
    time.sleep(0.05)
    (repo / "src/shop/cart.py").touch()  # stat-dirty: plain `git status` would rewrite
    head = git(repo, "rev-parse", "HEAD").strip()
    assert GitSource("shop", repo).changed_since(head) == set()
    assert index.stat().st_mtime_ns == before


def test_removing_a_source_keeps_the_hooks_another_data_dir_uses(
    repo: Path, tmp_path: Path, isolated_home: Path, capsys
) -> None:
    from contextd.cli.main import run

    other = data_dir(tmp_path, "other-data-dir")  # a second daemon's, watching this repo
    hooks.install(repo, other)
    assert run(["add", str(repo)]) == 0
    assert hooks.homes_of(repo / ".git/hooks/post-commit") == [other, isolated_home]
    capsys.readouterr()
    assert run(["remove", "shop"]) == 0
    assert f"its git hooks stay for the other contextd data dir(s) that watch it: {other}" in (
        capsys.readouterr().out
    )
    assert hooks.installed(repo, isolated_home) == []
    assert hooks.installed(repo, other) == list(hooks.HOOKS)

    assert run(["hooks", "uninstall", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "Removed 0 contextd hook(s)" in out and "`contextd hooks uninstall --all`" in out
    assert run(["hooks", "uninstall", str(repo), "--all"]) == 0
    assert "Removed 4 contextd hook(s)" in capsys.readouterr().out
    assert hooks.installed(repo) == []


def test_a_template_the_code_does_not_fill_writes_no_hook(repo: Path, tmp_path, monkeypatch):
    """A daemon still running the code before an upgrade reads the new template: it must
    not write a hook that runs `@NEW_PLACEHOLDER@` at every commit."""
    from importlib import resources

    real = resources.files("contextd.resources").joinpath("hook-tmpl").read_text()
    upgraded = real.replace("@HOMES@", "@HOMES@ @DATA_DIRS@")

    class Template:
        def joinpath(self, _name: str) -> Template:
            return self

        def read_text(self) -> str:
            return upgraded

    monkeypatch.setattr(hooks.resources, "files", lambda _package: Template())
    (repo / ".git/hooks/post-commit").write_bytes(FOREIGN)
    with pytest.raises(SourceError, match="Restart the daemon"):
        hooks.install(repo, data_dir(tmp_path))
    assert hooks.installed(repo) == [] and not (repo / ".git/hooks/post-merge").exists()
    assert (repo / ".git/hooks/post-commit").read_bytes() == FOREIGN  # left where it was


def test_a_data_dir_whose_name_looks_like_a_placeholder_is_kept_as_named(
    repo: Path, tmp_path: Path
) -> None:
    odd = data_dir(tmp_path, "team@HOOK@dir@AB@")
    hooks.install(repo, odd)
    assert hooks.homes_of(repo / ".git/hooks/post-commit") == [odd]
    assert hooks.installed(repo, odd) == list(hooks.HOOKS)


OLDEST_HOOK = """#!/bin/sh
# contextd-hook: installed by contextd; `contextd hooks uninstall` restores what was here.
legacy="$0.contextd-legacy"
status=0
if [ -x "$legacy" ]; then
    "$legacy" "$@"
    status=$?
fi
spool="${CONTEXTD_HOME:-@HOME@}/spool"
note="$spool/$(date +%s%N 2>/dev/null)-$$"
{
    [ -d "$spool" ] || mkdir -p "$spool"
    printf '%s\\n%s\\n' "@HOOK@" "$PWD" > "$note.tmp" && mv -f "$note.tmp" "$note.note"
} >/dev/null 2>&1
exit $status
"""


def test_hooks_an_earlier_contextd_wrote_are_counted_and_rewritten_by_the_daemon(
    repo: Path, tmp_path: Path
) -> None:
    """Hooks from an early version were reported as `0 of 4`, were never rewritten, went
    on following the committing shell's CONTEXTD_HOME, and made a deleted data dir anew."""
    from tests.daemon_helpers import contextd, start_daemon, stop_daemon

    home = (tmp_path / "home").resolve()
    env = start_daemon(home)
    stop_daemon(env)
    contextd(env, "add", str(repo), "--name", "shop", "--no-hooks")
    old = ["post-commit", "post-rewrite"]  # post-merge removed by the user; post-checkout theirs
    for hook in old:
        path = repo / ".git/hooks" / hook
        path.write_text(OLDEST_HOOK.replace("@HOME@", str(home)).replace("@HOOK@", hook))
        path.chmod(0o755)
    theirs = repo / ".git/hooks/post-checkout"
    theirs.write_bytes(FOREIGN)
    theirs.chmod(0o755)
    assert hooks.installed(repo, home) == old and hooks.outdated(repo, home) == old
    env = start_daemon(home)
    try:
        assert wait_for(lambda: hooks.outdated(repo, home) == [], timeout=30)
        for hook in old:
            assert (repo / ".git/hooks" / hook).read_text() == hooks.render(hook, [home])
        assert theirs.read_bytes() == FOREIGN and not (repo / ".git/hooks/post-merge").exists()
        assert not list((repo / ".git/hooks").glob("*.contextd-legacy"))
    finally:
        stop_daemon(env)
    assert "rewrote shop's git hooks" in (home / "logs" / "contextd.log").read_text()
