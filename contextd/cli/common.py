"""What every command shares: settings, consoles, progress, and `execute`.

`execute` sends an operation to the running daemon when there is one (warm model, one
writer); otherwise it takes the data-dir lock and runs the operation in this process.
Only light modules are imported here, so a command answered by the daemon never loads
numpy, Chroma or torch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from contextd import rpc
from contextd.errors import DaemonError
from contextd.home import home_from_env
from contextd.hygiene import clean
from contextd.lock import DataDirLock, holder, read_info

if TYPE_CHECKING:
    from contextd.settings import Settings

PIPE_CLOSED = 128 + 13  # how SIGPIPE ends a writer: `grep ... | head -1` leaves grep so


def pipe_closed() -> NoReturn:
    """The reader stopped (`| head`): end quietly, as a pipeline's writer does, not with 1
    as if the command had failed (rich's and click's way)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the exit's flush
    raise SystemExit(PIPE_CLOSED)


@contextmanager
def to_stdout() -> Iterator[None]:
    """Writes to stdout that end as a pipeline's writer does if the reader stops."""
    try:
        yield
        sys.stdout.flush()  # a reader gone is found here, not at the interpreter's exit
    except BrokenPipeError:
        pipe_closed()


class _Console(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True
        pipe_closed()


console = _Console(highlight=False, soft_wrap=True)
err_console = _Console(stderr=True, highlight=False, soft_wrap=True)

LOCK_WAIT_S = 5.0
STARTING_S = 120.0  # a daemon up for less than this that does not answer may be starting
CLI_CATALOG_TIMEOUT_S = 2.5  # a catalog held by another process: a clear error within 5 s
LONG_OPS = frozenset({"index", "reindex", "add", "remove"})
# Not done again here when the daemon dies during it: it may be done (a second `remove`
# of the source says there is none).
ONCE_ONLY = frozenset({"remove"})

# Settings' names, known without importing pydantic (~90 ms) on commands the daemon
# answers; a test keeps this list equal to Settings' fields.
SETTING_NAMES = frozenset(
    f"CONTEXTD_{name.upper()}"
    for name in [
        "batch_size",
        "chunk_threads",
        "device",
        "dtype",
        "home",
        "http_host",
        "http_max_body",
        "http_port",
        "max_file_bytes",
        "model",
        "parse_timeout_s",
        "polling_interval_s",
        "reconcile_interval_s",
        "settle_ms",
        "store",
        "store_allow_insecure",
        "store_ca_file",
        "store_namespace",
        "store_token",
        "store_token_file",
        "watch",
    ]
)

_settings: Settings | None = None
_checked_names = False  # misspelt CONTEXTD_ names were warned about (once a process)


def settings() -> Settings:
    global _settings
    if _settings is None:
        from contextd.logs import configure_logging
        from contextd.settings import load_settings

        _settings = load_settings()
        configure_logging(_settings)
        warn_misspelt_settings()
    return _settings


def warn_misspelt_settings() -> None:
    """`CONTEXTD_BATCHSIZE is not a setting...`, whoever answers the command."""
    global _checked_names
    if _checked_names:
        return
    _checked_names = True
    if all(k in SETTING_NAMES for k in os.environ if k.startswith("CONTEXTD_")):
        return
    from contextd.settings import misspelt_settings

    for warning in misspelt_settings():
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")


def reset() -> None:
    """Forget cached settings (tests change CONTEXTD_HOME between runs)."""
    global _settings, _checked_names
    _settings, _checked_names = None, False


def execute(op: str, args: dict[str, Any], progress: Callable[[dict], None] | None = None) -> Any:
    """Ask the running daemon (knowing only the data dir); else do the work here."""
    warn_misspelt_settings()
    home = _settings.home if _settings is not None else home_from_env()
    try:
        return rpc.call(
            home, op, args, timeout=None if op in LONG_OPS else 60, on_progress=progress
        )
    except rpc.DaemonLost as exc:
        if op in ONCE_ONLY:
            raise DaemonError(
                f"The daemon stopped during {op} ({exc}), which may or may not be done: see "
                "`contextd sources` and `contextd logs`, then `contextd start`."
            ) from None
        err_console.print(
            f"[yellow]warning:[/] the daemon stopped during {op} ({escape(str(exc))}); doing it "
            "here instead. Nothing watches your files until `contextd start` (see `contextd logs`)."
        )
    except rpc.DaemonUnavailable:
        pass
    s = settings()
    lock = DataDirLock(s.home)
    if not lock.acquire(wait_s=LOCK_WAIT_S):
        info = read_info(s.home)
        if info:
            up = time.time() - float(info.get("started_at") or time.time())
            if up < STARTING_S:
                raise DaemonError(
                    f"The contextd daemon (pid {info['pid']}) is not answering yet. Wait for "
                    "it to finish starting, check `contextd logs`, or run `contextd stop`."
                )
            raise DaemonError(
                f"The contextd daemon (pid {info['pid']}, up {up / 60:.0f} min) is not "
                "answering: it may be stuck or stopped (`kill -STOP`?). `contextd logs` shows "
                "its last work; `contextd stop` ends it, and `contextd start` starts afresh."
            )
        who = holder(s.home)
        raise DaemonError(
            f"Another contextd command{f' ({who})' if who else ''} is working on {s.home}. "
            "Wait for it to finish (it shows its own progress), then try again."
        )
    try:
        from contextd import ops
        from contextd.app import App

        app = App(s, catalog_timeout_s=CLI_CATALOG_TIMEOUT_S)
        try:
            return ops.run(app, op, args, progress)
        finally:
            app.close()
    finally:
        lock.release()


def embedding_next() -> str:
    """What a user waiting for pending chunks to be embedded does next."""
    home = _settings.home if _settings is not None else home_from_env()
    if rpc.ping(home, timeout=1.0) is not None:
        return "the daemon is embedding them: `contextd status` shows when it is done"
    return "no daemon is running to embed them: run `contextd index`, or `contextd start`"


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
    with to_stdout():
        sys.stdout.write(json.dumps(cleaned(data), indent=2, ensure_ascii=False) + "\n")


def counted(n: int, noun: str) -> str:
    """`1 file`, `2 files`, `0 files`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA unknown"
    if seconds < 90:
        return f"ETA {seconds:.0f}s"
    return f"ETA {seconds / 60:.0f} min" if seconds < 5400 else f"ETA {seconds / 3600:.1f} h"


PLAIN_EVERY_S = 15.0  # a progress line this often when output is not a terminal


def _progress_view(p: dict) -> tuple[str, int, int | None, str]:
    """(what, done, out of, detail) of a progress report from the index."""
    if p.get("phase") == "embedding":
        done = int(p.get("embedded", 0)) + int(p.get("cached", 0))
        rate = float(p.get("embed_rate") or 0.0)
        pending = int(p.get("pending", 0))
        left = p.get("eta_s", pending / rate if rate and pending else None)
        detail = (
            f"chunks · {p.get('embedded', 0)} embedded, {p.get('cached', 0)} cached, "
            f"{pending} pending · {rate:.0f}/s · {eta(left) if pending else 'done'}"
            " · searchable by keyword already"
        )
        return "embedding", done, done + pending, detail
    detail = f"files · {p.get('changed', 0)} changed, {p.get('deleted', 0)} deleted"
    return f"chunking {p.get('source', '')}", p.get("scanned", 0), p.get("total_files"), detail


@contextmanager
def index_progress(enabled: bool) -> Iterator[Callable[[dict], None] | None]:
    """A live progress bar on a terminal: files while chunking, then chunks while
    embedding, with the rate and an ETA. Output to a file or pipe gets a plain line
    every 15 seconds (and at each change of phase) instead."""
    if not enabled:
        yield None
        return
    if not err_console.is_terminal:
        last: list[Any] = [0.0, ""]  # when the last line was written, and its phase

        def plain(p: dict) -> None:
            what, done, total, detail = _progress_view(p)
            phase = what.split()[0]
            if time.monotonic() - last[0] < PLAIN_EVERY_S and phase == last[1]:
                return
            last[:] = [time.monotonic(), phase]
            out_of = f"{done}/{total}" if total else f"{done}"
            sys.stderr.write(f"{what}: {out_of} {detail}\n")
            sys.stderr.flush()

        yield plain
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("indexing", total=None, detail="scanning")

        def update(p: dict) -> None:
            what, done, total, detail = _progress_view(p)
            bar.update(task, total=total or None, completed=done, description=what, detail=detail)

        yield update
