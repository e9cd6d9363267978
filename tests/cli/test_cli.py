"""The terminal commands as a person runs them, through the real entry point."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contextd.cli.main import run
from tests.conftest import git

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_index_search_sources_status_remove(repo: Path, capsys) -> None:
    code, out, _ = cli(capsys, "add", str(repo), "--name", "shop")
    assert code == 0 and "git source 'shop'" in out
    assert cli(capsys, "add", str(repo), "--name", "shop")[0] == 0  # idempotent

    code, out, _ = cli(capsys, "index", "--json")
    summary = json.loads(out)
    assert code == 0
    assert {"files", "chunks", "embedded", "cached", "seconds"} <= set(summary)
    assert summary["files"] == 4 and summary["embedded"] == summary["chunks"] > 0

    code, out, _ = cli(capsys, "search", "email the receipt", "-k", "2", "--json")
    answer = json.loads(out)
    results = answer["results"]
    assert code == 0 and len(results) == 2
    assert 0 <= answer["answerable"] <= 1 and 0 <= results[0]["confidence"] <= 1
    assert {"source", "path", "start_line", "end_line", "symbol", "score", "text"} <= set(
        results[0]
    )
    assert results[0]["path"] == "src/shop/mail.py"

    code, out, _ = cli(capsys, "search", "email the receipt", "-k", "1")
    assert code == 0 and "src/shop/mail.py:" in out and "send_receipt_email" in out
    code, out, _ = cli(capsys, "search", "email the receipt", "-k", "1", "--source", "shop,")
    assert code == 0 and "src/shop/mail.py:" in out  # a list with commas: was "No source named"
    code, _, err = cli(capsys, "search", "receipt", "--source", "shop,nope")
    assert code == 1 and "No source named 'nope'" in err
    assert "Not in any indexed file" not in out
    code, out, _ = cli(capsys, "search", "send_receipt_email", "-k", "1")
    assert "found: these results hold 'send_receipt_email' (definitions first)" in out
    assert "send_receipt_email  definition  [shop]" in out  # the fact, not an estimate
    code, out, _ = cli(capsys, "search", "does send_reciept_email retry", "-k", "1")
    assert code == 0 and "Not in any indexed file: send_reciept_email, retry" in out

    code, out, _ = cli(
        capsys, "search", "receipt", "--lang", "javascript", "--path", "web/*", "--json"
    )
    assert all(r["path"].startswith("web/") for r in json.loads(out)["results"])

    (repo / "logo.png").write_bytes(b"\x89PNG\x00")
    cli(capsys, "index", "shop")
    code, out, _ = cli(capsys, "status", "--skipped")
    assert code == 0 and "logo.png" in out and "binary" in out
    assert "1 skipped: 1 binary" in " ".join(out.split())  # a count for each reason
    assert "git hooks:" not in out
    assert cli(capsys, "hooks", "uninstall", "shop")[0] == 0  # status says they are gone
    code, out, _ = cli(capsys, "status", "--json")
    assert json.loads(out)["sources"][0]["hooks"] == []
    code, out, _ = cli(capsys, "status")
    assert "git hooks: 0 of 4 (`contextd hooks install shop` installs them)" in out

    code, out, _ = cli(capsys, "sources", "--json")
    assert json.loads(out)[0]["name"] == "shop"

    code, out, _ = cli(capsys, "remove", "shop")
    assert code == 0 and "Removed 'shop'" in out
    assert json.loads(cli(capsys, "sources", "--json")[1]) == []


def test_known_errors_are_one_line_with_the_next_step_and_exit_1(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "index", "nope")
    assert code == 1 and "No source named 'nope'" in err and "contextd sources" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = cli(capsys, "add", str(tmp_path / "missing"))
    assert code == 1 and "missing does not exist" in err


def test_a_command_kept_waiting_is_told_which_process_holds_the_data_dir(
    tmp_path: Path, capsys
) -> None:
    """With a command indexing without the daemon, `status` and `search` said "another
    command is working" and `start` sent the user to `status`: none said which."""
    home = os.environ["CONTEXTD_HOME"]
    probe = (
        "import sys, time\nfrom pathlib import Path\nfrom contextd.lock import DataDirLock\n"
        f"assert DataDirLock(Path({home!r})).acquire()\nprint('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, _, err = cli(capsys, "status")
        assert code == 1 and f"(pid {holder.pid}, `contextd`)" in err, err
        assert "Wait for it to finish" in err
        # A daemon up for ten minutes that does not answer is not "starting": stuck.
        info = {"pid": holder.pid, "started_at": time.time() - 600, "socket": "gone.sock"}
        (Path(home) / "daemon.json").write_text(json.dumps(info))
        code, _, err = cli(capsys, "status")
        assert code == 1 and "up 10 min" in err and "stuck or stopped" in err, err
    finally:
        holder.kill()
        holder.wait()


def test_a_data_dir_that_is_a_file_is_named_not_a_traceback(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "f").write_text("")
    from contextd.cli.common import reset

    for home in (tmp_path / "f", tmp_path / "f" / "below"):
        monkeypatch.setenv("CONTEXTD_HOME", str(home))
        reset()  # settings are read once per process
        for args in (["status"], ["add", str(tmp_path)], ["sources"]):
            code, _, err = cli(capsys, *args)
            assert code == 1 and f"The data dir {home} is a file" in err, (args, err)
            assert "CONTEXTD_HOME" in err and "Traceback" not in err


def test_index_into_a_file_or_pipe_prints_progress_lines(repo: Path, capsys) -> None:
    """Output redirected to a log: nothing at all until the end (160 s seen)."""
    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    code, out, err = cli(capsys, "index")
    lines = err.splitlines()
    assert code == 0 and "shop: 4 files" in out, out
    assert any(line.startswith("chunking shop: ") and " files · " in line for line in lines), err
    assert any(line.startswith("embedding: ") and " pending · " in line for line in lines), err
    assert cli(capsys, "index", "--json")[2] == ""  # JSON output stays alone


def test_the_last_embedding_line_says_done_not_an_unknown_eta() -> None:
    from contextd.cli.common import _progress_view

    report = {"phase": "embedding", "embedded": 90, "cached": 10, "embed_rate": 20.0}
    _, done, total, detail = _progress_view(report | {"pending": 100})
    assert (done, total) == (100, 200) and " · ETA 5s · " in detail
    _, done, total, detail = _progress_view(report | {"pending": 0})
    assert (done, total) == (100, 100) and " · done · " in detail and "ETA" not in detail


def test_one_file_is_one_file(tmp_path: Path, capsys) -> None:
    root = tmp_path / "one"
    root.mkdir()
    (root / "only.py").write_text("def only_one():\n    return 1\n")
    cli(capsys, "add", str(root), "--name", "one")
    assert "one: 1 file, 1 chunk (" in cli(capsys, "index")[1]
    assert "1 file, 1 chunk (1 embedded" in cli(capsys, "status")[1]
    assert "(1 file, 1 chunk)" in cli(capsys, "sources")[1]


def test_a_vanished_source_neither_stops_index_nor_lets_reindex_drop_the_rest(
    repo: Path, tmp_path: Path, capsys
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "notes.md").write_text("# Notes\n\nThe gizmo rotation policy.\n")
    cli(capsys, "add", str(repo), "--name", "shop")
    cli(capsys, "add", str(gone), "--name", "gone")
    assert cli(capsys, "index")[0] == 0
    shutil.rmtree(gone)
    (repo / "late.py").write_text("def refund_late_order():\n    return 'refunded'\n")
    code, out, err = cli(capsys, "index")  # "gone" sorts before "shop": it must not stop it
    assert code == 1 and "Source 'gone'" in err and "not a directory any more" in err
    assert "shop: " in out
    code, out, _ = cli(capsys, "search", "refund_late_order", "--json")
    assert json.loads(out)["results"][0]["path"] == "late.py"
    code, _, err = cli(capsys, "reindex")
    assert code == 1 and "Source 'gone'" in err
    assert json.loads(cli(capsys, "search", "email the receipt", "--json")[1])["results"]
    cli(capsys, "remove", "gone")
    env = {**os.environ, "CONTEXTD_MODEL": str(tmp_path / "no-such-model")}
    out = subprocess.run(  # a mistyped model must not empty the index first
        [sys.executable, "-m", "contextd", "reindex"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 1 and "names a folder that does not exist" in out.stderr
    code, out, _ = cli(capsys, "search", "email the receipt", "--json")
    assert code == 0 and json.loads(out)["results"][0]["path"] == "src/shop/mail.py"


def test_source_names_are_fit_to_type_and_hooks_take_one(repo: Path, tmp_path: Path, capsys):
    spaced = tmp_path / "My Project (old)"
    spaced.mkdir()
    code, out, _ = cli(capsys, "add", str(spaced))
    assert code == 0 and "source 'My-Project-old'" in out and "contextd index My-Project-old" in out
    code, out, _ = cli(capsys, "add", str(spaced))
    assert code == 0 and "'My-Project-old' is already a source" in out
    for bad in ("sp ace", "-x", ".hidden", "a/b"):
        code, _, err = cli(capsys, "add", str(spaced), "--name", bad)
        assert code == 1 and "cannot name a source" in err, bad
    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    assert not (repo / ".git/hooks/post-commit").exists()
    code, _, err = cli(capsys, "add", str(repo), "--name", "shop2")
    assert code == 1 and "already the source 'shop'" in err
    code, _, err = cli(capsys, "add", str(repo / "src"))  # indexed twice, found twice
    assert code == 1 and "inside the source 'shop'" in err and "--path 'src'" in err
    code, _, err = cli(capsys, "add", str(tmp_path))
    assert code == 1 and "holds the source" in err
    code, out, _ = cli(capsys, "hooks", "install", "shop")  # a source's name, or a path
    assert code == 0 and (repo / ".git/hooks/post-commit").exists()
    code, _, err = cli(capsys, "hooks", "install", "nope")
    assert code == 1 and "neither a folder nor a git source" in err
    assert cli(capsys, "hooks", "uninstall", str(repo))[0] == 0
    assert not (repo / ".git/hooks/post-commit").exists()


def test_git_s_own_folders_are_refused_as_sources(repo: Path, tmp_path: Path, capsys) -> None:
    """A bare clone was indexed as a folder: its config (and a secret header in it), its
    hooks' samples and its objects' file names (from a tester)."""
    bare = tmp_path / "shop.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    code, _, err = cli(capsys, "add", str(bare))
    assert code == 1 and "is a bare git repository" in err and f"git clone {bare} DIR" in err
    for inside in (repo / ".git", repo / ".git" / "refs"):
        code, _, err = cli(capsys, "add", str(inside))
        assert code == 1 and "inside a repository's .git folder" in err, err
    assert cli(capsys, "sources", "--json")[1].strip() == "[]"
    assert cli(capsys, "add", str(repo))[0] == 0  # the repository itself is welcome


def test_a_folder_that_cannot_be_checked_for_holding_a_source_is_refused(
    tmp_path: Path, capsys
) -> None:
    """The check failed open: with a dangling ignore file in the way, `contextd add /` was
    accepted over every other source (each file then indexed and found twice)."""
    inner = tmp_path / "outer" / "x" / "inner"
    inner.mkdir(parents=True)
    (inner / "c.py").write_text("def duplicate_wildebeest():\n    pass\n")
    assert cli(capsys, "add", str(inner))[0] == 0
    (tmp_path / "outer" / ".gitignore").symlink_to(tmp_path / "nowhere")
    code, _, err = cli(capsys, "add", str(tmp_path / "outer"))
    assert code == 1 and "Could not check whether" in err and "link to nothing" in err
    code, out, _ = cli(capsys, "sources", "--json")
    assert [s["name"] for s in json.loads(out)] == ["inner"]


def test_a_submodule_or_an_ignored_folder_inside_a_source_may_be_one(
    repo: Path, tmp_path: Path, capsys
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "vendored.py").write_text("def vendored():\n    return 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "libs/lib")
    git(repo, "commit", "-q", "-m", "submodule")
    (repo / ".gitignore").write_text("scratch/\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "notes.md").write_text("# Notes\n")
    assert cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")[0] == 0
    # Neither is indexed with the repository: each may be a source of its own.
    assert cli(capsys, "add", str(repo / "libs/lib"), "--name", "lib", "--no-hooks")[0] == 0
    assert cli(capsys, "add", str(repo / "scratch"), "--name", "scratch")[0] == 0
    code, _, err = cli(capsys, "add", str(repo / "src"))
    assert code == 1 and "inside the source 'shop'" in err


def test_a_damaged_catalog_is_named_and_doctor_repair_starts_afresh_with_the_sources(
    repo: Path, capsys
) -> None:
    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    assert cli(capsys, "index")[0] == 0
    catalog = Path(os.environ["CONTEXTD_HOME"]) / "catalog.sqlite3"
    for part in catalog.parent.glob("catalog.sqlite3*"):
        part.write_bytes(b"\x00garbage" * 4096)  # a disk that lost the file's contents
    code, _, err = cli(capsys, "search", "email the receipt")
    assert code == 1 and "is damaged" in err and "contextd doctor --repair" in err
    code, _, err = cli(capsys, "doctor")
    assert code == 1 and "is damaged" in err
    code, out, _ = cli(capsys, "doctor", "--repair")
    assert code == 0 and "1 source(s): shop" in out and "contextd reindex" in out
    assert list(catalog.parent.glob("catalog.sqlite3.damaged-*"))
    assert cli(capsys, "reindex")[0] == 0
    code, out, _ = cli(capsys, "search", "email the receipt", "--json")
    assert code == 0 and json.loads(out)["results"][0]["path"] == "src/shop/mail.py"


def test_an_unreadable_source_list_is_written_anew_or_kept_aside_and_said(
    repo: Path, capsys
) -> None:
    """A damaged sources.json was read as no sources: the next repair said "0 source(s):
    none" without a word of why, and the list was gone for good."""
    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    copy = Path(os.environ["CONTEXTD_HOME"]) / "sources.json"
    copy.write_text("{{{ first garbage")
    assert cli(capsys, "sources")[0] == 0  # a sound catalog writes its list anew
    assert json.loads(copy.read_text())[0]["name"] == "shop"
    copy.write_text("{{{ second garbage")
    catalog = copy.with_name("catalog.sqlite3")
    for part in catalog.parent.glob("catalog.sqlite3*"):
        part.write_bytes(b"\x00garbage" * 4096)
    code, out, _ = cli(capsys, "doctor", "--repair")
    assert code == 0 and "could not be read either" in out and "contextd add" in out, out
    copy.write_text("{{{ third garbage")  # and a catalog emptied to nothing beside it
    for part in catalog.parent.glob("catalog.sqlite3*"):
        part.write_bytes(b"")
    assert cli(capsys, "sources")[0] == 0
    kept = {p.read_text() for p in copy.parent.glob("sources.json.damaged-*")}
    assert kept == {f"{{{{{{ {n} garbage" for n in ("first", "second", "third")}, kept


def test_a_catalog_emptied_to_nothing_is_damage_not_a_new_catalog(repo: Path, capsys) -> None:
    """SQLite takes a 0-byte file for a new database: the sources were gone without a
    word, the next `add` overwrote the list `doctor --repair` restores from, and the
    repair then deleted the lost source's vectors as leftovers."""
    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    assert cli(capsys, "index")[0] == 0
    catalog = Path(os.environ["CONTEXTD_HOME"]) / "catalog.sqlite3"
    for part in catalog.parent.glob("catalog.sqlite3*"):
        part.write_bytes(b"")
    for args in (["search", "email the receipt"], ["add", str(repo / "src"), "--name", "x"]):
        code, _, err = cli(capsys, *args)
        assert code == 1 and "is damaged (it is empty, while sources.json" in err, err
    code, out, _ = cli(capsys, "doctor", "--repair")
    assert code == 0 and "1 source(s): shop" in out
    assert cli(capsys, "reindex")[0] == 0
    code, out, _ = cli(capsys, "search", "email the receipt", "--json")
    assert code == 0 and json.loads(out)["results"][0]["path"] == "src/shop/mail.py"


def test_doctor_finds_what_no_source_uses_and_repair_deletes_only_that(repo: Path, capsys) -> None:
    """Vectors whose source the catalog no longer names (a data dir restored from an
    older copy, a remove that died halfway) and the collection an earlier model left."""
    from contextd.settings import Settings
    from contextd.store import open_client

    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    assert cli(capsys, "index")[0] == 0
    client = open_client(Settings(home=Path(os.environ["CONTEXTD_HOME"])))
    (ours,) = [c for c in client.list_collections() if c.name.startswith("contextd-")]
    meta = {"source": "gone", "path": "a.py", "start_line": 1, "end_line": 2, "hash": "h"}
    ours.upsert(ids=["stray1", "stray2"], embeddings=[[1.0] * 384] * 2, metadatas=[meta] * 2)
    old = client.create_collection("contextd-old-model-0000", embedding_function=None)
    old.upsert(ids=["x"], embeddings=[[1.0] * 8], metadatas=[meta])
    code, out, _ = cli(capsys, "doctor")
    assert code == 0 and "ok shop" in out
    assert "2 vectors of source 'gone': no source uses" in out
    assert "collection contextd-old-model-0000 (1 vectors)" in out
    assert "contextd doctor --repair" in out
    mail = repo / "src/shop/mail.py"  # its old text's vector stays cached, unused
    mail.write_text(mail.read_text().replace("over SMTP", "over SMTP, with a retry"))
    assert cli(capsys, "index")[0] == 0
    code, out, _ = cli(capsys, "doctor")
    assert "embedding cache: 1 vectors of text no longer indexed (kept" in out
    code, out, _ = cli(capsys, "doctor", "--repair")
    assert code == 0 and "deleted" in out and "dropped" in out
    assert "embedding cache: 1 vectors of text no longer indexed: dropped" in out
    code, out, _ = cli(capsys, "doctor")
    assert "leftover" not in out and "ok shop" in out and "--repair" not in out
    assert "embedding cache" not in out
    code, out, _ = cli(capsys, "search", "email the receipt", "--json")
    assert json.loads(out)["results"][0]["path"] == "src/shop/mail.py"
    # With no source left, nothing is swept (a catalog started afresh may need it), and
    # doctor no longer says that --repair drops what --repair then keeps.
    assert cli(capsys, "remove", "shop")[0] == 0
    for args in (["doctor", "--repair"], ["doctor"]):
        code, out, _ = cli(capsys, *args)
        text = " ".join(out.split())
        assert "no longer indexed (kept while no source is added" in text, text
        assert "drops them)" not in text


def test_a_broken_setting_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CONTEXTD_BATCH_SIZE", "lots")
    code, _, err = cli(capsys, "sources")
    assert code == 1 and "CONTEXTD_BATCH_SIZE" in err and "Traceback" not in err
    monkeypatch.delenv("CONTEXTD_BATCH_SIZE")
    monkeypatch.setenv("CONTEXTD_DEVICE", "tpu")  # found now, not when the model loads
    code, _, err = cli(capsys, "sources")
    assert code == 1 and "CONTEXTD_DEVICE" in err and "use auto, cpu, cuda" in err


def test_an_empty_setting_is_unset_and_a_misspelt_one_is_named(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    """`CONTEXTD_HOME=` made the current folder the data dir (and closed it to 0700: a
    shared /tmp lost its sticky bit); `CONTEXTD_BATCHSIZE` was ignored without a word."""
    from contextd.cli import common

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)
    monkeypatch.chdir(shared)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user" / "data"))
    for name in ("CONTEXTD_HOME", "CONTEXTD_MODEL", "CONTEXTD_BATCH_SIZE", "CONTEXTD_HTTP_PORT"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("CONTEXTD_BATCHSIZE", "64")
    common.reset()
    code, _, err = cli(capsys, "sources")
    assert code == 0, err
    assert "CONTEXTD_BATCHSIZE is not a setting (ignored); did you mean CONTEXTD_BATCH_SIZE?" in err
    assert list(shared.iterdir()) == [] and shared.stat().st_mode & 0o7777 == 0o1777
    assert common.settings().home != shared and common.settings().model == "default"
    common.reset()


def test_pending_chunks_say_who_will_embed_them(repo: Path, capsys) -> None:
    """With no daemon running, "the daemon embeds them" sent the user waiting for nothing."""
    assert cli(capsys, "add", str(repo), "--name", "shop")[0] == 0
    code, out, _ = cli(capsys, "index", "--no-wait")
    assert code == 0 and "pending" in out
    hint = "no daemon is running to embed them: run `contextd index`, or `contextd start`"
    assert hint in " ".join(out.split())
    code, out, _ = cli(capsys, "search", "send the receipt by email", "-k", "2")
    assert code == 0 and "not embedded yet" in out and hint in " ".join(out.split())


def test_first_mistakes_say_what_is_wrong(tmp_path: Path, capsys, monkeypatch) -> None:
    """Messages a new user met: `add` of a path that does not exist said "is not a
    directory", `hooks install` outside a repository said to check it was "still" one,
    and `logs` before any daemon ran printed nothing."""
    (tmp_path / "notes.txt").write_text("a file\n")
    code, _, err = cli(capsys, "add", str(tmp_path / "nope"))
    assert code == 1 and "nope does not exist." in err
    code, _, err = cli(capsys, "add", str(tmp_path / "notes.txt"))
    assert code == 1 and "notes.txt is a file, not a folder." in err
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "hooks", "install")
    assert code == 1 and "is not in a git repository" in err and "hooks install REPO" in err
    code, _, err = cli(capsys, "logs")
    assert code == 0 and "No log yet at" in " ".join(err.split())


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["logs"]])
def test_a_reader_that_stops_early_ends_the_command_as_a_pipe_does(
    tmp_path: Path, args: list[str]
) -> None:
    """`contextd status | head -1` exited 1, as if the command had failed (from a tester)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "home" / "logs").mkdir(parents=True)
    (tmp_path / "home" / "logs" / "contextd.log").write_text("a line of the log\n" * 50)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        out = subprocess.run(
            [sys.executable, "-m", "contextd", *args], stdout=write, stderr=subprocess.PIPE,
            env=env, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write)
    assert out.returncode == 128 + 13 and out.stderr == "", out.stderr


def test_version(capsys) -> None:
    from contextd import __version__

    assert cli(capsys, "--version") == (0, f"contextd {__version__}\n", "")


def test_each_command_is_summed_up_in_one_line_of_the_command_list() -> None:
    import typer.main

    from contextd.cli.main import app

    group = typer.main.get_command(app)
    commands = [*group.commands.items()]  # type: ignore[attr-defined]
    commands += [(f"hooks {n}", c) for n, c in group.commands["hooks"].commands.items()]  # type: ignore[attr-defined]
    assert len(commands) >= 18 and "doctor" in dict(commands) and "hooks install" in dict(commands)
    for name, command in commands:
        summary = (command.help or "").strip().split("\n\n")[0]
        assert summary and "\n" not in summary, (name, summary)


def test_a_stopped_index_says_how_to_go_on(capsys) -> None:
    import signal

    from contextd.cli.main import _stopped

    assert _stopped(signal.SIGINT, ["index"]) == 130
    assert (
        "Interrupted. What was indexed is kept; `contextd index` goes on" in capsys.readouterr().err
    )
    assert _stopped(signal.SIGTERM, ["search"]) == 143
    assert capsys.readouterr().err.strip() == "Stopped (SIGTERM)."


def test_a_misspelt_setting_is_named_when_the_daemon_answers(monkeypatch, capsys) -> None:
    """The warning came only from commands run in-process: `search` through a running
    daemon said nothing of `CONTEXTD_BATCHSIZE`."""
    from contextd import rpc
    from contextd.cli import common
    from contextd.settings import Settings

    assert {f"CONTEXTD_{f.upper()}" for f in Settings.model_fields} == common.SETTING_NAMES
    monkeypatch.setattr(rpc, "call", lambda *a, **k: [])  # the daemon's answer: no sources
    monkeypatch.setenv("CONTEXTD_BATCHSIZE", "8")
    common.reset()
    code, out, err = cli(capsys, "sources")
    assert code == 0 and "No sources yet" in out
    assert "CONTEXTD_BATCHSIZE is not a setting (ignored); did you mean CONTEXTD_BATCH_SIZE?" in err
    assert common._settings is None  # answered without building the settings here
    common.reset()


def test_a_model_that_cannot_load_offline_says_how_to_fix_it(repo: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONTEXTD_HOME": str(tmp_path / "h"),
        "HF_HUB_OFFLINE": "1",
        "CONTEXTD_MODEL": "someone/not-a-real-model-xyz",
    }
    contextd = [sys.executable, "-m", "contextd"]
    subprocess.run([*contextd, "add", str(repo)], env=env, check=True, capture_output=True)
    out = subprocess.run([*contextd, "index"], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert "Could not load embedding model 'someone/not-a-real-model-xyz'" in out.stderr
    assert "CONTEXTD_MODEL" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_hub_model_not_on_this_machine_fails_at_once_when_the_hub_is_unreachable(
    repo: Path, tmp_path: Path
) -> None:
    """Not offline, but nothing answers: the library would retry for over a minute."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {**os.environ, "CONTEXTD_HOME": str(tmp_path / "h"), "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
        CONTEXTD_MODEL="sentence-transformers/paraphrase-MiniLM-L3-v2",
    )
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(name, None)
    contextd = [sys.executable, "-m", "contextd"]
    subprocess.run([*contextd, "add", str(repo)], env=env, check=True, capture_output=True)
    started = time.monotonic()
    out = subprocess.run([*contextd, "index"], env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    assert out.returncode == 1
    assert (
        "Embedding model 'sentence-transformers/paraphrase-MiniLM-L3-v2' is not on this "
        "machine, and the Hugging Face hub (127.0.0.1) cannot be reached" in out.stderr
    )
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert took < 45, took  # the library's own retries alone take longer

    # A model in the hub's cache that does not load says why, not "not on this machine".
    snapshot = tmp_path / "hf" / "hub" / "models--acme--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "modules.json").write_text("{not json")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    env["CONTEXTD_MODEL"] = "acme/tiny"
    out = subprocess.run([*contextd, "index"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "Could not load embedding model 'acme/tiny'" in out.stderr
    assert "not on this machine" not in out.stderr


def test_make_run_from_the_readme_indexes_and_searches_this_repository(tmp_path: Path) -> None:
    env = {**os.environ, "CONTEXTD_HOME": str(tmp_path / "h")}
    venv = Path(sys.prefix)
    out = subprocess.run(
        ["make", "-s", "run", f"VENV={venv}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    assert "contextd:" in out.stdout and "chunks" in out.stdout
    assert "1. " in out.stdout and ".py:" in out.stdout
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


@pytest.mark.parametrize("client", ["claude", "cursor", "vscode", "codex"])
def test_print_config_gives_a_snippet_ready_to_paste(client: str, capsys) -> None:
    import shlex
    import tomllib

    code, body, err = cli(capsys, "mcp", "--print-config", client)
    assert code == 0 and err.startswith("# ")  # where it goes; stdout is the file's text
    if client == "claude":
        words = shlex.split(body)
        assert words[:4] == ["claude", "mcp", "add", "contextd"] and words[-1] == "mcp"
        return
    if client == "codex":
        entry = tomllib.loads(body)["mcp_servers"]["contextd"]
    else:
        key = "mcpServers" if client == "cursor" else "servers"
        entry = json.loads(body)[key]["contextd"]
    assert Path(entry["command"]).exists() and entry["args"][-1] == "mcp"
    assert entry["env"]["CONTEXTD_HOME"] == os.environ["CONTEXTD_HOME"]
    assert cli(capsys, "mcp", "--print-config", "emacs")[0] == 1


@pytest.mark.parametrize(
    "args", [["search"], ["index", "--bogus"], ["nonsense"], ["logs", "-n", "-3"]]
)
def test_a_usage_mistake_is_exit_2_with_usage_not_an_unexpected_error(args, capsys) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert "Usage: contextd" in err and "unexpected" not in err + out


def test_a_sound_catalog_under_an_odd_path_is_not_called_damaged(tmp_path: Path) -> None:
    from contextd.catalog import Catalog, damage

    path = tmp_path / "a%20b#c?d" / "catalog.sqlite3"
    Catalog(path).close()
    assert damage(path) is None
    assert list(tmp_path.iterdir()) == [path.parent]  # nothing opened or made elsewhere


def test_a_data_dir_that_cannot_be_written_is_one_clear_line(monkeypatch, capsys) -> None:
    """A read-only data dir made every command exit 3 with a 43-line traceback from the
    lock file; a lock file that is a folder did the same."""
    import errno
    import sqlite3

    from contextd.catalog import sqlite_error

    home = Path(os.environ["CONTEXTD_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "contextd.lock").mkdir()
    code, _, err = cli(capsys, "sources")
    assert code == 1 and "is a folder, where contextd keeps its contextd.lock file" in err, err
    (home / "contextd.lock").rmdir()
    for name in ("logs", "spool", "chroma"):  # `start` exited 3, `reindex` crashed
        (home / name).write_text("")
        code, _, err = cli(capsys, "sources")
        assert code == 1 and f"{home / name} is a file, where contextd keeps its" in err
        assert "Traceback" not in err
        (home / name).unlink()
    real_open = os.open

    def read_only(path, *args, **kwargs):  # the tests run as root, whom chmod does not stop
        if str(path).endswith("contextd.lock"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    code, _, err = cli(capsys, "sources")
    assert code == 1 and f"Cannot write to the data dir {home} (Read-only file system)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    immutable = sqlite3.OperationalError("attempt to write a readonly database")
    assert "cannot be written" in str(sqlite_error(home / "catalog.sqlite3", 5, immutable))


def test_an_unusable_calibration_of_a_source_is_named_in_status(repo: Path, capsys) -> None:
    """A calibration fitted by an earlier contextd was replaced by the shipped one, and
    only the log said so: confidence changed meaning without a word to the user."""
    from contextd.confidence import source_path

    cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")
    assert cli(capsys, "index")[0] == 0
    code, out, _ = cli(capsys, "status")
    assert code == 0 and "its own calibration" not in out
    path = source_path(Path(os.environ["CONTEXTD_HOME"]), "shop")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model_id": "x", "features": ["from", "an", "old", "one"]}))
    code, out, _ = cli(capsys, "status")
    assert "its own calibration is unusable" in out and "contextd calibrate shop" in out


def test_a_daemon_that_dies_during_a_command_is_named(
    repo: Path, isolated_home: Path, capsys
) -> None:
    """A daemon killed while a command waits on it: the command says so, does again here
    what is safe to do twice, and leaves `remove` (it may be done) to the user."""
    import socket
    import threading

    from contextd import rpc

    assert cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")[0] == 0
    path = rpc.socket_path(isolated_home)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def die_on_each_request() -> None:  # takes a request, then goes away, as a kill does
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                conn.makefile("rb").readline()

    thread = threading.Thread(target=die_on_each_request)
    thread.start()
    try:
        code, out, err = cli(capsys, "sources")
        assert code == 0 and "shop" in out
        assert "the daemon stopped during sources" in err and "contextd start" in err
        code, out, err = cli(capsys, "remove", "shop")
        assert code == 1 and "may or may not be done" in err
    finally:
        thread.join(timeout=10)
        server.close()
        path.unlink(missing_ok=True)
    assert cli(capsys, "sources")[1].startswith("shop ")  # not removed behind the user's back
