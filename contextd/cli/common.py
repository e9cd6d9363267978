"""What every command shares: settings, the app, consoles, progress display."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from contextd.app import App
from contextd.pipeline import IndexStats
from contextd.settings import Settings, load_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
        configure_logging(_settings)
    return _settings


def reset() -> None:
    """Forget cached settings (tests change CONTEXTD_HOME between runs)."""
    global _settings
    _settings = None


def configure_logging(s: Settings) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_contextd", False):
            root.removeHandler(h)
    try:
        s.log_path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(s.log_path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._contextd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("chromadb", "httpx", "sentence_transformers", "urllib3", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def opened_app() -> Iterator[App]:
    app = App(settings())
    try:
        yield app
    finally:
        app.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def index_progress(label: str, enabled: bool) -> Iterator[Any]:
    """A live progress bar on a terminal; a no-op callback elsewhere."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files · {task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None, detail="scanning")
        started = time.perf_counter()

        def update(stats: IndexStats) -> None:
            rate = stats.embedded / max(1e-9, time.perf_counter() - started)
            bar.update(
                task,
                total=stats.total_files or None,
                completed=stats.scanned,
                description=stats.source,
                detail=f"{stats.embedded} embedded ({rate:.0f}/s) · {stats.cached} cached",
            )

        yield update
