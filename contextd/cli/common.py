"""What every command shares: settings, consoles, progress, and `execute`.

`execute` sends an operation to the running daemon when there is one (warm model, one
writer); otherwise it takes the data-dir lock and runs the operation in this process.
Only light modules are imported here, so a command answered by the daemon never loads
numpy, Chroma or torch.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from contextd import rpc
from contextd.errors import DaemonError
from contextd.hygiene import clean
from contextd.lock import DataDirLock, read_info
from contextd.logs import configure_logging
from contextd.settings import Settings, load_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

LOCK_WAIT_S = 5.0
LONG_OPS = frozenset({"index", "reindex", "add", "remove"})

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


def execute(op: str, args: dict[str, Any], progress: Callable[[dict], None] | None = None) -> Any:
    s = settings()
    try:
        return rpc.call(
            s.home, op, args, timeout=None if op in LONG_OPS else 60, on_progress=progress
        )
    except rpc.DaemonUnavailable:
        pass
    lock = DataDirLock(s.home)
    if not lock.acquire(wait_s=LOCK_WAIT_S):
        info = read_info(s.home)
        if info:
            raise DaemonError(
                f"The contextd daemon (pid {info['pid']}) is not answering. Wait for it to "
                "finish starting, check `contextd logs`, or run `contextd stop`."
            )
        raise DaemonError(
            f"Another contextd command is working on {s.home}. Wait for it, then try again."
        )
    try:
        from contextd import ops
        from contextd.app import App

        app = App(s)
        try:
            return ops.run(app, op, args, progress)
        finally:
            app.close()
    finally:
        lock.release()


def shown(value: object) -> str:
    """Text from files, paths or names, made inert for the terminal: cleaned (see
    `contextd.hygiene`) and with rich markup escaped (a file named `[/]` is a name)."""
    return escape(clean(str(value)))


def cleaned(data: Any) -> Any:
    """Every string in a JSON-able value cleaned (see `contextd.hygiene`)."""
    if isinstance(data, str):
        return clean(data)
    if isinstance(data, dict):
        return {k: cleaned(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [cleaned(v) for v in data]
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(cleaned(data), indent=2, ensure_ascii=False) + "\n")


@contextmanager
def index_progress(enabled: bool) -> Iterator[Callable[[dict], None] | None]:
    """A live progress bar on a terminal; nothing elsewhere."""
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
        task = bar.add_task("indexing", total=None, detail="scanning")
        started = time.perf_counter()

        def update(p: dict) -> None:
            rate = p["embedded"] / max(1e-9, time.perf_counter() - started)
            bar.update(
                task,
                total=p.get("total_files") or None,
                completed=p["scanned"],
                description=p["source"],
                detail=f"{p['embedded']} embedded ({rate:.0f}/s) · {p['cached']} cached",
            )

        yield update
