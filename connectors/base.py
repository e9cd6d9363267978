"""The Source extension point: where files come from.

A Source lists the candidate files below its root (relative posix paths), already
honouring its own ignore rules. Everything else (deny-list, binary and size checks,
change detection) is shared and lives in `changes.py`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Protocol

from contextd.errors import SourceError


class Source(Protocol):
    name: str
    root: Path
    kind: str

    def scan(self, paths: Collection[str] | None = None) -> Iterator[str]:
        """Yield candidate file paths relative to root, posix-style; with `paths`, only
        those and files below those folders."""
        ...

    def includes(self, rel: str) -> bool:
        """Would a scan list the file `rel`? (Cheaper than a scan: one file's worth.)"""
        ...


def rev_parse(root: Path, *args: str, timeout: float = 10) -> str | None:
    """What `git rev-parse ARGS` prints in root, or None where git fails (or is absent)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def detect_kind(root: Path) -> str:
    """ "git" when root is the top of a git work tree, else "folder"."""
    top = rev_parse(root, "--show-toplevel")
    return "git" if top and Path(top).resolve() == root.resolve() else "folder"


def git_internals(root: Path) -> str | None:
    """Why root holds git's own files rather than a project's: "bare" for a bare
    repository, "git dir" for a checkout's `.git` (or a folder in it), else None."""
    inside, _, bare = (
        rev_parse(root, "--is-inside-git-dir", "--is-bare-repository") or ""
    ).partition("\n")
    if inside != "true":
        return None
    return "bare" if bare == "true" else "git dir"


def open_source(name: str, root: Path, kind: str) -> Source:
    from contextd.connectors.folder import FolderSource
    from contextd.connectors.git import GitSource

    kinds: dict[str, type[GitSource] | type[FolderSource]] = {
        "git": GitSource,
        "folder": FolderSource,
    }
    if kind not in kinds:
        raise SourceError(
            f"Source '{name}' has unknown kind '{kind}'. "
            f"Run `contextd remove {name}` and add it again."
        )
    if not root.is_dir():
        raise SourceError(
            f"Source '{name}' points at {root}, which is not a directory any more. "
            f"Run `contextd remove {name}`, or restore the folder."
        )
    return kinds[kind](name, root)
