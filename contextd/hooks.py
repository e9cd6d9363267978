"""Install and uninstall contextd's git hooks, in the manner of pre-commit.

The hooks folder is the one git really uses (`git rev-parse --git-path hooks`), so
`core.hooksPath`, worktrees and submodules are honoured. A hook that is already there and
is not ours is moved aside to `<hook>.contextd-legacy` and run first by ours; uninstalling
moves it back, byte for byte. (So such a hook runs under another file name: one that acts
on its own name, like a dispatcher linked under several, is better chained by hand.)
Our hooks carry an ID line so we never touch anyone else's.
"""

from __future__ import annotations

import os
import stat
from importlib import resources
from pathlib import Path

from contextd.connectors.git import git
from contextd.errors import SourceError

HOOKS = ("post-commit", "post-merge", "post-checkout", "post-rewrite")
ID_LINE = "# contextd-hook:"
LEGACY_SUFFIX = ".contextd-legacy"


def hooks_dir(repo: Path) -> Path:
    out = git(repo, "rev-parse", "--git-path", "hooks", timeout=10).decode().strip()
    path = Path(out)
    return (repo / path).resolve() if not path.is_absolute() else path


def is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return ID_LINE.encode() in head


def render(hook: str, home: Path) -> str:
    template = resources.files("contextd.resources").joinpath("hook-tmpl").read_text()
    return template.replace("@HOME@", shell_quote_inner(str(home))).replace("@HOOK@", hook)


def shell_quote_inner(value: str) -> str:
    """Escape a value for use inside double quotes in sh."""
    return "".join("\\" + c if c in '"\\$`' else c for c in value)


class SharedHooksFolder(SourceError):
    """core.hooksPath is a folder of the working tree: committed, shared with the team."""


def install(repo: Path, home: Path) -> list[Path]:
    """Install (or refresh) our hooks; returns the hook files written."""
    directory = hooks_dir(repo)
    if shared_folder(repo):
        raise SharedHooksFolder(
            f"core.hooksPath is {directory}, a folder of the working tree that the team "
            "shares; contextd's hooks name this machine's data dir, so they are not written "
            "there. The daemon's watch and its reconcile scans keep the index fresh without "
            "them."
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceError(f"Cannot create the hooks folder {directory}: {exc.strerror}.") from None
    written = []
    for hook in HOOKS:
        path = directory / hook
        legacy = directory / (hook + LEGACY_SUFFIX)
        if is_ours(directory / f"{hook}.legacy"):
            continue  # pre-commit runs ours as its legacy hook: a second copy would loop
        if (path.exists() or path.is_symlink()) and not is_ours(path):
            if legacy.exists():
                raise SourceError(
                    f"{path} is not contextd's and {legacy.name} already exists; move one of "
                    "them away, then run `contextd hooks install` again."
                )
            os.replace(path, legacy)
        tmp = path.with_name(f".{hook}.contextd-tmp")
        tmp.write_text(render(hook, home))
        mode = tmp.stat().st_mode
        tmp.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, path)
        written.append(path)
    return written


def uninstall(repo: Path) -> list[Path]:
    """Remove our hooks and put back whatever was there before; returns paths touched.

    Ours may have been renamed `<hook>.legacy` by pre-commit's `install`, which then runs
    it: what was there before ours goes back to that name, so pre-commit runs it instead.
    """
    directory = hooks_dir(repo)
    touched = []
    for hook in HOOKS:
        legacy = directory / (hook + LEGACY_SUFFIX)
        for path in (directory / hook, directory / f"{hook}.legacy"):
            if not is_ours(path):
                continue
            if legacy.exists() or legacy.is_symlink():
                os.replace(legacy, path)
            else:
                path.unlink()
            touched.append(path)
    return touched


def shared_folder(repo: Path) -> bool:
    """Is the hooks folder one of the working tree's (committed, so never written to)?"""
    try:
        out = git(repo, "rev-parse", "--git-path", "hooks", "--show-toplevel",
                  "--absolute-git-dir", timeout=10)  # fmt: skip
    except SourceError:
        return False
    hooks, top, git_dir = out.decode().strip().splitlines()
    directory = (repo / hooks).resolve()  # as hooks_dir makes it (an absolute path stays)
    inside = directory.is_relative_to(Path(top).resolve())
    return inside and not directory.is_relative_to(Path(git_dir).resolve())


def installed(repo: Path) -> list[str]:
    try:
        directory = hooks_dir(repo)
    except SourceError:
        return []
    return [h for h in HOOKS if is_ours(directory / h) or is_ours(directory / f"{h}.legacy")]
