"""Logging set-up for entry points: the log file in the data dir, optionally stderr."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from contextd.home import make_home

if TYPE_CHECKING:
    from contextd.settings import Settings

NOISY = ("chromadb", "httpx", "httpx2", "sentence_transformers", "urllib3", "transformers", "mcp")


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
        handlers.append(logging.FileHandler(s.log_path, encoding="utf-8"))
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
