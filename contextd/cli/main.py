"""The `contextd` entry point, and the one place errors become exit codes.

`contextd mcp` (what agents launch) takes a fast path that skips the CLI's imports.

Known errors (ContextdError) print one line and exit 1; Ctrl-C exits 130 and SIGTERM 143,
each unwinding like an error (locks released, scratch copies removed) and saying so;
anything else is a bug: its traceback goes to the log file, whose path is printed, and
exit is 3.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence

import typer

from contextd.cli import daemon, evaluate, hooks, indexing, mcp, search, sources
from contextd.cli.common import err_console, settings, shown
from contextd.errors import ContextdError

app = typer.Typer(
    name="contextd",
    help="A local, always-fresh index of your code and documents for coding agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from contextd import __version__

        typer.echo(f"contextd {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """A local, always-fresh index of your code and documents for coding agents."""


app.command()(sources.add)
app.command()(indexing.index)
app.command()(search.search)
app.command()(sources.sources)
app.command()(sources.remove)
app.command()(indexing.status)
app.command()(indexing.reindex)
app.command()(indexing.doctor)
app.command(name="eval")(evaluate.eval_cmd)
app.command()(evaluate.calibrate)
app.command()(daemon.start)
app.command()(daemon.stop)
app.command()(daemon.daemon)
app.command()(daemon.logs)
app.command()(mcp.mcp)
app.command()(mcp.serve)
app.add_typer(hooks.app, name="hooks")


# Commands that serve until stopped, and stop on SIGTERM their own way.
SERVERS = frozenset({"daemon", "serve", "mcp"})


def run(argv: Sequence[str] | None = None) -> int:
    args = list(argv) if argv is not None else sys.argv[1:]
    caught: list[int] = []  # the signals that stopped the command (typer returns 130)
    try:
        with _stoppable(caught, not SERVERS & set(args[:1])):
            result = app(args=args, standalone_mode=False, prog_name="contextd")
        if caught:
            return _stopped(caught[0], args[:1])
        return result if isinstance(result, int) else 0
    except ContextdError as exc:
        err_console.print(f"[red]error:[/] {shown(exc)}", markup=True, highlight=False)
        return 1
    except (KeyboardInterrupt, typer.Abort):
        return _stopped(caught[0] if caught else signal.SIGINT, args[:1])
    except typer.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:
        # A damaged catalog file ("database disk image is malformed"); a locked or full
        # one is reported where it happens, and any other database error is a bug.
        if isinstance(exc, sqlite3.DatabaseError):
            from contextd.catalog import damaged_message, is_damage
            from contextd.home import home_from_env

            if is_damage(exc):
                path = home_from_env() / "catalog.sqlite3"
                err_console.print(f"[red]error:[/] {shown(damaged_message(path, str(exc)))}")
                return 1
        # A usage error (unknown option, missing argument): click's ClickException, which
        # typer 0.28 carries as its own copy, so it is recognised by what it can do.
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        details = traceback.format_exc()
        try:
            log_path: str | None = str(settings().log_path)  # sets up logging, if not yet
        except ContextdError:
            log_path = None
        to_file = any(
            getattr(h, "baseFilename", None) == log_path for h in logging.getLogger().handlers
        )
        logging.getLogger("contextd").error("unexpected error\n%s", details)
        where = f"in {log_path}" if to_file else "above"  # else logging wrote to stderr
        err_console.print(
            f"[red]unexpected error:[/] {type(exc).__name__}: {shown(exc)}. "
            f"The traceback is {where}; please report it."
        )
        return 3


def main() -> None:
    sys.exit(run())


def entry() -> None:
    """The console script: `contextd mcp` goes straight to the stdio server."""
    if sys.argv[1:] == ["mcp"]:
        from contextd.mcp_server.stdio import serve_stdio

        sys.exit(serve_stdio())
    main()


# What to do after a stopped command, where there is something to do.
RESUME = {
    "index": "What was indexed is kept; `contextd index` goes on from there.",
    "reindex": "What was indexed is kept; `contextd index` goes on from there.",
}


def _stopped(signum: int, command: list[str]) -> int:
    then = RESUME.get(command[0], "") if command else ""
    if signum == signal.SIGTERM:
        err_console.print(f"Stopped (SIGTERM). {then}".strip())
        return 143
    err_console.print(f"Interrupted. {then}".strip())
    return 130


@contextlib.contextmanager
def _stoppable(caught: list[int], enabled: bool) -> Iterator[None]:
    """Ctrl-C and SIGTERM unwind the command (past `except Exception`), and are noted."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        caught.append(signum)
        raise KeyboardInterrupt()

    # A signal the command was started to ignore (`nohup`, `&` in a script) stays ignored.
    before = {
        sig: signal.signal(sig, stop)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
