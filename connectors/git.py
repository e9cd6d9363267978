"""A git work tree: what git tracks, plus untracked files it does not ignore."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from contextd.errors import SourceError


class GitSource:
    kind = "git"

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root

    def scan(self) -> Iterator[str]:
        try:
            out = subprocess.run(
                [
                    "git",
                    "-c",
                    "core.quotepath=off",
                    "ls-files",
                    "-z",
                    "--cached",
                    "--others",
                    "--exclude-standard",
                    "--deduplicate",
                ],
                cwd=self.root,
                capture_output=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"Could not list files of '{self.name}' with git: {exc}.") from None
        if out.returncode != 0:
            message = out.stderr.decode(errors="replace").strip()
            raise SourceError(
                f"git could not list files in {self.root}: {message}. "
                f"Check that it is still a repository, or `contextd remove {self.name}`."
            )
        seen: set[bytes] = set()
        for raw in out.stdout.split(b"\0"):
            if raw and raw not in seen:
                seen.add(raw)
                yield os.fsdecode(raw)

    def head(self) -> str | None:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return out.stdout.strip() or None
