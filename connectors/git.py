"""A git work tree: what git tracks, plus untracked files it does not ignore."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection, Iterator
from pathlib import Path

from contextd.errors import NotARepository, SourceError

PATHSPEC_BATCH = 500
LS_FILES = ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--deduplicate"]


def git(root: Path, *args: str, stdin: bytes | None = None, timeout: float = 300) -> bytes:
    """Run git in root and return stdout; a failure is a SourceError naming the command."""
    try:
        out = subprocess.run(
            ["git", "-c", "core.quotepath=off", *args],
            cwd=root,
            # Never take .git/index.lock (`git status` refreshes the index): a user's
            # rebase or commit running meanwhile would fail on it.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"git {args[0]} failed in {root}: {exc}.") from None
    if out.returncode != 0:
        message = out.stderr.decode(errors="replace").strip()
        if "not a git repository" in message:
            raise NotARepository(f"{root} is not in a git repository.")
        raise SourceError(
            f"git {args[0]} failed in {root}: {message}. Check that it is still a repository."
        )
    return out.stdout


class GitSource:
    kind = "git"

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root

    def scan(self, paths: Collection[str] | None = None) -> Iterator[str]:
        """Candidate files; with `paths`, only those (and files under those folders)."""
        if paths is None:
            outputs = [git(self.root, *LS_FILES)]
        else:
            # ls-files takes no pathspec file on older gits: literal pathspecs in batches.
            specs = [f":(literal){p}" for p in sorted(paths)]
            outputs = [
                git(self.root, *LS_FILES, "--", *specs[i : i + PATHSPEC_BATCH])
                for i in range(0, len(specs), PATHSPEC_BATCH)
            ]
        seen: set[bytes] = set()
        for out in outputs:
            for raw in out.split(b"\0"):
                if raw and raw not in seen:
                    seen.add(raw)
                    yield os.fsdecode(raw)

    def includes(self, rel: str) -> bool:
        return rel in set(self.scan([rel]))  # one literal pathspec

    def head(self) -> str | None:
        try:
            return (
                git(self.root, "rev-parse", "--verify", "-q", "HEAD", timeout=30).decode().strip()
            )
        except SourceError:
            return None  # an empty repository has no HEAD yet

    def changed_since(self, commit: str | None) -> set[str] | None:
        """Paths that differ between `commit` and the work tree (committed or not).

        None when there is no usable base commit (a full scan is needed instead).
        """
        if not commit:
            return None
        try:
            committed = git(self.root, "diff", "--name-only", "-z", "--no-renames", commit, "HEAD")
        except SourceError:
            return None  # the commit is gone (gc, another clone): fall back to a full scan
        status = git(
            self.root, "status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=all"
        )
        paths = {os.fsdecode(p) for p in committed.split(b"\0") if p}
        paths |= {os.fsdecode(entry[3:]) for entry in status.split(b"\0") if len(entry) > 3}
        return paths
