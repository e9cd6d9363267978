"""Team mode: several contextd daemons share one real Chroma server (`chroma run`).

Each daemon has its own data dir and catalog, and its own collections on the server; a
token gate over HTTPS stands in for the proxy that checks tokens in production.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contextd import ops, remote
from contextd.app import App
from contextd.cli import common
from contextd.cli.main import run
from contextd.errors import ConfigError, NamespaceTaken, StoreUnavailable
from contextd.indexers import CHUNKER_VERSION
from contextd.settings import Settings
from contextd.store import Owner, VectorStore
from tests.chroma_server import Server, free_port
from tests.conftest import GATE_TOKEN, SAMPLE_FILES, git, write
from tests.daemon_helpers import contextd, start_daemon, stop_daemon, wait_converged


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@contextmanager
def server_collections(url: str) -> Iterator[dict[str, Any]]:
    """namespace -> collection on the server, through a client of our own (no token)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(
        host=url, port=port, settings=ChromaSettings(anonymized_telemetry=False)
    )
    try:
        yield {(c.metadata or {}).get("namespace"): c for c in client.list_collections()}
    finally:
        client.close()


def server_ids(url: str, namespace: str) -> set[str]:
    """The vector ids one namespace holds on the server."""
    with server_collections(url) as cols:
        return set(cols[namespace].get(include=[])["ids"]) if namespace in cols else set()


def plant_orphan(url: str, from_ns: str, to_ns: str, chunk_id: str) -> None:
    """A vector the catalog does not know, as an interrupted run leaves: a sweep's work."""
    with server_collections(url) as cols:
        rec = cols[from_ns].get(ids=[chunk_id], include=["embeddings", "metadatas"])
        cols[to_ns].upsert(ids=rec["ids"], embeddings=rec["embeddings"], metadatas=rec["metadatas"])


def catalog_chunks(home: Path) -> int:
    db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
    finally:
        db.close()


def catalog_ids(home: Path) -> set[str]:
    db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in db.execute("SELECT id FROM chunks")}
    finally:
        db.close()


def shop_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for rel, text in SAMPLE_FILES.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


# -- settings and errors, no server needed ----------------------------------------------


def test_plain_http_to_another_machine_is_refused_unless_the_user_opts_in() -> None:
    with pytest.raises(ConfigError) as refused:
        remote.check_url(Settings(store="http://192.0.2.10:8000"))
    message = str(refused.value)
    assert "http://192.0.2.10:8000" in message and "in clear" in message
    assert "https://" in message and "CONTEXTD_STORE_ALLOW_INSECURE=1" in message
    for url in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000",
                "https://chroma.example.com", "https://10.0.0.5:8443/chroma"):  # fmt: skip
        assert remote.check_url(Settings(store=url)) == url
    allowed = Settings(store="http://192.0.2.10:8000", store_allow_insecure=True)
    assert remote.check_url(allowed) == "http://192.0.2.10:8000"


def test_the_refusal_reaches_the_terminal_and_status_names_the_store(
    repo: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("CONTEXTD_STORE", "http://192.0.2.10:8000")
    assert cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")[0] == 0
    code, _, err = cli(capsys, "index")
    assert code == 1 and "in clear" in err and "CONTEXTD_STORE_ALLOW_INSECURE=1" in err
    code, out, _ = cli(capsys, "status")
    assert code == 0
    assert "store: Chroma server http://192.0.2.10:8000" in out and "not usable" in out


def test_a_store_url_that_is_not_http_is_a_configuration_error(capsys, monkeypatch) -> None:
    monkeypatch.setenv("CONTEXTD_STORE", "chroma.example.com:8000")
    code, _, err = cli(capsys, "status")
    assert code == 1 and "CONTEXTD_STORE" in err and "http(s)://HOST:PORT" in err


def test_store_urls_are_read_as_people_write_them_and_bad_ones_refused(tmp_path: Path) -> None:
    assert Settings(store="HTTP://127.0.0.1:8000/").store == "http://127.0.0.1:8000"
    for url, said in [
        ("http://127.0.0.1:0", "from 1 to 65535"),
        ("http://127.0.0.1:abc", "from 1 to 65535"),
    ]:
        with pytest.raises(ValidationError, match=said):
            Settings(store=url)
    with pytest.raises(ValidationError, match="is not a file"):
        Settings(store="https://x.example", store_ca_file=tmp_path / "missing.pem")
    err = remote.unreachable("http://127.0.0.1", ConnectionRefusedError("refused"))
    assert "no port given, so 80; `chroma run` uses 8000" in str(err)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        remote.read_token(Settings(store="https://x.example", store_token_file=token))
    token.chmod(0o600)
    read = remote.read_token(Settings(store="https://x.example", store_token_file=token))
    assert (read.value, read.origin) == ("s3cret", str(token))
    token.write_bytes(b"\xef\xbb\xbfs3cret\r\n")  # a BOM, as some editors save it
    empty_env = Settings(store="https://x.example", store_token="", store_token_file=token)
    assert remote.read_token(empty_env).value == "s3cret"  # an empty variable is unset
    with pytest.raises(ConfigError, match="is a folder"):
        remote.read_token(Settings(store="https://x.example", store_token_file=tmp_path))


def test_the_default_namespace_is_per_user_host_and_data_dir(tmp_path: Path) -> None:
    a = Settings(home=tmp_path / "a", store="http://127.0.0.1:1").namespace
    b = Settings(home=tmp_path / "b", store="http://127.0.0.1:1").namespace
    assert a != b and a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]
    assert Settings(store_namespace="team-alice").namespace == "team-alice"


def test_an_unreachable_server_is_named_with_the_next_command(repo, capsys, monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("CONTEXTD_STORE", url)
    assert cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")[0] == 0
    code, _, err = cli(capsys, "index")
    assert code == 1
    assert f"Cannot reach the Chroma server at {url}" in err
    assert "chroma run --path DIR --host 127.0.0.1" in err and "/api/v2/heartbeat" in err


# -- a real server -------------------------------------------------------------------------


@pytest.fixture
def team_settings(token_gate, tmp_path: Path) -> Iterator[dict]:
    gate, ca = token_gate
    token_file = tmp_path / "store-token"
    token_file.write_text(GATE_TOKEN + "\n")
    token_file.chmod(0o600)
    yield {"store": gate.url, "store_ca_file": ca, "store_token_file": token_file}


@pytest.mark.model
def test_through_the_token_gate_only_the_right_token_over_trusted_tls_gets_in(
    team_settings: dict, chroma_server: Server, repo: Path, tmp_path: Path
) -> None:
    url = team_settings["store"]
    without = {k: v for k, v in team_settings.items() if k != "store_token_file"}
    attempts = {
        "no token": Settings(**without),
        "wrong token": Settings(**without, store_token="not-the-token"),
        "no CA": Settings(store=url, store_token=GATE_TOKEN),
    }
    expected = {
        "no token": "refused contextd (HTTP 401). No token is configured",
        "wrong token": "refused contextd (HTTP 401). Check the token from CONTEXTD_STORE_TOKEN",
        "no CA": "is not trusted",
    }
    for what, settings in attempts.items():
        app = App(settings)
        with pytest.raises(StoreUnavailable) as refused:
            _ = app.store
        app.close()
        assert expected[what] in str(refused.value), what
        assert url in str(refused.value)

    app = App(Settings(**team_settings))
    try:
        app.index(app.catalog.add_source("shop", repo, "git"))
        answer = ops.search(app, "give money back", k=3)
        assert answer["results"][0]["path"] == "docs/guide.md"  # no shared word: dense only
        assert not app.settings.chroma_path.exists()  # nothing embedded: it came from the server
        info = ops.store(app)
        assert info["reachable"] and info["token"] == str(team_settings["store_token_file"])
        assert ops.verify(app)["shop"]["lost"] == 0
        namespace = app.settings.namespace
    finally:
        app.close()
    # `chroma run` itself checks nothing: a client with no token reads it all. The gate is
    # what enforces the token, which is why the server listens on loopback only.
    assert len(server_ids(chroma_server.url, namespace)) > 0


@pytest.mark.model
def test_a_namespace_another_catalog_owns_is_refused_and_reindex_takes_it_over(
    chroma_server: Server, tmp_path: Path
) -> None:
    def settings(name: str) -> Settings:
        return Settings(home=tmp_path / name, store=chroma_server.url, store_namespace="shared")

    first = App(settings("first"))
    _ = first.store
    first.close()
    second = App(settings("second"))
    with pytest.raises(NamespaceTaken) as taken:
        _ = second.store
    message = str(taken.value)
    assert "CONTEXTD_STORE_NAMESPACE" in message and "contextd reindex --take-over" in message
    assert str(tmp_path / "first") in message  # whose index it is
    with pytest.raises(NamespaceTaken, match="which a reindex would delete"):
        second.reset_index()  # a plain reindex must not delete someone's live index
    first = App(settings("first"))
    _ = first.store  # still there, still the first one's
    first.close()
    second.reset_index(take_over=True)
    _ = second.store
    second.close()
    again = App(settings("first"))
    with pytest.raises(NamespaceTaken):
        _ = again.store
    again.close()


@pytest.mark.model
def test_two_daemons_sharing_one_server_never_delete_each_others_chunks(
    chroma_server: Server, tmp_path: Path
) -> None:
    """Same repository, same source name, so the same chunk ids: only the namespaces keep
    them apart. Everything A does that deletes vectors must leave B's count unchanged."""
    url = chroma_server.url
    homes = {who: tmp_path / who / "home" for who in "AB"}
    repos = {who: shop_repo(tmp_path / who / "shop") for who in "AB"}
    envs = {who: start_daemon(homes[who], store=url) for who in "AB"}
    try:
        status = {
            who: json.loads(contextd(envs[who], "status", "--json").stdout)["store"] for who in "AB"
        }
        ns = {who: status[who]["namespace"] for who in "AB"}
        assert ns["A"] != ns["B"] and all(s["reachable"] for s in status.values())
        for who in "AB":
            contextd(envs[who], "add", str(repos[who]), "--name", "shop")
            wait_converged(envs[who], "shop", repos[who])
            contextd(envs[who], "index")
        ids_a, ids_b = server_ids(url, ns["A"]), server_ids(url, ns["B"])

        def row(step: str) -> tuple[str, int, int, int]:
            """A's and B's vectors on the server, and B's own view: its chunks not there."""
            lost_b = json.loads(contextd(envs["B"], "doctor", "--json").stdout)["shop"]["lost"]
            a, b = len(server_ids(url, ns["A"])), len(server_ids(url, ns["B"]))
            print(f"{step:<36} A {a:>2} chunks · B {b:>2} chunks, {lost_b} of its own missing")
            return step, a, b, lost_b

        with server_collections(url) as cols:  # vectors and metadata cross; code does not
            sent = cols[ns["B"]].get(include=["documents"])["documents"]
        assert sent == [None] * len(ids_b)
        print()
        rows = [row("both indexed")]
        a_env, a_repo = envs["A"], repos["A"]
        git(a_repo, "rm", "-q", "src/shop/mail.py", env={**os.environ, **a_env})
        git(a_repo, "commit", "-q", "-m", "no mail", env={**os.environ, **a_env})
        wait_converged(a_env, "shop", a_repo)
        contextd(a_env, "index")
        rows.append(row("A: file deleted, full reconcile"))
        orphan = sorted(ids_b - server_ids(url, ns["A"]))[0]  # a mail.py chunk; B has it
        plant_orphan(url, ns["B"], ns["A"], orphan)
        before = json.loads(contextd(a_env, "doctor", "--json").stdout)["shop"]
        contextd(a_env, "doctor", "--repair")
        after = json.loads(contextd(a_env, "doctor", "--json").stdout)["shop"]
        rows.append(row("A: sweep deleted its orphan"))
        contextd(a_env, "reindex")
        rows.append(row("A: reindex (drops its collections)"))
        contextd(a_env, "remove", "shop")
        rows.append(row("A: remove shop"))

        assert ids_b and ids_a == ids_b  # the very same ids, in two collections
        assert len(ids_b) == catalog_chunks(homes["B"])
        assert all((b, lost) == (len(ids_b), 0) for _, _, b, lost in rows), rows
        assert server_ids(url, ns["B"]) == ids_b
        assert 0 < rows[1][1] < rows[0][1] and rows[-1][1] == 0  # A did delete its own
        assert (before["orphan"], after["orphan"]) == (1, 0)  # the sweep had work to do

        answer = json.loads(
            contextd(envs["B"], "search", "email the receipt", "-k", "1", "--json").stdout
        )
        assert answer["results"][0]["path"] == "src/shop/mail.py"  # B's copy survived
        out = contextd(a_env, "status").stdout
        assert f"store: Chroma server {url} · namespace {ns['A']}" in out and "reachable" in out
        doctor = contextd(envs["B"], "doctor").stdout
        assert "store: Chroma server" in doctor and "ok shop" in doctor and "lost 0" in doctor
    finally:
        for env in envs.values():
            stop_daemon(env)


def test_switching_stores_in_process_writes_every_chunk_from_the_cache(
    chroma_server: Server, repo: Path, capsys, monkeypatch
) -> None:
    """No daemon: `contextd index` after a switch fills the new store from the embedding
    cache, and a search right after the switch works (it opened the store inside its read
    snapshot, and the switch's catalog write failed there)."""
    assert cli(capsys, "add", str(repo), "--name", "shop", "--no-hooks")[0] == 0
    code, out, _ = cli(capsys, "index")
    assert code == 0 and "embedded" in out
    chunks = catalog_chunks(Path(os.environ["CONTEXTD_HOME"]))
    for store in (chroma_server.url, None):  # to the server, and back to embedded
        if store:
            monkeypatch.setenv("CONTEXTD_STORE", store)
            monkeypatch.setenv("CONTEXTD_STORE_NAMESPACE", "switch-in-process")
        else:
            monkeypatch.delenv("CONTEXTD_STORE")
        common.reset()  # settings are read once per process
        code, out, err = cli(capsys, "search", "email the receipt", "-k", "1", "--json")
        assert code == 0, err
        assert json.loads(out)["results"][0]["path"] == "src/shop/mail.py"
        code, out, err = cli(capsys, "index")
        # The server's namespace is new: every vector is written from the cache. The
        # embedded collection still holds them all: nothing to write back.
        written = chunks if store else 0
        assert code == 0 and f"0 embedded, {written} from the cache" in out, out + err
        code, out, _ = cli(capsys, "doctor", "--json")
        assert json.loads(out)["shop"]["lost"] == 0
    assert len(server_ids(chroma_server.url, "switch-in-process")) == chunks


def test_a_proxy_that_refuses_mid_session_is_named_not_a_bare_exception(
    chroma_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy's own answers are not Chroma's JSON, and Chroma's client raises a bare
    `Exception(body)` for them: `error: Exception: ` was all a user saw."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.token_gate import make_handler

    class Down(BaseHTTPRequestHandler):  # the proxy's upstream is gone: 502, no body
        def do_GET(self) -> None:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

    def gate(token: str) -> type[BaseHTTPRequestHandler]:  # a connection per request
        return type(
            "Gate", (make_handler(chroma_server.url, token),), {"protocol_version": "HTTP/1.0"}
        )

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), gate("old"))
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        settings = Settings(home=tmp_path, store=url, store_token="old", store_namespace="proxied")
        store = VectorStore(settings, "m", 4, CHUNKER_VERSION, Owner("me", "me@here"))
        assert store.count() == 0
        proxy.RequestHandlerClass = gate("new")  # the token was rotated at the proxy
        with pytest.raises(
            StoreUnavailable, match=r"answered with an error: unauthorized\. A proxy"
        ):
            store.count()
        proxy.RequestHandlerClass = Down
        with pytest.raises(StoreUnavailable, match="with no message.*restart the daemon"):
            store.count()

        class Frozen(BaseHTTPRequestHandler):  # up, but answering nothing (SIGSTOP)
            def do_GET(self) -> None:
                time.sleep(5)

        monkeypatch.setattr(remote, "READ_TIMEOUT_S", 0.5)
        proxy.RequestHandlerClass = gate("old")
        store = VectorStore(settings, "m", 4, CHUNKER_VERSION, Owner("me", "me@here"))
        proxy.RequestHandlerClass = Frozen
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="stopped answering"):
            store.count()
        assert time.monotonic() - started < 4
    finally:
        proxy.shutdown()


def test_a_daemon_whose_collection_vanishes_from_the_server_writes_it_back(
    chroma_server: Server, tmp_path: Path
) -> None:
    """The server's data wiped or restored: the daemon's collection is gone. It said
    `NotFoundError` to every search until restarted; now it opens the collection again
    and writes the vectors back from the embedding cache by itself."""
    url, home = chroma_server.url, tmp_path / "home"
    repo = shop_repo(tmp_path / "shop")
    env = start_daemon(home, store=url, store_namespace="vanishing")
    try:
        contextd(env, "add", str(repo), "--name", "shop", "--no-hooks")
        wait_converged(env, "shop", repo)
        before = server_ids(url, "vanishing")
        with server_collections(url) as cols:
            cols["vanishing"]._client.delete_collection(cols["vanishing"].name)
        assert server_ids(url, "vanishing") == set()
        out = contextd(env, "search", "email the receipt", "-k", "1", check=False)
        assert out.returncode == 1 and "is gone" in out.stderr and "NotFoundError" not in out.stderr
        deadline = time.monotonic() + 60
        while server_ids(url, "vanishing") != before:
            assert time.monotonic() < deadline, "the vectors never came back"
            time.sleep(0.5)
        answer = json.loads(
            contextd(env, "search", "email the receipt", "-k", "1", "--json").stdout
        )
        assert (
            answer["results"][0]["path"] == "src/shop/mail.py" and answer["results"][0]["dense"] > 0
        )
        assert "from the cache" in (home / "logs" / "contextd.log").read_text()
    finally:
        stop_daemon(env)


def test_with_the_server_gone_search_answers_from_the_keyword_index_and_says_so(
    chroma_server: Server, tmp_path: Path
) -> None:
    """The keyword index and the embedding cache are local: a search while the server is
    down still answers, marked, without a confidence that was never calibrated for it."""
    import threading
    from http.server import ThreadingHTTPServer

    from tests.token_gate import make_handler

    gate = make_handler(chroma_server.url, "t")  # a connection per request, as below
    proxy = ThreadingHTTPServer(
        ("127.0.0.1", 0), type("G", (gate,), {"protocol_version": "HTTP/1.0"})
    )
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    settings = Settings(home=tmp_path / "home", store=url, store_token="t", store_namespace="gone")
    app = App(settings)
    repo = shop_repo(tmp_path / "shop")
    try:
        app.index(app.catalog.add_source("shop", repo, "git"))
        assert ops.search(app, "email the receipt", k=1)["degraded"] is None
        proxy.shutdown()
        proxy.server_close()  # connections now refused, as with the server stopped
        answer = ops.search(app, "email the receipt", k=3)
        assert (
            answer["degraded"] and f"Cannot reach the Chroma server at {url}" in answer["degraded"]
        )
        assert answer["results"][0]["path"] == "src/shop/mail.py"
        assert (answer["calibrated"], answer["answerable"]) == (False, None)
        assert ops.status(app)["store"]["problem"]  # what the MCP status lists as a problem
        # `contextd index` makes an edit searchable by keyword, then says what is left.
        (repo / "src/shop/mail.py").write_text("def quarantine_bounced_mailbox():\n    pass\n")
        with pytest.raises(StoreUnavailable, match="searchable by keyword now; run `contextd"):
            ops.index(app)
        found = ops.search(app, "quarantine_bounced_mailbox", k=1)["results"][0]
        assert found["path"] == "src/shop/mail.py" and "quarantine" in found["text"]
        assert app.catalog.source("shop").dirty  # swept when the server answers again
        # Removing now would leave its vectors on the server for good: refused as a whole.
        with pytest.raises(StoreUnavailable, match="Cannot reach"):
            ops.remove(app, "shop")
        assert app.catalog.source("shop").name == "shop" and len(ops.sources(app)) == 1
    finally:
        app.close()


def test_a_daemon_starts_while_its_server_is_down_and_catches_up_when_it_returns(
    chroma_server: Server, tmp_path: Path
) -> None:
    """The keyword index and the embedding cache are local: the daemon starts without its
    server, searches answer from the keyword index (marked degraded), and when the server
    answers again the daemon writes the vectors back and searches are whole again."""
    import threading
    from http.server import ThreadingHTTPServer

    from tests.token_gate import make_handler

    port = free_port()
    gate = type("G", (make_handler(chroma_server.url, "t"),), {"protocol_version": "HTTP/1.0"})

    def proxy_up() -> ThreadingHTTPServer:
        proxy = ThreadingHTTPServer(("127.0.0.1", port), gate)
        proxy.daemon_threads = True
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        return proxy

    home, repo = tmp_path / "home", shop_repo(tmp_path / "shop")
    settings = {"store": f"http://127.0.0.1:{port}", "store_token": "t", "store_namespace": "late"}
    proxy = proxy_up()
    env = start_daemon(home, **settings)
    contextd(env, "add", str(repo), "--name", "shop", "--no-hooks")
    wait_converged(env, "shop", repo)
    stop_daemon(env)
    proxy.shutdown()
    proxy.server_close()

    env = start_daemon(home, **settings)  # before, "The daemon exited while starting"
    try:
        answer = json.loads(contextd(env, "search", "email the receipt", "--json").stdout)
        assert answer["degraded"] and "Cannot reach the Chroma server" in answer["degraded"]
        assert answer["results"][0]["path"] == "src/shop/mail.py"
        # An edit during the outage is searchable by keyword at once (it waited for the
        # server before); the vector of the text it replaced is deleted when it is back.
        mail = repo / "src/shop/mail.py"
        mail.write_text(mail.read_text() + "\n\ndef quarantine_bounced_mailbox():\n    pass\n")
        deadline = time.monotonic() + 30
        while True:
            query = ["search", "quarantine_bounced_mailbox", "--json"]
            answer = json.loads(contextd(env, *query).stdout)
            hits = [r for r in answer["results"] if "quarantine" in r["text"]]
            if hits:
                break
            assert time.monotonic() < deadline, "the edit never reached the keyword index"
            time.sleep(0.5)
        assert answer["degraded"] and hits[0]["path"] == "src/shop/mail.py"
        proxy = proxy_up()
        deadline = time.monotonic() + 60
        while answer["degraded"]:
            assert time.monotonic() < deadline, "the daemon never went back to its server"
            time.sleep(1)
            answer = json.loads(contextd(env, "search", "email the receipt", "--json").stdout)
        assert answer["calibrated"] and answer["results"][0]["path"] == "src/shop/mail.py"
        assert "the vector store answers again" in (home / "logs" / "contextd.log").read_text()
        wait_converged(env, "shop", repo)
        deadline = time.monotonic() + 30  # no vector of the replaced text stays behind
        while server_ids(chroma_server.url, "late") != catalog_ids(home):
            assert time.monotonic() < deadline, "the server kept vectors the catalog lacks"
            time.sleep(0.5)
    finally:
        stop_daemon(env)
        proxy.shutdown()
        proxy.server_close()


def test_a_connect_timeout_is_not_called_a_stuck_server() -> None:
    import httpx

    err = remote.unreachable("https://10.255.255.1:8000", httpx.ConnectTimeout("timed out"))
    assert "Could not connect" in str(err) and "is the host up" in str(err)
    err = remote.unreachable("https://x.example:8000", httpx.ReadTimeout("timed out"))
    assert "stopped answering" in str(err)
