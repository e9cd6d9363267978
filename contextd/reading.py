"""Reading files for agents, confined to the indexed roots.

A path is taken relative to its source's root, resolved with every symlink followed, and
must still lie inside the (resolved) root. NUL bytes, absolute paths and backslashes are
refused outright; the secrets deny-list, the size cap, the binary check and the redaction
of secrets in content apply as they do to indexing. Every refusal is a ContextdError with
a sentence the agent can act on.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from contextd.catalog import Catalog, SourceRow
from contextd.connectors.base import open_source
from contextd.connectors.filters import (
    data_dir_above,
    decode_text,
    is_binary,
    secret_reason,
    secret_root,
)
from contextd.errors import ContextdError, SourceError
from contextd.hygiene import clean
from contextd.redaction import redact

MAX_LINES = 2000


class ReadRefused(ContextdError):
    pass


@dataclass(frozen=True)
class FileText:
    source: str
    path: str
    start_line: int
    end_line: int
    total_lines: int
    text: str
    stale: bool
    indexed_commit: str | None


def confine(root: Path, path: str) -> tuple[str, Path]:
    """The relative path and the real file for `path` under `root`, or ReadRefused."""
    if not path or "\0" in path or "\\" in path:
        raise ReadRefused(
            "That path is not valid. Give a path relative to the source root, "
            "as search results show it."
        )
    rel = PurePosixPath(path)
    if rel.is_absolute() or path.startswith("~"):
        raise ReadRefused(
            "Absolute paths are not readable. Give a path relative to the "
            "source root, as search results show it."
        )
    try:
        real_root = root.resolve()
        target = (real_root / rel).resolve()
    except (RuntimeError, OSError):  # a symlink loop ("Symlink loop from ..." on 3.13)
        raise ReadRefused(
            f"'{path}' is a symlink that leads back to itself (a loop): there is no file to read."
        ) from None
    try:
        inside = target.relative_to(real_root)
    except ValueError:
        raise ReadRefused(
            f"'{path}' lies outside the source root; only indexed sources can be read."
        ) from None
    reason = secret_reason(inside.as_posix()) or secret_reason(rel.as_posix())
    reason = reason or secret_root(real_root)
    if reason:
        raise ReadRefused(f"'{path}' is on the secrets deny-list and is never shared.")
    if data_dir_above(real_root, inside.as_posix()):
        raise ReadRefused(f"'{path}' is inside a contextd data dir, which is never shared.")
    return inside.as_posix(), target


def _as_shown(catalog: Catalog, source: str, path: str) -> str | None:
    """The indexed file a search result showed as `path`: results are cleaned on the way
    out (zero-width characters dropped, `<SYSTEM>` escaped), so their path may not be the
    file's. None unless exactly one file matches."""
    found = [p for p in catalog.unusual_paths(source) if p != path and clean(p) == path]
    return found[0] if len(found) == 1 else None


def _in_source(row: SourceRow, rel: str) -> bool:
    """Whether the source would index `rel`: what git tracks or does not ignore, or what a
    folder's ignore files leave; never anything inside .git."""
    try:
        return open_source(row.name, row.root, row.kind).includes(rel)
    except SourceError:
        return False


def read_file(
    catalog: Catalog,
    source: str,
    path: str,
    start_line: int | None = None,
    end_line: int | None = None,
    max_bytes: int = 1024 * 1024,
) -> FileText:
    row = catalog.source(source)
    rel, target = confine(row.root, path)
    if not os.path.lexists(target):
        real = _as_shown(catalog, source, path)
        if real is not None:
            rel, target = confine(row.root, real)
    if start_line and end_line and end_line < start_line:
        raise ReadRefused(f"end_line {end_line} is before start_line {start_line}.")
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ReadRefused(
            f"'{path}' does not exist in '{source}'. Search again for its current location."
        ) from None
    except OSError as exc:
        raise ReadRefused(f"'{path}' cannot be read ({exc.strerror}).") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ReadRefused(
                f"'{path}' is a folder; give the path of a file in it, as search results show."
            )
        raise ReadRefused(f"'{path}' is not a regular file.")
    with os.fdopen(fd, "rb") as f:
        known = catalog.file_state(source, rel)
        if known is None and not _in_source(row, rel):
            raise ReadRefused(
                f"'{path}' is not part of '{source}': contextd reads only what it indexes "
                "(ignored files and anything inside .git are left out)."
            )
        if st.st_size > max_bytes:
            raise ReadRefused(
                f"'{path}' is larger than {max_bytes:,} bytes, more than contextd reads or "
                "indexes; search for the part you need, or open the file another way."
            )
        data = f.read(max_bytes + 1)
    if is_binary(data):
        raise ReadRefused(f"'{path}' is a binary file.")
    text = decode_text(data)
    if text is None:
        raise ReadRefused(f"'{path}' is not UTF-8 text.")
    lines = redact(text).text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    total = len(lines)
    start = max(1, start_line or 1)
    end = min(total, end_line or total, start + MAX_LINES - 1)
    if start > max(total, 1):
        raise ReadRefused(f"'{path}' has {total} lines; start_line {start} is past the end.")
    stale = known is None or (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns)
    return FileText(
        source, rel, start, end, total, "\n".join(lines[start - 1 : end]), stale, row.indexed_commit
    )
