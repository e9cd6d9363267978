from __future__ import annotations

from pathlib import Path

from contextd.connectors.base import detect_kind, open_source
from contextd.connectors.filters import secret_reason
from tests.conftest import git, write


def test_a_git_source_lists_tracked_and_untracked_files_but_not_ignored(repo: Path) -> None:
    write(repo, ".gitignore", "*.log\nbuild/\n")
    write(repo, "new_module.py", "x = 1\n")
    write(repo, "debug.log", "noise\n")
    write(repo, "build/out.py", "y = 2\n")
    git(repo, "rm", "-q", "--cached", "web/app.js")
    src = open_source("shop", repo, detect_kind(repo))
    paths = set(src.scan())
    assert src.kind == "git"
    assert {"src/shop/cart.py", "new_module.py", "web/app.js", ".gitignore"} <= paths
    assert "debug.log" not in paths and "build/out.py" not in paths


def test_a_folder_source_honours_builtin_ignores_and_ignore_files(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    write(root, "a.md", "# A\n")
    write(root, "node_modules/pkg/index.js", "x\n")
    write(root, ".venv/lib/site.py", "x\n")
    write(root, ".gitignore", "*.tmp\n")
    write(root, "draft.tmp", "x\n")
    write(root, "sub/.contextdignore", "private/\n")
    write(root, "sub/private/plan.md", "x\n")
    write(root, "sub/public/plan.md", "x\n")
    src = open_source("notes", root, detect_kind(root))
    paths = set(src.scan())
    assert src.kind == "folder"
    assert {"a.md", "sub/public/plan.md"} <= paths
    assert (
        not {"node_modules/pkg/index.js", ".venv/lib/site.py", "draft.tmp", "sub/private/plan.md"}
        & paths
    )


def test_a_folder_named_like_build_output_is_listed_as_skipped_and_env_only_if_a_venv(
    app, tmp_path: Path
) -> None:
    """A folder source dropped `pip/_internal/operations/build/*.py` and any `env/` without
    a word (the scale review): a real virtualenv is still left out, a package named `env`
    is indexed, and a `build` folder is skipped but listed with its reason."""
    root = tmp_path / "mono"
    write(root, "tools/build/wheel.py", "def build_wheel():\n    pass\n")
    write(root, "src/env/settings.py", "def load_env():\n    pass\n")
    write(root, "venv/pyvenv.cfg", "home = /usr/bin\n")
    write(root, "venv/lib/site.py", "x = 1\n")
    write(root, "env/conda-meta/history", "==> 2024 <==\n")  # conda, and an older virtualenv
    write(root, "env/lib/site.py", "x = 1\n")
    write(root, "old/venv/bin/activate", "# activate\n")
    write(root, "old/venv/lib/site.py", "x = 1\n")
    write(root, "dist/app.min.js", "var a=1;\n")
    src = open_source("mono", root, detect_kind(root))
    paths = set(src.scan())
    assert "src/env/settings.py" in paths and src.includes("src/env/settings.py")
    for env in ("venv", "env", "old/venv"):
        assert f"{env}/lib/site.py" not in paths and not src.includes(f"{env}/lib/site.py")
    assert "tools/build/wheel.py" not in paths and not src.includes("tools/build/wheel.py")
    app.index(app.catalog.add_source("mono", root, "folder"))
    skipped = {path: reason for _, path, reason in app.catalog.skipped()}
    assert "build output" in skipped["tools/build"] and "build output" in skipped["dist"]
    assert "src/env/settings.py" in app.catalog.file_states("mono")


def test_an_ignore_file_that_cannot_be_read_stops_the_scan(tmp_path: Path) -> None:
    """Read as empty before: what it meant to keep out was indexed, without a word."""
    import pytest

    from contextd.errors import SourceError

    root = tmp_path / "notes"
    write(root, "a/secret-plan.md", "x\n")
    (root / ".contextdignore").mkdir()
    src = open_source("notes", root, detect_kind(root))
    with pytest.raises(SourceError, match=r"\.contextdignore cannot be read .*fix it or remove"):
        set(src.scan())
    (root / ".contextdignore").rmdir()
    (root / ".contextdignore").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SourceError, match="it is a link to nothing"):
        set(src.scan())
    (root / ".contextdignore").unlink()
    write(root, ".contextdignore", "a/\n")
    assert set(src.scan()) == {".contextdignore"}
    # Above the source, outside any work tree (a broken ~/.gitignore): passed over.
    (tmp_path / ".gitignore").symlink_to(tmp_path / "nowhere")
    assert set(src.scan()) == {".contextdignore"}


def test_a_folder_whose_ignore_file_cannot_be_read_is_skipped_and_the_rest_indexed(
    app, tmp_path: Path
) -> None:
    """One dangling `.gitignore` link in a subfolder stopped the whole source: nothing was
    indexed, while the message named only that folder. Now that folder alone is left
    out (its rules may keep secrets out), with the reason, and the rest is indexed."""
    root = tmp_path / "dang"
    write(root, "a.py", "def gnu_antelope():\n    return 1\n")
    write(root, "sub/plan.md", "# Plan\n\nkept out by the rules we cannot read\n")
    (root / "sub" / ".gitignore").symlink_to(tmp_path / "nowhere")
    src = open_source("dang", root, detect_kind(root))
    assert set(src.scan()) == {"a.py", "sub"}
    assert src.includes("a.py") and not src.includes("sub/plan.md")
    app.index(app.catalog.add_source("dang", root, "folder"))
    states = app.catalog.file_states("dang")
    assert {p for p, st in states.items() if st.status == "indexed"} == {"a.py"}
    skipped = {path: reason for _, path, reason in app.catalog.skipped()}
    assert skipped["sub"].startswith("its .gitignore cannot be read (it is a link to nothing)")


def test_the_deny_list_names_secrets_by_file_and_folder() -> None:
    for path in [
        ".env",
        ".env.local",
        "config/.env.production",
        "certs/server.pem",
        "tls.key",
        "home/.ssh/config",
        "id_rsa",
        "id_ed25519.pub",
        "store.p12",
        ".npmrc",
        ".pypirc",
        ".netrc",
        "gcp/credentials-prod.json",
        "infra/terraform.tfstate",
        ".aws/config",
        ".pgpass",
        "web/.htpasswd",
        "deploy/server.ppk",
        "infra/prod.tfvars",
        "infra/terraform.tfvars.json",
        ".my.cnf",
        "config/.env/production",  # a folder named as a secret file
        ".envs/.production/.postgres",  # cookiecutter-django's layout
        "certs/server.key.bak",
        "prod.env.orig",
        "deploy/id_rsa~",
    ]:
        assert secret_reason(path), path
    for path in ["src/environment.py", "keys.py", "docs/env.md", "monkey.txt", "env/lib.py"]:
        assert secret_reason(path) is None, path
    for path in ["notes.bak", "src/old/x.py.orig", "backup/.bak"]:
        assert secret_reason(path) is None, path


def test_an_allow_list_ignore_file_keeps_matching_files_in_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "allow"
    write(root, ".contextdignore", "*\n!*/\n!*.py\n")
    write(root, "top.py", "x = 1\n")
    write(root, "pkg/deep/mod.py", "y = 2\n")
    write(root, "pkg/notes.txt", "no\n")
    paths = set(open_source("allow", root, "folder").scan())
    assert paths == {"top.py", "pkg/deep/mod.py"}


def test_a_folder_decides_one_file_as_its_scan_does(tmp_path: Path) -> None:
    """`includes` (for reading one file) walks only that file's folders; it must agree
    with the full scan on every file there is, nested ignore files and negations too."""
    files = {
        ".gitignore": "*.log\nbuild/\n",
        "keep.py": "",
        "a.log": "",
        "build/out.py": "",
        "node_modules/x.js": "",
        "sub/.contextdignore": "secret.txt\n",
        "sub/secret.txt": "",
        "sub/deep/a.py": "",
        "sub/deep/b.log": "",
        "docs/.gitignore": "*\n!*/\n!*.md\n",
        "docs/a.md": "",
        "docs/b.txt": "",
        "docs/inner/c.md": "",
        "docs/inner/d.py": "",
    }
    for rel, text in files.items():
        write(tmp_path, rel, text)
    source = open_source("f", tmp_path, "folder")
    listed = set(source.scan())
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"keep.py", "sub/deep/a.py", "docs/a.md", "docs/inner/c.md"} <= listed
    for rel in on_disk:
        assert source.includes(rel) == (rel in listed), rel


def test_a_folder_inside_a_repository_honours_what_git_ignores_there(repo: Path) -> None:
    """`contextd add mono/pkg`: a folder source, but git's rules from above still apply
    (the repository's .gitignore files and .git/info/exclude), as `git ls-files` says."""
    write(repo, ".gitignore", "*.generated.py\nsecret_build/\n")
    write(repo, "pkg/.gitignore", "*.log\n")
    (repo / ".git/info").mkdir(exist_ok=True)
    (repo / ".git/info/exclude").write_text("scratch.txt\n")
    for rel in ("pkg/a.py", "pkg/a.generated.py", "pkg/secret_build/b.py", "pkg/x.log",
                "pkg/scratch.txt", "pkg/sub/c.py", "pkg/sub/d.generated.py"):  # fmt: skip
        write(repo, rel, "x = 1\n")
    source = open_source("pkg", repo / "pkg", detect_kind(repo / "pkg"))
    assert source.kind == "folder"
    listed = set(source.scan())
    by_git = git(repo / "pkg", "ls-files", "--others", "--exclude-standard").split()
    assert listed == set(by_git) | {".gitignore"} == {".gitignore", "a.py", "sub/c.py"}
    files = [p for p in (repo / "pkg").rglob("*") if p.is_file()]
    on_disk = {p.relative_to(repo / "pkg").as_posix() for p in files}
    assert {p for p in on_disk if source.includes(p)} == listed

    # A folder git ignores, added on purpose, is taken whole (its own rules still apply).
    write(repo, "pkg/secret_build/.gitignore", "*.tmp\n")
    write(repo, "pkg/secret_build/e.tmp", "x\n")
    ignored = open_source("b", repo / "pkg/secret_build", "folder")
    assert set(ignored.scan()) == {".gitignore", "b.py"}


def test_a_folder_outside_any_repository_ignores_the_ignore_files_above_it(tmp_path: Path):
    write(tmp_path, ".gitignore", "*.py\n")  # a stray file in a parent: not a repository's
    write(tmp_path, "notes/a.py", "x = 1\n")
    assert set(open_source("n", tmp_path / "notes", "folder").scan()) == {"a.py"}


def test_git_weighs_ignore_files_as_git_does_for_a_folder_in_a_repository(repo: Path) -> None:
    """The deepest matching pattern decides (a `!` below re-includes what a rule above
    ignores), and a folder whose contents git ignores (`pkg/*`) was added on purpose."""
    write(repo, ".gitignore", "*.json\nvendored/*\n")
    write(repo, "pkg/.gitignore", "!package.json\n")
    for rel in ("pkg/package.json", "pkg/other.json", "pkg/a.py", "vendored/lib.py"):
        write(repo, rel, "{}\n")
    listed = set(open_source("pkg", repo / "pkg", "folder").scan())
    by_git = git(repo / "pkg", "ls-files", "--others", "--exclude-standard").split()
    assert listed == set(by_git) == {".gitignore", "package.json", "a.py"}
    assert set(open_source("v", repo / "vendored", "folder").scan()) == {"lib.py"}


def test_a_folder_in_a_worktree_honours_the_repositorys_info_exclude(repo: Path, tmp_path):
    (repo / ".git/info").mkdir(exist_ok=True)
    (repo / ".git/info/exclude").write_text("scratch.py\n")
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "wt-branch")
    write(worktree, "pkg/scratch.py", "x = 1\n")
    write(worktree, "pkg/kept.py", "x = 1\n")
    assert set(open_source("p", worktree / "pkg", "folder").scan()) == {"kept.py"}
