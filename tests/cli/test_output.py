"""What the CLI prints from files and names is inert: no escapes, no markup taking effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.hostile_corpus import INJECTIONS
from contextd.cli.main import run
from tests.conftest import write

RAW = ("<IMPORTANT>", "<function_calls>", "<|im_start|>", "\x1b", "\x07", "\u202e", "\u200b")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_search_and_status_print_hostile_text_and_names_inertly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "notes"
    write(root, "runbook.md", "# Rotating the signing key\n\n" + "".join(INJECTIONS))
    (root / "[").mkdir()  # "[/]" in a path: the folder "[" and a file in it
    for name in ("[/]\x1b[2J.png", "[red]styled.png"):  # skipped as binary, then listed
        (root / name).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert cli(capsys, "add", str(root), "--name", "notes")[0] == 0
    assert cli(capsys, "index")[0] == 0

    for args in (("search", "rotating the signing key"), ("search", "signing key", "--json")):
        code, out = cli(capsys, *args)
        assert code == 0 and "runbook.md" in out
        for marker in RAW:
            assert marker not in out, (args, marker)
    code, out = cli(capsys, "search", "signing key", "--json")
    top = json.loads(out)["results"][0]
    assert top["path"] == "runbook.md" and "&lt;IMPORTANT&gt;" in top["text"]

    code, out = cli(capsys, "status", "--skipped")
    assert code == 0 and "notes:[/].png" in out and "notes:[red]styled.png" in out
    assert "\x1b" not in out


def test_a_name_with_a_line_break_stays_on_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file named `new\nline.md` printed its result's head over two lines, breaking the
    `path:start-end` that scripts and agents read from the terminal."""
    root = tmp_path / "odd"
    write(root, "new\nline.md", "# Zebrafish\n\nThe zebrafish tank is cleaned weekly.\n")
    (root / "tab\there.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert cli(capsys, "add", str(root), "--name", "odd")[0] == 0
    assert cli(capsys, "index")[0] == 0
    code, out = cli(capsys, "search", "zebrafish tank", "-k", "1")
    assert code == 0 and "1. new\\nline.md:1-3" in out
    code, out = cli(capsys, "search", "zebrafish tank", "-k", "1", "--json")
    assert json.loads(out)["results"][0]["path"] == "new\nline.md"  # the name itself
    code, out = cli(capsys, "status", "--skipped")
    assert code == 0 and "odd:tab\\there.png" in out
