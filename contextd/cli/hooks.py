"""`contextd hooks install|uninstall [REPO]`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from contextd import hooks
from contextd.cli.common import console, execute, settings
from contextd.errors import NotARepository, SourceError

app = typer.Typer(
    help="Git hooks that tell the daemon when a repository moves.", no_args_is_help=True
)

Repo = Annotated[
    str, typer.Argument(help="The repository: a path, or a source's name (default: this one).")
]


def _repository(repo: str) -> Path:
    """The repository a path or a git source's name points at, or a clear error."""
    path = Path(repo).expanduser()
    if path.is_dir():
        return path.resolve()
    rows = {r["name"]: r for r in execute("sources", {})}
    if repo in rows and rows[repo]["kind"] == "git":
        return Path(rows[repo]["root"])
    raise SourceError(
        f"'{repo}' is neither a folder nor a git source's name. Give a repository's path, "
        "or see `contextd sources`."
    )


@contextmanager
def _a_repository_is_needed() -> Iterator[None]:
    try:
        yield
    except NotARepository as exc:
        raise SourceError(
            f"{exc} Give a repository's path or a git source's name: "
            "`contextd hooks install REPO|SOURCE`."
        ) from None


@app.command()
def install(repo: Repo = ".") -> None:
    """Install post-commit, post-merge, post-checkout and post-rewrite hooks."""
    with _a_repository_is_needed():
        written = hooks.install(_repository(repo), settings().home)
    console.print(f"Installed {len(written)} hooks in {written[0].parent}.")


@app.command()
def uninstall(
    repo: Repo = ".",
    every: Annotated[
        bool, typer.Option("--all", help="For every contextd data dir, not just this one.")
    ] = False,
) -> None:
    """Remove contextd's hooks, restoring any hook that was there before.

    Hooks that another contextd data dir also uses stay for it, unless --all.
    """
    root = _repository(repo)
    with _a_repository_is_needed():
        removed, others = hooks.uninstall(root, None if every else settings().home)
    console.print(f"Removed {len(removed)} contextd hook(s) from {root}.")
    if others:
        console.print(
            f"They stay for {len(others)} other data dir(s) that watch it: "
            f"{', '.join(map(str, others))}. `contextd hooks uninstall --all` removes them "
            "for every data dir."
        )
