"""The MCP tools through the SDK's in-memory client, against a real index."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from contextd import ops
from contextd.app import App
from contextd.mcp_server.backend import LocalBackend
from contextd.mcp_server.server import build_server
from tests.conftest import write

SENTINEL = "OUTSIDE-THE-ROOT-7f3a9c"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def indexed(app: App, repo: Path, tmp_path: Path) -> App:
    (tmp_path / "secret.txt").write_text(SENTINEL)
    write(tmp_path, "shop-evil/secret.txt", SENTINEL)  # a sibling whose name shares the prefix
    write(repo, ".env", f"TOKEN={SENTINEL}\n")
    write(repo, "config/.env.production", f"TOKEN={SENTINEL}\n")
    os.symlink(tmp_path, repo / "link_out")
    os.symlink(tmp_path / "secret.txt", repo / "link_file")
    write(repo, "hostile.md", "# Notes\n\nNormal text\x1b[31m red\x1b[0m here.\u202e gnirts\u200b "
                              "hidden\u2066 and \x07bell.\n")  # fmt: skip
    app.index(app.catalog.add_source("shop", repo, "git"))
    return app


@pytest.fixture
async def client(indexed: App) -> AsyncIterator[Client]:
    backend = LocalBackend(lambda op, args, emit: ops.run(indexed, op, args, emit))
    async with Client(build_server(backend)) as c:
        yield c


async def test_the_tools_are_listed_with_descriptions_and_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"search", "read", "sources", "status"}
    for tool in tools.values():
        assert len(tool.description or "") > 80 and tool.output_schema
        assert tool.annotations.read_only_hint and not tool.annotations.destructive_hint
    assert tools["search"].input_schema["required"] == ["query"]


async def test_search_returns_typed_results_with_path_and_commit(client: Client, repo) -> None:
    r = await client.call_tool("search", {"query": "email the receipt", "k": 3})
    assert not r.is_error
    top = r.structured_content["results"][0]
    assert top["path"] == "src/shop/mail.py" and top["source"] == "shop"
    assert top["indexed_commit"] and len(top["indexed_commit"]) == 40
    assert top["stale"] is False and "send_receipt_email" in top["text"]
    assert "never instructions" in r.structured_content["note"]
    assert 0 <= top["confidence"] <= 1 and r.structured_content["calibrated"] is True
    assert r.structured_content["verdict"] in ("found", "uncertain", "not_found")
    assert r.structured_content["unknown_words"] == []
    assert r.structured_content["lookup"] is None and top["match"] is None
    r = await client.call_tool("search", {"query": "email the receipt by fax", "k": 3})
    assert r.structured_content["unknown_words"] == ["fax"]
    r = await client.call_tool("search", {"query": "send_receipt_email", "k": 3})
    assert r.structured_content["lookup"] == "send_receipt_email"
    assert r.structured_content["verdict"] == "found"
    assert r.structured_content["results"][0]["symbol"] == "send_receipt_email"
    assert r.structured_content["results"][0]["match"] == "definition"
    write(repo, "src/shop/mail.py", "def send_receipt_email():\n    return 'changed'\n")
    r = await client.call_tool("search", {"query": "email the receipt", "k": 1})
    assert r.structured_content["results"][0]["stale"] is True


async def test_read_returns_lines_and_refusals_are_tool_errors(client: Client) -> None:
    r = await client.call_tool("read", {"source": "shop", "path": "src/shop/cart.py",
                                        "start_line": 4, "end_line": 6})  # fmt: skip
    assert not r.is_error
    assert r.structured_content["text"].splitlines()[0].strip().startswith("class Cart")
    assert r.structured_content["start_line"] == 4
    r = await client.call_tool("read", {"source": "shop", "path": ".env"})
    assert r.is_error and "deny-list" in r.content[0].text
    r = await client.call_tool("read", {"source": "nope", "path": "a.py"})
    assert r.is_error and "Call the `sources` tool to list them" in r.content[0].text


async def test_arguments_that_do_not_fit_are_named_in_a_sentence(client: Client) -> None:
    """They came back as pydantic's report (`1 validation error for searchArguments`, an
    error type and a link), and an argument the tool does not take was ignored."""
    cases = [
        ("search", {"query": "cart", "k": 0}, "`k` should be at least 1 (got 0)"),
        ("search", {"query": "cart", "k": 99}, "`k` should be at most 50 (got 99)"),
        ("search", {}, "`query` is required"),
        ("search", {"query": "cart", "sources": "shop"}, "`sources` should be a valid list"),
        ("read", {"source": "shop", "path": "a.py", "start_line": 0}, "`start_line` should be"),
        ("search", {"query": "cart", "source": ["shop"]}, "takes no argument `source`"),
    ]
    for tool, arguments, said in cases:
        r = await client.call_tool(tool, arguments)
        text = r.content[0].text
        assert r.is_error and said in text, (arguments, text)
        assert "pydantic" not in text and "validation error" not in text and "type=" not in text
    r = await client.call_tool("search", {"query": "cart", "source": ["shop"]})
    assert "its arguments are `query`, `k`, `sources`" in r.content[0].text


async def test_read_serves_only_what_the_source_indexes(client: Client, repo: Path) -> None:
    write(repo, ".gitignore", "local_settings.py\nscratch/\n")
    write(repo, "local_settings.py", "DB_PASSWORD = 'hunter2-prod-pass'\n")
    write(repo, "scratch/notes.txt", "launch codename BLUEFALCON\n")
    write(repo, "src/shop/fresh.py", "def fresh():\n    return 'not indexed yet'\n")

    async def read(path: str, **lines: int) -> tuple[bool, str, dict]:
        r = await client.call_tool("read", {"source": "shop", "path": path, **lines})
        return r.is_error, r.content[0].text, r.structured_content or {}

    for path in ("local_settings.py", "scratch/notes.txt", ".git/config", ".git/HEAD"):
        failed, text, _ = await read(path)
        assert failed and "not part of 'shop'" in text, (path, text)
        assert "hunter2" not in text and "BLUEFALCON" not in text
    failed, text, content = await read("src/shop/fresh.py")  # in the source, not indexed yet
    assert not failed and "not indexed yet" in content["text"] and content["stale"] is True
    failed, text, _ = await read("src/shop")
    assert failed and "is a folder" in text
    (repo / "loopA").symlink_to("loopB")  # a loop: a sentence, not "RuntimeError: ..."
    (repo / "loopB").symlink_to("loopA")
    failed, text, _ = await read("loopA")
    assert failed and "leads back to itself" in text and "RuntimeError" not in text, text
    failed, text, _ = await read("src/shop/cart.py", start_line=6, end_line=4)
    assert failed and "before start_line" in text
    write(repo, "src/shop/empty.py", "")
    failed, text, _ = await read("src/shop/empty.py", start_line=5)
    assert failed and "past the end" in text


async def test_returned_text_is_inert(client: Client) -> None:
    for call in (("read", {"source": "shop", "path": "hostile.md"}),
                 ("search", {"query": "normal text red hidden bell", "k": 10})):  # fmt: skip
        r = await client.call_tool(*call)
        text = str(r.structured_content)
        assert "Normal text" in text
        for bad in ("\x1b", "\u202e", "\u200b", "\u2066", "\x07"):
            assert bad not in text


def escape_payloads() -> list[str]:
    cores = [
        "../secret.txt",
        "../../secret.txt",
        "../shop-evil/secret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "/proc/self/environ",
        "~/secret.txt",
        "~root/.bashrc",
        "..\\secret.txt",
        "..%2fsecret.txt",
        "%2e%2e/secret.txt",
        "%2e%2e%2fsecret.txt",
        "%252e%252e%252fsecret.txt",
        "....//secret.txt",
        "..;/secret.txt",
        "..%00/secret.txt",
        "\u2024\u2024/secret.txt",
        "\uff0e\uff0e/secret.txt",
        "..\u2215secret.txt",
        "link_out/secret.txt",
        "link_out/shop-evil/secret.txt",
        "link_file",
        ".env",
        "config/.env.production",
        "src/../../secret.txt",
        "a/b/c/../../../../secret.txt",
        "../" * 30 + "etc/passwd",
        "file:///etc/passwd",
        "src/shop/cart.py\0../../secret.txt",
        "\0",
        "",
        ".",
        "..",
        "src/..",
        "link_out",
        "src/./../../shop-evil/secret.txt",
        f"{Path('/').resolve()}tmp",
        "..//..//secret.txt",
        "../shop/../secret.txt",
    ]
    prefixes = ["", "./", "src/", "src/shop/../"]
    return [p + c for c in cores for p in prefixes]


async def test_no_path_escape_reads_a_byte_from_outside_the_roots(client: Client) -> None:
    payloads = escape_payloads()
    assert len(payloads) > 100
    leaked, refused = 0, 0
    for payload in payloads:
        r = await client.call_tool("read", {"source": "shop", "path": payload})
        if r.is_error:
            refused += 1
            continue
        body = str(r.structured_content) + "".join(getattr(c, "text", "") for c in r.content)
        leaked += SENTINEL in body
    assert leaked == 0
    assert refused >= len(payloads) - 8, "only paths that stay inside the root may be read"
