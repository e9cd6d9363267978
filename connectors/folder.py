"""A plain folder: everything except built-in ignored folders and .gitignore/.contextdignore.

A folder inside a git work tree (not its top, which is a git source) also honours the
ignore files of the folders above it up to that top, and the repository's
`.git/info/exclude`: what git ignores there stays out, as it would for the repository.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pathspec

from contextd.connectors.filters import BUILD_DIRS, left_out_by_name
from contextd.connectors.scope import Scope
from contextd.errors import SourceError

IGNORE_FILES = (".gitignore", ".contextdignore")


def _load_spec(directory: Path, strict: bool = True) -> pathspec.PathSpec | None:
    """The rules of a folder's ignore files. In the source's own tree (`strict`), one that
    is there but cannot be read (a folder, a dangling link, no permission) is an error:
    its rules may be what keeps secrets out, so the folder is not indexed as if it had
    none. The root's stops the scan; a folder below is skipped with the reason
    (`unreadable_ignore_file`), the rest indexed. Above the root (a dotfiles manager's
    broken ~/.gitignore) it is passed over."""
    lines: list[str] = []
    for name in IGNORE_FILES:
        path = directory / name
        try:
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            if strict and path.is_symlink():
                raise UnreadableIgnoreFile(path, "it is a link to nothing") from None
        except OSError as exc:
            if strict:
                raise UnreadableIgnoreFile(path, exc.strerror or str(exc)) from None
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


class UnreadableIgnoreFile(SourceError):
    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"The ignore file {path} cannot be read ({why}). contextd does not index "
            f"{path.parent} without the rules it may hold: fix it or remove it."
        )
        self.path, self.why = path, why


def unreadable_ignore_file(directory: Path) -> str | None:
    """Why a folder is skipped for its ignore file, if it is (a reason for `status`)."""
    try:
        _load_spec(directory)
    except UnreadableIgnoreFile as exc:
        return f"its {exc.path.name} cannot be read ({exc.why})"
    return None


class _Above:
    """An ignore spec of a folder above the source's root, read with the root's own path
    from that folder in front of each path (as git reads it)."""

    def __init__(self, prefix: str, spec: pathspec.PathSpec) -> None:
        self.prefix, self.spec, self.patterns = prefix, spec, spec.patterns

    def check_file(self, rel: str) -> Any:
        return self.spec.check_file(f"{self.prefix}/{rel}")


def _specs_above(root: Path) -> list[tuple[str, _Above]]:
    """The ignore specs above `root` up to the top of the git work tree holding it; none
    when no work tree does (a folder's parents are nobody's business then)."""
    found: list[tuple[str, _Above]] = []
    parts: list[str] = [root.name]
    for folder in root.parents:
        own = _load_spec(folder, strict=False)
        if own is not None:
            found.append(("", _Above("/".join(reversed(parts)), own)))
        if (folder / ".git").exists():
            exclude = _exclude_file(folder)
            try:
                lines = exclude.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            if lines:
                spec = pathspec.GitIgnoreSpec.from_lines(lines)
                found.append(("", _Above("/".join(reversed(parts)), spec)))
            found.reverse()  # as git weighs them: exclude, then the top's, ..., the nearest
            # A folder git ignores, added on purpose (a build output, vendored code), is
            # wanted as it is: the rules that leave it out would leave out all of it.
            return [] if _ignored_itself(found) else found
        parts.append(folder.name)
    return []


def _exclude_file(top: Path) -> Path:
    """The repository's info/exclude: in `.git`, or where a worktree's or submodule's
    `.git` file points (git says where)."""
    if (top / ".git").is_dir():
        return top / ".git" / "info" / "exclude"
    try:
        out = subprocess.run(
            ["git", "-C", str(top), "rev-parse", "--git-path", "info/exclude"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return top / ".git" / "info" / "exclude"  # unreadable: no rules from it
    return top / out.stdout.strip()


def _ignored_itself(found: list[tuple[str, _Above]]) -> bool:
    """Does git ignore the root, a folder holding it, or all it holds (`pkg/*`)? Each
    spec sees those paths from its own folder; the last pattern that matches decides."""
    depth = max((len(a.prefix.split("/")) for _, a in found), default=0)
    for up in range(depth - 1, -1, -1):  # the outermost folder first, the root last
        ignored = False
        for _, above in found:
            steps = above.prefix.split("/")
            if len(steps) > up:  # this spec's folder holds that one
                verdict = above.spec.check_file("/".join(steps[: len(steps) - up]) + "/")
                ignored = verdict.include if verdict.include is not None else ignored
        if ignored:
            return True
    return _ignored(list(found), "contextd-probe", False)


def _has_negation(spec: pathspec.PathSpec) -> bool:
    """A spec with `!` patterns can re-include files below a folder it matches (as git
    does and pathspec's folder matching does not), so such a folder is never pruned."""
    return any(getattr(p, "include", True) is False for p in spec.patterns)


class FolderSource:
    kind = "folder"

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self._above = _specs_above(root)

    def scan(self, paths: Collection[str] | None = None) -> Iterator[str]:
        """Candidate files; with `paths`, only those (and files under those folders).

        A folder is always walked from its root, so nested ignore files keep applying;
        listing is cheap next to reading.
        """
        scope = Scope(paths) if paths is not None else None
        for rel in self._walk():
            if scope is None or rel in scope:
                yield rel

    def includes(self, rel: str) -> bool:
        """Would a scan list the file `rel`? Decided along its folders only, as the scan
        decides: no walk of the whole tree (reading one file must not cost a listing)."""
        parts = rel.split("/")
        active: list[tuple[str, Any]] = list(self._above)
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            if base:
                if left_out_by_name(parts[depth - 1], self.root / base) or _ignored(
                    active, base, True
                ):
                    return False
                if os.path.islink(self.root / base):
                    return False
            try:
                own = _load_spec(self.root / base)
            except UnreadableIgnoreFile:
                if base:  # a scan skips that folder (the root's stops it: raised there)
                    return False
                raise
            if own is not None:
                active.append((base, own))
        return not _ignored(active, rel, False)

    def _walk(self) -> Iterator[str]:
        # Each folder's ignore files apply to everything below it, relative to it.
        specs: dict[str, list[tuple[str, Any]]] = {"": list(self._above)}
        root = str(self.root)
        unlisted: list[OSError] = []  # folders that cannot be listed: reported, not lost
        for dirpath, dirnames, filenames in os.walk(
            root, followlinks=False, onerror=unlisted.append
        ):
            yield from _unlisted(root, unlisted)
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            active = list(specs.pop(rel_dir, []))
            try:
                own = _load_spec(Path(dirpath))
            except UnreadableIgnoreFile:
                if not rel_dir:
                    raise  # the root's own rules: nothing is indexed without them
                yield rel_dir  # skipped with the reason; the rest of the tree is indexed
                dirnames[:] = []
                continue
            if own is not None:
                active.append((rel_dir, own))

            kept = []
            for d in sorted(dirnames):
                rel = f"{rel_dir}/{d}" if rel_dir else d
                if _ignored(active, rel, True):
                    continue
                if left_out_by_name(d, os.path.join(dirpath, d)):
                    if d in BUILD_DIRS:
                        yield rel  # listed as a skipped folder: the user can see it and why
                    continue
                if os.path.islink(os.path.join(dirpath, d)):
                    yield rel  # reported as a skipped symlink, never followed
                    continue
                kept.append(d)
                specs[rel] = active
            dirnames[:] = kept
            for f in sorted(filenames):
                rel = f"{rel_dir}/{f}" if rel_dir else f
                if not _ignored(active, rel, False):
                    yield rel
        yield from _unlisted(root, unlisted)


def _ignored(active: list[tuple[str, Any]], rel: str, is_dir: bool) -> bool:
    """Do the ignore files (each relative to its own folder, outermost first) leave out
    `rel`? As in git, the last pattern that matches decides, so a deeper `!` re-includes."""
    ignored = False
    for base, spec in active:
        if is_dir and _has_negation(spec):
            continue  # `*` + `!*/` must not prune folders; their files are checked
        sub = rel[len(base) + 1 :] if base else rel
        verdict = spec.check_file(sub + "/" if is_dir else sub).include
        if verdict is not None:
            ignored = verdict
    return ignored


def _unlisted(root: str, errors: list[OSError]) -> Iterator[str]:
    """The folders os.walk could not list, as paths (the scan skips them with the reason)."""
    while errors:
        exc = errors.pop()
        rel = os.path.relpath(os.fsdecode(exc.filename or root), root).replace(os.sep, "/")
        if rel != "." and not rel.startswith("../"):
            yield rel
