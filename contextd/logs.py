"""Logging set-up for entry points: the log file in the data dir, optionally stderr."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from contextd.home import make_home

if TYPE_CHECKING:
    from contextd.settings import Settings

NOISY = ("chromadb", "httpx", "httpx2", "sentence_transformers", "urllib3", "transformers", "mcp")


MAX_LOG_BYTES = 10 << 20  # a log past this is moved to contextd.log.1 when a daemon starts


def rotate_log(path: Path) -> None:
    """Keep the log bounded: at a daemon's start, a log past MAX_LOG_BYTES becomes
    `contextd.log.1` (replacing the one before), and a new one begins."""
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError:
        pass


class _SafeWatchedFileHandler(logging.handlers.WatchedFileHandler):
    """A log whose folder was deleted (the data dir with it) is a lost line, not an
    exception out of the `log.error` that was to say so."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reopenIfNeeded()
            logging.FileHandler.emit(self, record)  # which opens the file again if closed
        except OSError:
            pass  # the log's folder is gone: the line is lost, and the caller goes on


def configure_logging(s: Settings, stderr: bool = False) -> None:
    # A log line that cannot be written (a full disk) is lost, not a traceback on stderr.
    logging.raiseExceptions = False
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_contextd", False):
            root.removeHandler(h)
    handlers: list[logging.Handler] = []
    try:
        make_home(s.home)
        s.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Reopened when logrotate (or `rotate_log`) moves it away: lines never go to a
        # file no one reads.
        handlers.append(_SafeWatchedFileHandler(s.log_path, encoding="utf-8"))
    except OSError:
        stderr = True
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._contextd = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
