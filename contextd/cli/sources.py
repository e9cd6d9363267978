"""`contextd add`, `contextd remove`, `contextd sources`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contextd.app import resolve_root
from contextd.cli.common import console, opened_app, print_json
from contextd.connectors.base import detect_kind
from contextd.errors import SourceError


def add(
    path: Annotated[Path, typer.Argument(help="A git repository or a folder.")],
    name: Annotated[str | None, typer.Option("--name", help="Name of the source.")] = None,
) -> None:
    """Register a git repository (detected) or a plain folder as a source."""
    root = resolve_root(path)
    if not root.is_dir():
        raise SourceError(f"{path} is not a directory. Give the path of a repository or folder.")
    name = name or root.name
    if not name or "/" in name or name.startswith("."):
        raise SourceError(f"'{name}' cannot name a source. Pass --name with a plain word.")
    with opened_app() as app:
        existing = app.catalog.source_by_root(root)
        if existing and existing.name == name:
            console.print(f"'{name}' is already a source ({existing.kind}, {root}).")
            return
        row = app.catalog.add_source(name, root, detect_kind(root))
    console.print(f"Added {row.kind} source '{row.name}' at {row.root}.")
    console.print(f"Next: `contextd index {row.name}`.")


def remove(source: Annotated[str, typer.Argument(help="Name of the source.")]) -> None:
    """Forget a source and delete its chunks from the index (your files are untouched)."""
    with opened_app() as app:
        n = app.forget(source)
    console.print(f"Removed '{source}' and its {n} chunk(s) from the index.")


def sources(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the sources with what is indexed of each."""
    with opened_app() as app:
        rows = [
            {
                "name": r.name,
                "kind": r.kind,
                "root": str(r.root),
                **app.catalog.counts(r.name),
                "indexed_commit": r.indexed_commit,
                "indexed_at": r.indexed_at,
            }
            for r in app.catalog.sources()
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No sources yet. Run `contextd add PATH`.")
    for r in rows:
        state = (
            "never indexed"
            if r["indexed_at"] is None
            else f"{r['files']} files, {r['chunks']} chunks"
        )
        console.print(f"[bold]{r['name']}[/]  {r['kind']}  {r['root']}  ({state})")
