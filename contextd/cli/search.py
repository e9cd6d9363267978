"""`contextd search`: results with location, symbol, score and a highlighted snippet."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from contextd.cli.common import console, embedding_next, execute, print_json
from contextd.hygiene import clean, one_line
from contextd.lexical import query_terms

SNIPPET_LINES = 6


def snippet(text: str, terms: list[str], n: int = SNIPPET_LINES) -> tuple[int, list[str]]:
    """The n-line window with the most query terms: (offset of its first line, lines)."""
    lines = text.split("\n")
    lowered = [t.lower() for t in terms]
    hits = [sum(t in line.lower() for t in lowered) for line in lines]
    best = max(range(max(1, len(lines) - n + 1)), key=lambda i: (sum(hits[i : i + n]), -i))
    return best, lines[best : best + n]


def _print_hit(rank: int, hit: dict[str, Any], terms: list[str]) -> None:
    head = Text(f"{rank}. ", style="dim")
    head.append(f"{one_line(hit['path'])}:{hit['start_line']}-{hit['end_line']}", style="bold cyan")
    if hit["symbol"]:
        head.append(f"  {one_line(hit['symbol'])}", style="magenta")
    if hit.get("match"):  # a lookup's fact: this result defines or holds the word
        head.append(f"  {hit['match']}", style="green")
    elif hit.get("confidence") is not None:
        head.append(f"  {hit['confidence']:.0%} relevant", style="green")
    else:
        head.append(f"  score {hit['score']:.3f}", style="green")
    if hit.get("stale"):
        head.append("  stale", style="yellow")
    head.append(f"  [{one_line(hit['source'])}]", style="dim")
    console.print(head)
    offset, lines = snippet(clean(hit["text"]), terms)
    for i, line in enumerate(lines):
        body = Text(f"  {hit['start_line'] + offset + i:>5} │ ", style="dim")
        code = Text(line.expandtabs(4)[:160])
        if terms:
            code.highlight_words(terms, style="bold yellow", case_sensitive=False)
        console.print(body + code)
    console.print()


def search(
    query: Annotated[str, typer.Argument(help="What you are looking for, in words or code.")],
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 8,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Only these sources: --source a --source b, or a,b."),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option("--path", help='Only paths matching this glob: "src/*", "**/*.py", "docs".'),
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help='Only this language: "python", "py", "markdown"...')
    ] = None,
    files: Annotated[
        bool, typer.Option("--files", help="One result per file, ranked by its best evidence.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Search the index, and say how likely it holds the answer."""
    args = {
        "query": query,
        "k": k,
        "sources": [n for s in source for n in s.split(",") if n] if source else None,
        "path_glob": path,
        "language": lang,
        "files": files,
    }
    answer = execute("search", args)
    if as_json:
        print_json(answer)
        return
    hits = answer["results"]
    if answer.get("degraded"):
        console.print(
            "[yellow]Keyword results only, without confidence:[/] " + escape(answer["degraded"])
        )
    incomplete = ", ".join(escape(n) for n in answer.get("incomplete") or [])
    if not hits:
        console.print("No results. Check `contextd status`, or widen --source/--path/--lang.")
        if incomplete:
            console.print(
                f"[yellow]Not indexed whole yet:[/] {incomplete}: search again when it is."
            )
        if answer.get("pending"):
            console.print(f"{answer['pending']} chunk(s) are still being embedded.")
        return
    terms = query_terms(query)
    for rank, hit in enumerate(hits, 1):
        _print_hit(rank, hit, terms)
    console.print(_verdict_line(answer))
    if incomplete:
        console.print(
            f"[yellow]Not indexed whole yet:[/] {incomplete}; "
            "these results, and the verdict, cover only the files read so far (a running "
            "daemon finishes it; else run `contextd index`)."
        )
    if answer.get("unknown_words"):
        console.print(
            (
                "[yellow]Not in any file indexed so far:[/] "
                if incomplete
                else "[yellow]Not in any indexed file:[/] "
            )
            + ", ".join(escape(w) for w in answer["unknown_words"])
            + (
                " (search again once indexing is done)"
                if incomplete
                else " (check the spelling, or the index does not cover it)"
            )
        )
    if answer.get("pending"):
        console.print(
            f"[yellow]{answer['pending']} chunk(s) are not embedded yet[/]: they were matched "
            f"by keyword only; {embedding_next()}.",
        )


VERDICT_TEXT = {
    "found": ("green", "the answer is most likely among these results"),
    "uncertain": ("yellow", "unsure: look elsewhere too, or have a person check"),
    "not_found": ("red", "the index most likely does not contain the answer"),
}


def _verdict_line(answer: dict[str, Any]) -> Text:
    keyword_only = "confidence: none for keyword results only"
    if answer.get("lookup"):  # a fact, not an estimate: the keyword index alone shows it
        line = Text(
            f"found: these results hold '{answer['lookup']}' (definitions first)",
            style="bold green",
        )
        if answer.get("degraded"):
            line.append(f"; {keyword_only}", style="dim")
        return line
    if answer.get("degraded"):  # said above: the vectors could not be asked
        return Text(keyword_only, style="dim")
    if not answer["calibrated"]:
        return Text(
            "confidence: not calibrated for this embedding model (`contextd calibrate "
            "SOURCE` fits one from a repository's history, for searches of that source "
            "alone: --source SOURCE)",
            style="dim",
        )
    style, words = VERDICT_TEXT[answer["verdict"]]
    line = Text(f"{answer['verdict']} ", style=f"bold {style}")
    line.append(f"(answerable {answer['answerable']:.0%}): {words}", style=style)
    return line
