"""`contextd add`, `contextd remove`, `contextd sources`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contextd.cli.common import console, counted, execute, print_json, shown


def add(
    path: Annotated[Path, typer.Argument(help="A git repository or a folder.")],
    name: Annotated[str | None, typer.Option("--name", help="Name of the source.")] = None,
    no_hooks: Annotated[
        bool, typer.Option("--no-hooks", help="Do not install git hooks in a repository.")
    ] = False,
) -> None:
    """Register a git repository (detected) or a plain folder as a source."""
    args = {"path": str(path.expanduser().resolve()), "name": name, "hooks": not no_hooks}
    row = execute("add", args)
    if not row["created"]:
        console.print(
            f"'{shown(row['name'])}' is already a source ({row['kind']}, {shown(row['root'])})."
        )
    else:
        console.print(f"Added {row['kind']} source '{shown(row['name'])}' at {shown(row['root'])}.")
    if row["hooks"]:
        console.print(f"Git hooks installed: {', '.join(row['hooks'])}.")
    if row.get("hooks_note"):
        console.print(f"[yellow]No git hooks:[/] {shown(row['hooks_note'])}")
    if row["created"]:
        console.print(f"Next: `contextd index {row['name']}` (a running daemon does it for you).")


def remove(source: Annotated[str, typer.Argument(help="Name of the source.")]) -> None:
    """Forget a source and delete its chunks from the index (your files are untouched)."""
    result = execute("remove", {"source": source})
    console.print(f"Removed '{source}' and its {result['chunks']} chunk(s) from the index.")
    if result.get("freed", 0) >= 2**20:
        console.print(f"{result['freed'] / 2**20:.0f} MB of disk given back.")
    if result.get("note"):
        console.print(f"Note: {shown(result['note'])}")


def sources(
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """List the sources with what is indexed of each."""
    rows = execute("sources", {})
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No sources yet. Run `contextd add PATH`.")
    for r in rows:
        state = (
            "never indexed"
            if r["indexed_at"] is None
            else f"{counted(r['files'], 'file')}, {counted(r['chunks'], 'chunk')}"
        )
        console.print(f"[bold]{shown(r['name'])}[/]  {r['kind']}  {shown(r['root'])}  ({state})")
