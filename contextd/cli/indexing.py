"""`contextd index`, `contextd reindex`, `contextd status`."""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Any

import typer
from rich.markup import escape

from contextd.cli.common import (
    console,
    counted,
    embedding_next,
    err_console,
    eta,
    execute,
    index_progress,
    print_json,
    settings,
    shown,
)
from contextd.errors import DaemonError, StoreError
from contextd.hooks import HOOKS
from contextd.hygiene import one_line


def _report(summary: dict[str, Any], as_json: bool) -> None:
    """Print what was indexed; exit 1 after it if a source could not be."""
    failed = summary.get("failed") or []
    if as_json:
        print_json(summary)
    else:
        _print(summary)
        for f in failed:
            err_console.print(f"[red]error[/] {shown(f['error'])}")
    if failed:
        raise typer.Exit(1)


def _print(summary: dict[str, Any]) -> None:
    if not summary["sources"] and not summary.get("failed"):
        console.print("No sources yet. Run `contextd add PATH` first.")
    for r in summary["sources"]:
        console.print(
            f"[bold]{r['source']}[/]: {counted(r['files'], 'file')}, "
            f"{counted(r['chunks'], 'chunk')} "
            f"({r['changed']} changed, {r['deleted']} deleted, {r['skipped']} skipped) · "
            f"searchable in {r['searchable_seconds']:.1f}s"
        )
    if summary["sources"]:
        rate = f" at {summary['embed_rate']:.0f} chunks/s" if summary["embedded"] else ""
        pending = (
            f", [yellow]{summary['pending']} pending[/] (searchable by keyword; {embedding_next()})"
            if summary["pending"]
            else ""
        )
        console.print(
            f"{summary['embedded']} embedded{rate}, {summary['cached']} from the cache"
            f"{pending} · {summary['seconds']:.1f}s in all"
        )


def index(
    source: Annotated[str | None, typer.Argument(help="Source to index (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait until every chunk is embedded, or return once all is searchable "
            "by keyword (the running daemon embeds the rest).",
        ),
    ] = True,
) -> None:
    """Bring the index up to date with what is on disk (only changes are re-embedded)."""
    args = {"sources": [source] if source else None, "embed": wait}
    with index_progress(enabled=not as_json) as progress:
        summary = execute("index", args, progress)
    _report(summary, as_json)


def reindex(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    take_over: Annotated[
        bool,
        typer.Option(
            "--take-over",
            help="Team mode: delete the namespace's index even though another contextd "
            "made it (one of yours that you replaced).",
        ),
    ] = False,
) -> None:
    """Rebuild the whole index (after a model or chunker change). Cached vectors are reused."""
    with index_progress(enabled=not as_json) as progress:
        summary = execute("reindex", {"take_over": take_over}, progress)
    _report(summary, as_json)


def _ago(t: float | None) -> str:
    if not t:
        return "never"
    s = time.time() - t
    return (
        f"{s:.0f}s ago"
        if s < 120
        else f"{s / 60:.0f} min ago"
        if s < 7200
        else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
    )


def status(
    skipped: Annotated[bool, typer.Option("--skipped", help="List skipped files and why.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """The daemon, and per source what is indexed, what is pending, and what was left out."""
    data = execute("status", {"skipped": skipped, "hooks": True})
    if as_json:
        print_json(data)
        return
    d = data["daemon"]
    # This shell's settings, read before anything is printed: a bad one is an error alone.
    shell_store = settings().store if d else None
    if d:
        console.print(
            f"daemon: running, pid {d['pid']}, up {d['uptime_s']:.0f}s, "
            f"model {'loaded' if d['model_loaded'] else 'loading'}"
        )
        e = d.get("embedding") or {}
        if e.get("active"):
            console.print(f"embedding: {e['rate']:.0f} chunks/s, {e['embedded']} embedded so far")
        if e.get("error"):
            console.print(f"  [red]embedding error[/] {e['error']} (retrying; see `contextd logs`)")
    else:
        console.print("daemon: not running (`contextd start` keeps the index fresh)")
    for reason in data.get("degraded") or []:
        console.print(f"[red]degraded[/]: {reason} (free space there; contextd then catches up)")
    console.print(f"home: {data['home']}\nmodel: {data['model']}")
    print_store(data["store"])
    if d and shell_store != data["store"].get("url"):
        console.print(
            "[yellow]This shell's CONTEXTD_STORE differs from the daemon's: run "
            "`contextd stop`, then `contextd start`, to switch.[/]"
        )
    for r in data["sources"]:
        embedded = r["chunks"] - r["pending"]
        line = (
            f"[bold]{shown(r['name'])}[/] ({r['kind']}) {counted(r['files'], 'file')}, "
            f"{counted(r['chunks'], 'chunk')} "
            f"({embedded} embedded, {r['pending']} pending), {r['skipped']} skipped · "
            f"indexed {_ago(r['indexed_at'])} · "
            f"last full reconcile {_ago(r['reconciled_at'])}"
        )
        if r["kind"] == "git" and r["indexed_commit"]:
            head = r["head"]
            fresh = "= HEAD" if r["indexed_commit"] == head else f"HEAD is {(head or '?')[:10]}"
            line += f" · commit {r['indexed_commit'][:10]} ({fresh})"
        if r.get("hooks") is not None and len(r["hooks"]) < len(HOOKS):
            line += (
                f" · git hooks: {len(r['hooks'])} of {len(HOOKS)} (`contextd hooks install "
                f"{shown(r['name'])}` installs them)"
            )
        if d:
            line += (
                f" · watch: {r['watch'] or 'none'} · queued files {r['queued']}"
                f" · last event {_ago(r['last_event'])}"
            )
            if r["pending"]:
                line += f" · embedding, {eta(r.get('eta_s'))}"
        if r.get("busy"):
            line += " · [cyan]indexing now[/]"
        elif r["interrupted"]:
            line += " · [yellow]last run was interrupted: run `contextd index`[/]"
        console.print(line)
        if r.get("calibration_problem"):
            console.print(f"  [yellow]confidence:[/] {shown(r['calibration_problem'])}")
        for error in r.get("errors", []):
            console.print(f"  [red]error[/] {shown(error)}")
    if skipped:
        for item in data["skipped"]:
            where = escape(one_line(f"{item['source']}:{item['path']}"))
            why = shown(item["reason"])
            console.print(f"  {where}  [dim]{why}[/]")
        if not data["skipped"]:
            console.print("No files were skipped.")
        else:  # after the list, where a long one ends: how many for each reason
            kinds = Counter(item["reason"].split(" (")[0] for item in data["skipped"])
            console.print(
                f"{len(data['skipped']):,} skipped: "
                + ", ".join(f"{n:,} {shown(kind)}" for kind, n in kinds.most_common())
            )
    elif any(r["skipped"] for r in data["sources"]):
        console.print("[dim]See what was skipped and why: `contextd status --skipped`.[/]")


def print_store(info: dict[str, Any]) -> None:
    """One line: which vector store, and for a server whether it answers."""
    if info["kind"] == "embedded":
        console.print(f"store: embedded, {info['path']}")
        if info.get("problem"):
            console.print(f"  [red]not usable:[/] {shown(info['problem'])}")
        return
    line = (
        f"store: Chroma server {info['url']} · namespace {info['namespace']} · "
        f"token: {info['token']}"
    )
    if info.get("collection"):
        line += f" · collection {info['collection']}"
    if info["reachable"]:
        console.print(f"{line} · [green]reachable[/]")
        if info.get("problem"):
            console.print(f"  [red]not usable:[/] {shown(info['problem'])}")
    else:
        console.print(f"{line} · [red]not usable[/]\n  {info['problem']}")


def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Sweep what does not match.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Check the catalog, and that it agrees with the vector store (lost, orphan, duplicates).

    `--repair` sweeps mismatches, and starts a damaged catalog afresh."""
    if _damaged_catalog(repair, as_json):
        return
    info = execute("store", {"check": True})
    if not as_json:
        print_store(info)
        if info.get("repaired"):
            console.print(f"[yellow]{info['repaired']}[/]")
    report = execute("verify", {"repair": repair})
    if as_json:
        print_json(report)
        return
    bad = False
    for name, r in report.items():
        ok = not (r["lost"] or r["orphan"] or r["duplicate"])
        bad |= not ok
        mark = "[green]ok[/]" if ok else "[red]mismatch[/]"
        console.print(
            f"{mark} {name}: {r['chunks']} chunks · lost {r['lost']} · "
            f"orphan {r['orphan']} · duplicate {r['duplicate']} · pending {r['pending']}"
        )
    left = execute("leftovers", {"repair": repair})
    for source, n in sorted(left["vectors"].items()):
        done = "deleted" if left["removed"] else "no source uses"
        console.print(f"[yellow]leftover[/] {n} vectors of source '{shown(source)}': {done}")
    for name, n in sorted(left["collections"].items()):
        done = "dropped" if left["removed"] else "left by another model or chunker version"
        console.print(f"[yellow]leftover[/] collection {shown(name)} ({n} vectors): {done}")
    if left.get("cache"):
        if left["removed"]:
            then = ": dropped"
        elif left.get("no_sources"):
            then = (
                " (kept while no source is added: a catalog started afresh may need them; "
                "once sources are added, `contextd doctor --repair` drops what they do not use)"
            )
        else:
            then = (
                " (kept, so text that comes back is not embedded again; "
                "`contextd doctor --repair` drops them)"
            )
        console.print(f"embedding cache: {left['cache']} vectors of text no longer indexed{then}")
    sweepable = any(r["lost"] or r["orphan"] for r in report.values())
    sweepable |= bool(left["vectors"] or left["collections"])
    if sweepable and left.get("no_sources"):
        console.print(
            "No source is added, so nothing is swept: a catalog started afresh may need "
            "these vectors. Add your sources again, then run `contextd doctor --repair`."
        )
    elif sweepable and not repair:
        console.print("Run `contextd doctor --repair` to sweep the store back into agreement.")
    elif bad:  # a chunk stored twice is in the catalog too: the sweep keeps it
        console.print(
            "Chunks stored twice come from how their files were cut (a chunker fixed "
            "since); `contextd reindex` cuts them afresh, with vectors from the cache."
        )


def _damaged_catalog(repair: bool, as_json: bool) -> bool:
    """Report a damaged catalog (and with `repair`, start it afresh); False if it is sound."""
    from contextd import rpc
    from contextd.catalog import damage, damaged_message, start_afresh
    from contextd.lock import DataDirLock

    s = settings()
    problem = damage(s.catalog_path)
    if problem is None:
        return False
    if not repair:
        raise StoreError(damaged_message(s.catalog_path, problem))
    if rpc.ping(s.home):
        raise DaemonError("The daemon is using the damaged catalog: `contextd stop` first.")
    lock = DataDirLock(s.home)
    if not lock.acquire(wait_s=5):
        raise DaemonError(f"Another contextd process is working on {s.home}; wait for it.")
    try:
        done = start_afresh(s.catalog_path)
    finally:
        lock.release()
    copy_aside = str(done.copy_aside) if done.copy_aside else None
    if as_json:
        print_json(
            {
                "damaged": problem,
                "moved_to": str(done.aside),
                "sources": done.restored,
                "unreadable_source_list": copy_aside,
            }
        )
        return True
    console.print(f"The damaged catalog ({problem}) is now {done.aside}.")
    if copy_aside:
        console.print(
            f"[yellow]The copy of your source list could not be read either; it is now "
            f"{copy_aside}. Add your sources again with `contextd add PATH`.[/yellow]",
            highlight=False,
        )
    restored = done.restored
    console.print(
        f"A new catalog holds your {len(restored)} source(s): {', '.join(restored) or 'none'}. "
        "Run `contextd reindex` to rebuild the index from your files."
    )
    return True
