"""105 planted secrets through the real pipeline: never searchable, readable or stored.

A git repository with tracked and untracked files holding secrets of 30 kinds (values
drawn at test time, see tests/secrets_corpus.py) is indexed with the real model into a
real Chroma store on disk, then searched and read through the MCP tools, and every byte
under the data dir is checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from contextd import ops
from contextd.app import App
from contextd.mcp_server.backend import LocalBackend
from contextd.mcp_server.server import build_server
from tests.conftest import git, write
from tests.secrets_corpus import PlantedFile, planted_corpus

pytestmark = pytest.mark.model

KIND_QUERIES = [
    "aws secret access key",
    "private key",
    "database password",
    "github token",
    "slack webhook url",
    "stripe live secret key",
    "Authorization Bearer header",
    "client secret",
    "connection string AccountKey",
    "postgres database url",
    "REDACTED",
]


@pytest.fixture
def planted(app: App, tmp_path: Path) -> tuple[App, list[PlantedFile]]:
    root = tmp_path / "planted"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    files = planted_corpus()
    for f in files:
        write(root, f.path, f.text)
    git(root, "add", *[f.path for f in files if f.tracked])
    git(root, "commit", "-q", "-m", "services and their settings")
    assert git(root, "ls-files", "--others", "--exclude-standard").split() == sorted(
        f.path for f in files if not f.tracked
    )
    stats = app.index(app.catalog.add_source("planted", root, "git"))
    assert stats.files == len(files) and stats.skipped == 0
    return app, files


def probes(files: list[PlantedFile]) -> list[str]:
    return [p for f in files for s in f.secrets for p in s.probes]


def mcp_calls(app: App, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Structured results of MCP tool calls, through the SDK's in-memory client."""

    async def run() -> list[Any]:
        backend = LocalBackend(lambda op, args, emit: ops.run(app, op, args, emit))
        out = []
        async with Client(build_server(backend)) as client:
            for name, args in calls:
                r = await client.call_tool(name, args)
                assert not r.is_error, (name, args, r.content)
                out.append(r.structured_content)
        return out

    return anyio.run(run)


def test_no_search_or_read_returns_a_planted_secret(planted: tuple[App, list[PlantedFile]]) -> None:
    app, files = planted
    secrets = [s for f in files for s in f.secrets]
    assert len(secrets) == 105 and len({s.kind for s in secrets}) >= 15
    queries = KIND_QUERIES + [f.sentence for f in files] + [s.value[:200] for s in secrets]
    calls = [("search", {"query": q, "k": 10}) for q in queries]
    calls += [("read", {"source": "planted", "path": f.path}) for f in files]
    results = mcp_calls(app, calls)
    # Everything but the query, which a search echoes back as it was asked.
    returned = "\n".join(str({k: v for k, v in r.items() if k != "query"}) for r in results)
    assert "[REDACTED:" in returned
    leaked = [p for p in probes(files) if p in returned]
    assert leaked == [], f"{len(leaked)} secret pieces returned"
    for f, read in zip(files, results[-len(files) :], strict=True):
        assert read["total_lines"] == f.text.count("\n"), f.path
        assert read["text"].splitlines()[-1] == f"# {f.closing}"
        assert read["text"].count("[REDACTED:") >= len(f.secrets), f.path


def test_no_planted_secret_is_stored_anywhere_under_the_data_dir(
    planted: tuple[App, list[PlantedFile]], isolated_home: Path
) -> None:
    app, files = planted
    app.close()
    blobs = []
    for folder, _, names in os.walk(isolated_home):
        for name in names:
            blobs.append((Path(folder, name), Path(folder, name).read_bytes()))
    stored = {p.relative_to(isolated_home).parts[0] for p, _ in blobs}
    assert {"catalog.sqlite3", "chroma"} <= stored or any("chroma" in s for s in stored), stored
    # The walk sees stored text: every file's own words are there (in the catalog).
    for f in files:
        assert any(f.function.encode() in data for _, data in blobs), f.path
    found = [
        (str(path.relative_to(isolated_home)), probe)
        for probe in probes(files)
        for path, data in blobs
        if probe.encode() in data
    ]
    assert found == [], f"{len(found)} secret pieces stored: {found[:3]}"


def test_files_with_secrets_are_indexed_and_found_by_their_other_content(
    planted: tuple[App, list[PlantedFile]],
) -> None:
    app, files = planted
    for f in files:
        answer = ops.search(app, f.sentence, k=5)
        assert f.path in [r["path"] for r in answer["results"]], f.path
        closing = f.text.count("\n")  # the last line, after every secret of the file
        last = ops.search(app, f.closing, k=3, path_glob=f.path)["results"][0]
        assert last["start_line"] <= closing <= last["end_line"], f.path
        assert f"# {f.closing}" in last["text"]
