"""What never enters the index: secrets by name, binaries, huge files, ignored folders."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePosixPath

# File names that hold secrets. Matched against every component's name, case-insensitively.
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
)
# Folders whose whole content is secret.
SECRET_DIRS: frozenset[str] = frozenset({".aws", ".ssh", ".gnupg"})

# Folders never worth indexing in a plain folder source.
IGNORED_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "env",
        ".tox",
        ".nox",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "build",
        "dist",
        "target",
        ".idea",
        ".gradle",
        ".next",
        ".cache",
        "site-packages",
        ".eggs",
    }
)

# Editors' swap, backup and temporary files, and partial downloads: never indexed.
TEMP_PATTERNS: tuple[str, ...] = (
    "*.swp", "*.swo", "*.swx", ".*.sw?", "*~", ".#*", "#*#", "4913", "*.tmp", "*.temp",
    "*.kate-swp", "*___jb_tmp___", "*___jb_old___", "*.crdownload", "*.part", ".~lock.*#",
    ".goutputstream-*",
)  # fmt: skip

BINARY_SNIFF_BYTES = 8192


def secret_reason(path: str) -> str | None:
    """Why `path` (relative, posix) is on the deny-list, or None."""
    parts = PurePosixPath(path).parts
    for part in parts[:-1]:
        if part.lower() in SECRET_DIRS:
            return f"secret (deny-list: {part}/)"
    name = parts[-1].lower() if parts else ""
    for pattern in SECRET_NAME_PATTERNS:
        if fnmatchcase(name, pattern):
            return f"secret (deny-list: {pattern})"
    return None


def is_temp_file(name: str) -> bool:
    """An editor's swap or temp file (by its base name)."""
    return any(fnmatchcase(name, pattern) for pattern in TEMP_PATTERNS)


def is_binary(head: bytes) -> bool:
    return b"\x00" in head[:BINARY_SNIFF_BYTES]


def decode_text(data: bytes) -> str | None:
    """UTF-8 text, or None when the bytes are not text we should index.

    A stray invalid byte (a Latin-1 comment, say) is replaced rather than losing the file;
    a file that is mostly undecodable is not text.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") > max(8, len(text) // 100):
            return None
    return text.removeprefix("\ufeff")


def printable_path(path: str) -> str:
    """A path that can always be stored and printed (non-UTF-8 names are escaped)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def valid_utf8_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
