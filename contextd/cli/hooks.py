"""`contextd hooks install|uninstall [REPO]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contextd import hooks
from contextd.cli.common import console, settings

app = typer.Typer(
    help="Git hooks that tell the daemon when a repository moves.", no_args_is_help=True
)

Repo = Annotated[Path, typer.Argument(help="The repository (default: this one).")]


@app.command()
def install(repo: Repo = Path(".")) -> None:
    """Install post-commit, post-merge, post-checkout and post-rewrite hooks."""
    written = hooks.install(repo.resolve(), settings().home)
    console.print(f"Installed {len(written)} hooks in {written[0].parent}.")


@app.command()
def uninstall(repo: Repo = Path(".")) -> None:
    """Remove contextd's hooks, restoring any hook that was there before."""
    touched = hooks.uninstall(repo.resolve())
    console.print(f"Removed {len(touched)} contextd hook(s) from {repo.resolve()}.")
