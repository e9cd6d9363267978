"""A set of paths that also covers everything below the folders in it."""

from __future__ import annotations

from collections.abc import Collection


class Scope:
    def __init__(self, paths: Collection[str]) -> None:
        self.paths = {p.strip("/") for p in paths}

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        if path in self.paths:
            return True
        parts = path.split("/")
        return any("/".join(parts[:i]) in self.paths for i in range(1, len(parts)))

    def __len__(self) -> int:
        return len(self.paths)
