"""Bad input: each file is skipped or indexed with a reason, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contextd.connectors import changes, open_source, scan_changes
from contextd.records import Change, ChangeKind, FileState, Skip, Touch
from tests.conftest import write

MAX = 1024 * 1024


def events(root: Path, known: dict[str, FileState] | None = None) -> dict[str, object]:
    scan = scan_changes(open_source("t", root, "folder"), known or {}, MAX)
    out: dict[str, object] = {}
    for e in scan:
        if e is not None:
            out[e.path] = e
    return out


def test_bad_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    write(root, "ok.py", "print('hi')\n")
    write(root, "empty.txt", "")
    (root / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (root / "latin.txt").write_bytes(bytes(range(128, 256)) * 40)
    (root / "huge.txt").write_bytes(b"a" * (5 * 1024 * 1024))
    write(root, ".env", "AWS_SECRET_ACCESS_KEY=abc\n")
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root, root / "self_loop")
    os.mkfifo(root / "pipe")
    (root / os.fsdecode(b"caf\xe9.py")).write_bytes(b"x = 1\n")
    write(root, "docs/logo.SVG", '<svg><path d="M0 0L10 10Z"/></svg>\n')  # icon noise
    got = events(root)
    assert isinstance(got["ok.py"], Change) and isinstance(got["empty.txt"], Change)
    reasons = {p: e.reason for p, e in got.items() if isinstance(e, Skip)}
    assert reasons["blob.bin"].startswith("binary")
    assert reasons["latin.txt"].startswith("invalid UTF-8")
    assert reasons["huge.txt"].startswith("too large")
    assert reasons[".env"].startswith("secret")
    assert reasons["loop_a"].startswith("symlink") and reasons["loop_b"].startswith("symlink")
    assert reasons["self_loop"].startswith("symlink")
    assert reasons["pipe"] == "not a regular file"
    assert reasons["caf\\xe9.py"] == "file name is not valid UTF-8"
    assert reasons["docs/logo.SVG"].startswith("drawing (SVG")


def test_a_file_with_a_few_bad_bytes_is_indexed(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "legacy.py").write_bytes(b"# caf\xe9\n" + b"x = 1\n" * 50)
    got = events(root)
    assert isinstance(got["legacy.py"], Change) and "x = 1" in got["legacy.py"].text


def test_an_unreadable_file_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "perm"
    write(root, "secret_plans.txt", "x\n")
    write(root, "fine.txt", "y\n")
    real = changes._read_regular

    def deny(path: Path, limit: int):  # root ignores chmod, so deny the read itself
        if path.name == "secret_plans.txt":
            raise PermissionError(13, "Permission denied")
        return real(path, limit)

    monkeypatch.setattr(changes, "_read_regular", deny)
    got = events(root)
    assert got["secret_plans.txt"].reason == "unreadable: Permission denied"
    assert isinstance(got["fine.txt"], Change)


def test_a_file_that_vanishes_mid_scan_is_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "vanish"
    write(root, "stays.txt", "a\n")
    write(root, "goes.txt", "b\n")
    scan = scan_changes(open_source("t", root, "folder"), {}, MAX)
    (root / "goes.txt").unlink()  # listed, then gone before it is read
    got = {e.path: e for e in scan if e is not None}
    assert "goes.txt" not in got and isinstance(got["stays.txt"], Change)


def test_stat_and_hash_decide_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "inc"
    f = write(root, "a.txt", "one\n")
    first = events(root)["a.txt"]
    assert isinstance(first, Change) and first.kind is ChangeKind.ADDED
    known = {"a.txt": FileState(first.size, first.mtime_ns, first.hash, "indexed")}
    assert events(root, known) == {}  # same stat: not even read
    os.utime(f, ns=(first.mtime_ns + 10**9, first.mtime_ns + 10**9))
    assert isinstance(events(root, known)["a.txt"], Touch)  # new stat, same content
    f.write_text("two\n")
    assert events(root, known)["a.txt"].kind is ChangeKind.MODIFIED
    f.unlink()
    assert events(root, known)["a.txt"].kind is ChangeKind.DELETED


def test_utf16_and_utf32_text_is_decoded_not_skipped_as_binary(tmp_path: Path) -> None:
    root = tmp_path / "wide"
    root.mkdir()
    text = "def wide():\n    return 'h\xe9llo'\n"
    (root / "le_bom.py").write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    (root / "be_bom.py").write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    (root / "le.py").write_bytes(text.encode("utf-16-le"))
    (root / "be.py").write_bytes(text.encode("utf-16-be"))
    (root / "utf32.py").write_bytes(b"\xff\xfe\x00\x00" + text.encode("utf-32-le"))
    (root / "broken.py").write_bytes(b"\xff\xfe" + text.encode("utf-16-le") + b"\x00\xd8")
    got = events(root)
    for name in ("le_bom.py", "be_bom.py", "le.py", "be.py", "utf32.py"):
        assert isinstance(got[name], Change) and got[name].text == text, name
    assert got["broken.py"].reason == "invalid UTF-16-LE (not text)"


def test_a_minified_one_liner_is_skipped_with_its_line_length(tmp_path: Path) -> None:
    root = tmp_path / "min"
    write(root, "bundle.min.js", "var a=1;" * 5000 + "\n")
    write(root, "long_but_fine.py", ("x = 1  # " + "y" * 300 + "\n") * 200)
    got = events(root)
    assert got["bundle.min.js"].reason.startswith("minified or generated (a line of 40,000")
    assert isinstance(got["long_but_fine.py"], Change)
