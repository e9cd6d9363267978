"""Compare what a source holds on disk with the catalog, and say what changed.

Size and mtime are the fast pre-check; the content hash is the truth. Every file either
becomes a Change, a Touch (same content, new stat), a Skip with a reason, or nothing
(unchanged). Files the catalog knows that are gone become deletions.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contextd.connectors.base import Source
from contextd.connectors.filters import (
    BUILD_DIR_REASON,
    BUILD_DIRS,
    DRAWINGS,
    MAX_LINE_CHARS,
    data_dir_above,
    decode_text,
    is_binary,
    is_temp_file,
    longest_line,
    mask_blobs,
    printable_path,
    secret_reason,
    secret_root,
    unicode_encoding,
    valid_utf8_name,
)
from contextd.connectors.folder import unreadable_ignore_file
from contextd.connectors.scope import Scope
from contextd.records import Change, ChangeKind, FileState, Skip, Touch, content_hash
from contextd.redaction import redact

Event = Change | Skip | Touch


def _read_regular(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """Read at most limit+1 bytes of a regular file without following links or blocking."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file")
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            block = os.read(fd, min(remaining, 1 << 20))
            if not block:
                break
            chunks.append(block)
            remaining -= len(block)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def classify(
    source: str, root: Path, rel: str, known: FileState | None, max_bytes: int
) -> Event | None:
    """What happened to one candidate file. None means unchanged or gone unseen."""
    if not valid_utf8_name(rel):
        return Skip(source, printable_path(rel), "file name is not valid UTF-8")
    reason = secret_reason(rel) or secret_root(root)
    if reason:
        return Skip(source, rel, reason)
    if is_temp_file(rel.rsplit("/", 1)[-1]):
        return Skip(source, rel, "editor swap or temp file")
    if rel.lower().endswith(DRAWINGS):  # text, but coordinates: noise in every search
        return Skip(source, rel, "drawing (SVG: shapes and paths, no text to search)")
    path = root / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _gone(source, rel, known)
    except OSError as exc:
        return Skip(source, rel, f"unreadable: {exc.strerror or exc}")
    if stat.S_ISLNK(st.st_mode):
        return Skip(source, rel, "symlink (not followed)", st.st_size, st.st_mtime_ns)
    if stat.S_ISDIR(st.st_mode):
        return Skip(source, rel, _folder_reason(path), 0, st.st_mtime_ns)
    if not stat.S_ISREG(st.st_mode):
        return Skip(source, rel, "not a regular file", 0, st.st_mtime_ns)
    if known and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
        return None
    if st.st_size > max_bytes:
        return Skip(
            source,
            rel,
            f"too large ({st.st_size:,} bytes > {max_bytes:,})",
            st.st_size,
            st.st_mtime_ns,
        )
    try:
        data, st = _read_regular(path, max_bytes)
    except FileNotFoundError:
        return _gone(source, rel, known)
    except OSError as exc:
        return Skip(source, rel, f"unreadable: {exc.strerror or exc}", st.st_size, st.st_mtime_ns)
    if len(data) > max_bytes:
        return Skip(source, rel, f"too large (> {max_bytes:,} bytes)", st.st_size, st.st_mtime_ns)
    if is_binary(data):
        return Skip(source, rel, "binary (NUL byte)", st.st_size, st.st_mtime_ns)
    digest = content_hash(data)
    if known and known.status == "indexed" and known.hash == digest:
        return Touch(source, rel, st.st_size, st.st_mtime_ns)
    text = decode_text(data)
    if text is None:
        encoding = unicode_encoding(data)
        reason = (
            f"invalid {encoding.upper()} (not text)" if encoding else "invalid UTF-8 (not text)"
        )
        return Skip(source, rel, reason, st.st_size, st.st_mtime_ns)
    # Secrets are replaced here, where file text enters the index: chunks, FTS, the
    # catalog and the vector store only ever see the redacted text. Then blobs of base64
    # (a notebook's images, data: URIs) are masked: dozens of chunks of noise else. Not
    # the other way round: a mask inside a secret left both its ends after no name.
    # Whether lines are too long is judged on the masked text (a notebook's plot is one
    # long line, and no reason to skip it), before paying for redaction.
    masked = mask_blobs(text)
    blobs = len(masked) != len(text)  # a mask is always shorter than its blob

    def cleaned() -> str:
        redacted = redact(text).text
        return mask_blobs(redacted) if blobs else redacted

    longest = longest_line(masked)
    clean: str | None = None
    if longest > MAX_LINE_CHARS and rel.endswith(".ipynb"):  # read as its chunker reads it
        clean = cleaned()
        longest = _longest_source_line(clean, longest)
    if longest > MAX_LINE_CHARS:
        reason = f"minified or generated (a line of {longest:,} characters > {MAX_LINE_CHARS:,})"
        return Skip(source, rel, reason, st.st_size, st.st_mtime_ns)
    kind = ChangeKind.MODIFIED if known and known.status == "indexed" else ChangeKind.ADDED
    if clean is None:
        clean = cleaned()
    return Change(source, rel, kind, digest, st.st_size, st.st_mtime_ns, clean)


def _folder_reason(path: Path) -> str:
    """A folder reaches classify when its listing failed, or as build output by name."""
    if path.name in BUILD_DIRS:
        return BUILD_DIR_REASON
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        return f"unreadable folder: {exc.strerror or exc}"
    if why := unreadable_ignore_file(path):
        return f"{why}: not indexed without the rules it may hold; fix it or remove it"
    return "a folder (not a file)"


def _gone(source: str, rel: str, known: FileState | None) -> Change | None:
    return Change(source, rel, ChangeKind.DELETED) if known else None


@dataclass
class ScanResult:
    """The candidate list of one source (listed up front, so progress has a total)."""

    source: Source
    known: Mapping[str, FileState]
    max_bytes: int
    scope: Collection[str] | None = None  # only these paths (and below), or everything
    paths: list[str] = field(init=False)

    def __post_init__(self) -> None:
        seen: dict[str, bool] = {}  # folders known to be, or not be, a data dir
        root = self.source.root
        self.paths = [
            rel for rel in self.source.scan(self.scope) if not data_dir_above(root, rel, seen)
        ]
        self._in_scope = Scope(self.scope) if self.scope is not None else None

    def __iter__(self) -> Iterator[Event | None]:
        """One item per candidate (None when unchanged), then the deletions."""
        seen: set[str] = set()
        for rel in self.paths:
            event = classify(
                self.source.name, self.source.root, rel, self.known.get(rel), self.max_bytes
            )
            seen.add(printable_path(rel))
            yield event
        for rel in self.known:
            if rel not in seen and (self._in_scope is None or rel in self._in_scope):
                yield Change(self.source.name, rel, ChangeKind.DELETED)


def scan_changes(
    source: Source,
    known: Mapping[str, FileState],
    max_bytes: int,
    scope: Collection[str] | None = None,
) -> ScanResult:
    return ScanResult(source, known, max_bytes, scope)


def _longest_source_line(text: str, longest: int) -> int:
    """A notebook is chunked by its cells' source: an output's long line (an HTML table, a
    plot's JSON) is never read, and no reason to skip the notebook."""
    from contextd.indexers.notebook import cells

    read = cells(text)
    return longest_line("\n".join(read[0])) if read else longest
