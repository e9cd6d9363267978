"""Install and uninstall contextd's git hooks, in the manner of pre-commit.

The hooks folder is the one git really uses (`git rev-parse --git-path hooks`), so
`core.hooksPath`, worktrees and submodules are honoured. A hook that is already there and
is not ours is moved aside to `<hook>.contextd-legacy` and run first by ours; uninstalling
moves it back, byte for byte. (So such a hook runs under another file name: one that acts
on its own name, like a dispatcher linked under several, is better chained by hand.)
Our hooks carry an ID line so we never touch anyone else's, and one line per contextd data
dir they notify: several data dirs can watch one repository, and each adds or removes only
its own line.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from contextd.connectors.git import git
from contextd.errors import SourceError

HOOKS = ("post-commit", "post-merge", "post-checkout", "post-rewrite")
ID_LINE = "# contextd-hook:"
HOME_LINE = "# contextd-home: "
# How hooks written before data dirs were listed named their one data dir.
OLD_HOME = re.compile(r'^home="\$\{CONTEXTD_HOME:-(.*)\}"$', re.M)
OLDEST_HOME = re.compile(r'^spool="\$\{CONTEXTD_HOME:-(.*)\}/spool"$', re.M)
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


PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


def render(hook: str, homes: list[Path]) -> str:
    template = resources.files("contextd.resources").joinpath("hook-tmpl").read_text()
    homes = list(dict.fromkeys(homes))  # each data dir once
    values = {
        "HOME_LINES": "\n".join(HOME_LINE + str(h) for h in homes),
        "HOMES": " ".join(f'"{shell_quote_inner(str(h))}"' for h in homes),
        "HOOK": hook,
    }
    if set(PLACEHOLDER.findall(template)) - set(values):  # a template newer than this code
        raise SourceError(
            "contextd was upgraded while this process ran, and its hook template no longer "
            "matches it; nothing was written. Restart the daemon (`contextd stop; contextd "
            "start`), then run `contextd hooks install` again."
        )
    # One pass: a data dir whose name holds "@HOOK@" stays as it is.
    return PLACEHOLDER.sub(lambda m: values[m[1]], template)


def homes_of(path: Path) -> list[Path]:
    """The data dirs one of our hooks notifies."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    homes = [
        Path(line[len(HOME_LINE) :]) for line in text.splitlines() if line.startswith(HOME_LINE)
    ]
    old = OLD_HOME.search(text) or OLDEST_HOME.search(text)
    if not homes and old:
        homes = [Path(re.sub(r"\\(.)", r"\1", old.group(1)))]
    return homes


def outdated(repo: Path, home: Path) -> list[str]:
    """Our hooks for `home` that an earlier contextd wrote (not what it writes now)."""
    return [hook for hook, _, _ in _stale(repo, home)]


def refresh(repo: Path, home: Path) -> list[str]:
    """Rewrite those hooks in place, for the same data dirs; no other hook is touched."""
    stale = _stale(repo, home)
    for _, path, text in stale:
        _write(path, text)
    return [hook for hook, _, _ in stale]


def _stale(repo: Path, home: Path) -> list[tuple[str, Path, str]]:
    stale = []
    for hook, path, homes in _ours(repo, home):
        try:
            text = render(hook, homes)
            if path.read_text(errors="replace") != text:
                stale.append((hook, path, text))
        except (OSError, SourceError):
            pass
    return stale


def _ours(repo: Path, home: Path | None) -> Iterator[tuple[str, Path, list[Path]]]:
    """(hook, its file, the data dirs it notifies) of each of our hooks that notifies
    `home` (any, if None); in pre-commit's `.legacy` place, where it runs ours."""
    try:
        directory = hooks_dir(repo)
    except SourceError:
        return
    for hook in HOOKS:
        for path in (directory / hook, directory / f"{hook}.legacy"):
            if not is_ours(path):
                continue
            homes = homes_of(path)
            if home is None or home in homes:
                yield hook, path, homes
                break


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.contextd-tmp")
    tmp.write_text(text)
    mode = tmp.stat().st_mode
    tmp.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)


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
    if "\n" in str(home):
        raise SourceError(
            f"The data dir {home!r} has a line break in its name; git hooks cannot name it."
        )
    # Everything is decided and rendered first: a refusal moves no one's hook aside.
    plan = []
    for hook in HOOKS:
        path = directory / hook
        legacy = directory / (hook + LEGACY_SUFFIX)
        renamed = directory / f"{hook}.legacy"
        if is_ours(renamed):  # pre-commit runs ours as its legacy hook: update it there
            path = renamed
        foreign = (path.exists() or path.is_symlink()) and not is_ours(path)
        if foreign and legacy.exists():
            raise SourceError(
                f"{path} is not contextd's and {legacy.name} already exists; move one of "
                "them away, then run `contextd hooks install` again."
            )
        homes = [] if foreign else homes_of(path)
        plan.append((path, legacy if foreign else None, render(hook, [*homes, home])))
    for path, aside, text in plan:
        if aside is not None:
            os.replace(path, aside)
        _write(path, text)
    return [path for path, _, _ in plan]


def uninstall(repo: Path, home: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Take `home` off our hooks, or every data dir if None. A hook that notifies no data
    dir then goes, and whatever was there before it comes back. Returns the hook files
    removed and the data dirs the remaining hooks still notify.

    Ours may have been renamed `<hook>.legacy` by pre-commit's `install`, which then runs
    it: what was there before ours goes back to that name, so pre-commit runs it instead.
    """
    directory = hooks_dir(repo)
    removed: list[Path] = []
    others: list[Path] = []
    for hook in HOOKS:
        legacy = directory / (hook + LEGACY_SUFFIX)
        for path in (directory / hook, directory / f"{hook}.legacy"):
            if not is_ours(path):
                continue
            listed = homes_of(path)
            rest = [] if home is None else [h for h in listed if h != home]
            if rest:
                if rest != listed:
                    _write(path, render(hook, rest))
                others.extend(h for h in rest if h not in others)
                continue
            if legacy.exists() or legacy.is_symlink():
                os.replace(legacy, path)
            else:
                path.unlink()
            removed.append(path)
    return removed, others


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


def installed(repo: Path, home: Path | None = None) -> list[str]:
    """Our hooks in the repository (those that notify `home`, if given)."""
    return [hook for hook, _, _ in _ours(repo, home)]
