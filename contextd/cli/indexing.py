"""`contextd index`, `contextd reindex`, `contextd status`."""

from __future__ import annotations

import subprocess
import time
from typing import Annotated, Any

import typer

from contextd.app import App
from contextd.cli.common import console, index_progress, opened_app, print_json
from contextd.pipeline import IndexStats

SUMMED = ("files", "chunks", "skipped", "changed", "deleted", "embedded", "cached")


def _run(app: App, names: list[str], as_json: bool) -> list[IndexStats]:
    rows = [app.catalog.source(n) for n in names] if names else app.catalog.sources()
    if not rows:
        console.print("No sources yet. Run `contextd add PATH` first.")
        return []
    results = []
    with index_progress("indexing", enabled=not as_json) as progress:
        for row in rows:
            results.append(app.index(row, progress))
    return results


def _report(results: list[IndexStats], seconds: float, as_json: bool) -> None:
    if as_json:
        total: dict[str, Any] = {k: sum(getattr(r, k) for r in results) for k in SUMMED}
        embed_s = sum(r.embed_seconds for r in results)
        total |= {
            "seconds": round(seconds, 3),
            "embed_seconds": round(embed_s, 3),
            "embed_rate": round(total["embedded"] / embed_s, 1) if embed_s else 0.0,
            "sources": [r.as_dict() for r in results],
        }
        print_json(total)
        return
    for r in results:
        rate = f", {r.embed_rate:.0f} chunks/s" if r.embedded else ""
        console.print(
            f"[bold]{r.source}[/]: {r.files} files, {r.chunks} chunks "
            f"({r.changed} changed, {r.deleted} deleted, {r.skipped} skipped) · "
            f"{r.embedded} embedded, {r.cached} cached{rate} · {r.seconds:.1f}s"
        )


def index(
    source: Annotated[str | None, typer.Argument(help="Source to index (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Bring the index up to date with what is on disk (only changes are re-embedded)."""
    started = time.perf_counter()
    with opened_app() as app:
        results = _run(app, [source] if source else [], as_json)
    _report(results, time.perf_counter() - started, as_json)


def reindex(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Rebuild the whole index (after a model or chunker change). Cached vectors are reused."""
    started = time.perf_counter()
    with opened_app() as app:
        app.reset_index()
        results = _run(app, [], as_json)
    _report(results, time.perf_counter() - started, as_json)


def _head(root: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", root, "rev-parse", "-q", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def status(
    skipped: Annotated[bool, typer.Option("--skipped", help="List skipped files and why.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What is indexed, per source, and (with --skipped) what was left out and why."""
    with opened_app() as app:
        s = app.settings
        rows: list[dict[str, Any]] = []
        for src in app.catalog.sources():
            head = _head(str(src.root)) if src.kind == "git" else None
            rows.append(
                {
                    "name": src.name,
                    "kind": src.kind,
                    "root": str(src.root),
                    **app.catalog.counts(src.name),
                    "indexed_at": src.indexed_at,
                    "indexed_commit": src.indexed_commit,
                    "head": head,
                    "interrupted": src.dirty,
                }
            )
        left_out = [{"source": a, "path": b, "reason": c} for a, b, c in app.catalog.skipped()]
    data: dict[str, Any] = {"home": str(s.home), "model": s.model, "sources": rows}
    if skipped:
        data["skipped"] = left_out
    if as_json:
        print_json(data)
        return
    console.print(f"home: {s.home}\nmodel: {s.model}")
    for r in rows:
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["indexed_at"]))
            if r["indexed_at"]
            else "never"
        )
        line = (
            f"[bold]{r['name']}[/] ({r['kind']}) {r['files']} files, {r['chunks']} chunks, "
            f"{r['skipped']} skipped · indexed {when}"
        )
        if r["kind"] == "git" and r["indexed_commit"]:
            fresh = (
                "up to date"
                if r["indexed_commit"] == r["head"]
                else f"HEAD is {str(r['head'])[:10]}"
            )
            line += f" at {r['indexed_commit'][:10]} ({fresh})"
        if r["interrupted"]:
            line += " · [yellow]last run was interrupted: run `contextd index`[/]"
        console.print(line)
    if skipped:
        for item in left_out:
            console.print(f"  {item['source']}:{item['path']}  [dim]{item['reason']}[/]")
        if not left_out:
            console.print("No files were skipped.")
    elif any(r["skipped"] for r in rows):
        console.print("[dim]See what was skipped and why: `contextd status --skipped`.[/]")
