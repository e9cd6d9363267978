"""What never enters the index: secrets by name, binaries, huge files, ignored folders."""

from __future__ import annotations

import codecs
import os
import re
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path, PurePosixPath

# Names that hold secrets. Matched against every component's name (`config/.env/prod` is
# one), case-insensitively, also under a backup suffix (`server.key.bak`).
SECRET_NAME_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    ".npmrc",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".git-credentials",
    "credentials*.json",
    "*.tfstate",
    "*.tfstate.*",
    "*.keystore",
    "*.jks",
    "*.ppk",
    ".pgpass",
    ".htpasswd",
    ".my.cnf",
    ".dockercfg",
    "*.tfvars",
    "*.tfvars.json",
    "*.kdbx",
)
# Folders whose whole content is secret.
SECRET_DIRS: frozenset[str] = frozenset({".aws", ".ssh", ".gnupg", ".envs"})
BACKUP_SUFFIXES: tuple[str, ...] = (".bak", ".backup", ".old", ".orig", ".save", ".copy", "~")

# Folders never worth indexing in a plain folder source.
IGNORED_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        ".tox",
        ".nox",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".idea",
        ".gradle",
        ".next",
        ".cache",
        "site-packages",
        ".eggs",
    }
)

# Names a plain folder source's own code may use too (`tools/build/`, `src/env/`):
# `venv` and `env` are skipped when they are a virtualenv (`pyvenv.cfg`), and `build`,
# `dist` and `target` are skipped as build output but listed among the skipped files, so
# that a package named so is never left out without a word.
ENV_DIRS: frozenset[str] = frozenset({"venv", "env"})
BUILD_DIRS: frozenset[str] = frozenset({"build", "dist", "target"})
BUILD_DIR_REASON = (
    "a build output folder, by its name (not indexed; add it as a source of its own, or "
    "use a git source, which follows .gitignore, to index it)"
)


def left_out_by_name(name: str, path: str | os.PathLike[str]) -> bool:
    """Is the folder `name` (at `path`) never walked in a plain folder source? The build
    output ones (BUILD_DIRS) are listed as skipped by the caller."""
    return (
        name in IGNORED_DIRS
        or name in BUILD_DIRS
        or (name in ENV_DIRS and is_virtualenv(path))
        or is_data_dir(path)
    )


# A contextd data dir (CONTEXTD_HOME) holds the indexed text and the tokens that open the
# daemon: it is never indexed or read, whoever's it is and wherever it lies (`contextd add
# ~` holds the default one). It is known by the mark make_home leaves in it, or by its
# catalog and store side by side (a data dir from before the mark).
DATA_DIR_MARK = ".contextd-data-dir"


def is_data_dir(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(os.path.join(path, DATA_DIR_MARK)) or (
        os.path.isfile(os.path.join(path, "catalog.sqlite3"))
        and os.path.isdir(os.path.join(path, "chroma"))
    )


def data_dir_above(root: Path, rel: str, seen: dict[str, bool] | None = None) -> str | None:
    """The folder from `root` down to `rel`'s that is a data dir, if any. (Folders above
    the root are not looked at: `add` refuses a root inside a data dir, and eval's scratch
    trees lie in one on purpose.) `seen` remembers folders already looked at, for one
    listing's worth of paths."""
    seen = {} if seen is None else seen
    parts = rel.split("/")[:-1]
    folders = [str(root)] + [os.path.join(root, *parts[: i + 1]) for i in range(len(parts))]
    for folder in folders:
        if folder not in seen:
            seen[folder] = is_data_dir(folder)
        if seen[folder]:
            return folder
    return None


def is_virtualenv(path: str | os.PathLike[str]) -> bool:
    """A venv (`pyvenv.cfg`), a conda environment (`conda-meta/`) or an older virtualenv
    (`bin/activate`, `Scripts/activate`)."""
    return (
        os.path.isfile(os.path.join(path, "pyvenv.cfg"))
        or os.path.isdir(os.path.join(path, "conda-meta"))
        or os.path.isfile(os.path.join(path, "bin", "activate"))
        or os.path.isfile(os.path.join(path, "Scripts", "activate"))
    )


# Editors' swap, backup and temporary files, and partial downloads: never indexed.
TEMP_PATTERNS: tuple[str, ...] = (
    "*.swp", "*.swo", "*.swx", ".*.sw?", "*~", ".#*", "#*#", "4913", "*.tmp", "*.temp",
    "*.kate-swp", "*___jb_tmp___", "*___jb_old___", "*.crdownload", "*.part", ".~lock.*#",
    ".goutputstream-*",
)  # fmt: skip

BINARY_SNIFF_BYTES = 8192
# A line longer than this marks minified or generated text (a bundle, a data blob): costly
# to tokenize, worth nothing as a search result, and never what an agent should read.
MAX_LINE_CHARS = 20_000
# Text files that hold a picture: an icon's path data matched a nonsense word's meaning
# better than any code did ("zqkkdj" found starlette's logo first).
DRAWINGS = (".svg",)

# Byte order marks, longest first (a UTF-32 LE mark starts like a UTF-16 LE one).
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def secret_reason(path: str) -> str | None:
    """Why `path` (posix; relative, or a source's root) is on the deny-list, or None."""
    parts = [p for p in PurePosixPath(path).parts if p != "/"]
    for i, part in enumerate(parts):
        if reason := _secret_name(part, folder=i < len(parts) - 1):
            return reason
    return None


@lru_cache(maxsize=4096)  # folder names repeat across a tree's paths
def _secret_name(part: str, folder: bool) -> str | None:
    name = part.lower()
    if folder and name in SECRET_DIRS:
        return f"secret (deny-list: {part}/)"
    while name.endswith(BACKUP_SUFFIXES) and name not in BACKUP_SUFFIXES:
        name = name[: -len(next(s for s in BACKUP_SUFFIXES if name.endswith(s)))]
    for pattern in SECRET_NAME_PATTERNS:
        if fnmatchcase(name, pattern):
            return f"secret (deny-list: {pattern}{'/' if folder else ''})"
    return None


@lru_cache(maxsize=256)
def secret_root(root: Path) -> str | None:
    """Why a source's root folder is secret itself (`~/.ssh`, a folder inside `.aws`)."""
    return secret_reason(root.as_posix() + "/x")


DATA_BLOB = re.compile(r"[A-Za-z0-9+/]{256,}={0,2}")  # base64 no line of code holds


def mask_blobs(text: str) -> str:
    """Base64 blobs (a notebook's PNG output, a data: URI) as a short marker, on the same
    line: line numbers stay true, and the noise is neither embedded nor returned."""
    if len(text) < 256:
        return text
    return DATA_BLOB.sub(lambda m: f"[base64 data: {len(m.group(0)):,} characters]", text)


def is_temp_file(name: str) -> bool:
    """An editor's swap or temp file (by its base name)."""
    return any(fnmatchcase(name, pattern) for pattern in TEMP_PATTERNS)


def unicode_encoding(data: bytes) -> str | None:
    """The encoding of UTF-16/32 text (by its byte order mark, or for BOM-less UTF-16 by
    its zero bytes: every high byte of mostly-ASCII text), else None (UTF-8 or not text)."""
    for bom, encoding in BOMS:
        if data.startswith(bom) and encoding != "utf-8":
            return encoding
    head = data[: BINARY_SNIFF_BYTES & ~1]
    pairs = len(head) // 2
    if pairs < 2:
        return None
    low, high = head[0::2][:pairs], head[1::2][:pairs]
    if low.count(0) == 0 and high.count(0) >= 0.6 * pairs:
        return "utf-16-le"
    if high.count(0) == 0 and low.count(0) >= 0.6 * pairs:
        return "utf-16-be"
    return None


def is_binary(head: bytes) -> bool:
    """A NUL byte in the first 8 KiB, unless the bytes are UTF-16/32 text."""
    return b"\x00" in head[:BINARY_SNIFF_BYTES] and unicode_encoding(head) is None


def decode_text(data: bytes) -> str | None:
    """The text of UTF-8 (or UTF-16/32) bytes, or None when they are not text we should index.

    A stray invalid UTF-8 byte (a Latin-1 comment, say) is replaced rather than losing the
    file; a file that is mostly undecodable is not text. UTF-16/32 must decode cleanly.
    """
    encoding = unicode_encoding(data)
    if encoding is not None:
        bom = next((b for b, e in BOMS if e == encoding and data.startswith(b)), b"")
        try:
            text = data[len(bom) :].decode(encoding)
        except UnicodeDecodeError:
            return None
        return None if "\x00" in text else text
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") > max(8, len(text) // 100):
            return None
    return text.removeprefix("\ufeff")


def longest_line(text: str) -> int:
    """Characters in the longest line (lines end at newlines)."""
    return max(map(len, text.split("\n")), default=0)


def printable_path(path: str) -> str:
    """A path that can always be stored and printed (non-UTF-8 names are escaped)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def valid_utf8_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
