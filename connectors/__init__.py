"""Sources of files and what changed in them: (source, path, content hash) changes."""

from contextd.connectors.base import Source, open_source
from contextd.connectors.changes import ScanResult, scan_changes

__all__ = ["ScanResult", "Source", "open_source", "scan_changes"]
