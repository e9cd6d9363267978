"""Sources of files and what changed in them: (source, path, content hash) changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextd.connectors.base import Source, open_source
    from contextd.connectors.changes import ScanResult, scan_changes

__all__ = ["ScanResult", "Source", "open_source", "scan_changes"]


def __getattr__(name: str) -> Any:
    """Loaded on first use: the CLI's way to the daemon imports `filters` alone, and the
    scan's modules cost it 50 ms (pathspec, and the secret scanner's patterns)."""
    if name in ("Source", "open_source"):
        from contextd.connectors import base

        return getattr(base, name)
    if name in ("ScanResult", "scan_changes"):
        from contextd.connectors import changes

        return getattr(changes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
