"""Shared fixtures: an isolated data dir, real git repositories, one shared real model."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextd import app as app_module
from contextd.app import App
from contextd.cli import common
from contextd.embedder import SentenceTransformerEmbedder
from contextd.settings import Settings
from tests.chroma_server import Server, make_certs, start_chroma, start_gate

GATE_TOKEN = "team-token-0123456789"

_shared: dict[str, SentenceTransformerEmbedder] = {}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """CONTEXTD_HOME and HOME in temp dirs; the real home is never written."""
    home = tmp_path / "contextd-home"
    monkeypatch.setenv("CONTEXTD_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for key in list(os.environ):
        if key.startswith("CONTEXTD_") and key != "CONTEXTD_HOME":
            monkeypatch.delenv(key)
    common.reset()
    threads_before = set(threading.enumerate())
    yield home
    common.reset()
    leaked = [
        t for t in set(threading.enumerate()) - threads_before if t.is_alive() and not t.daemon
    ]
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture(autouse=True)
def shared_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the real model once per session: every App gets the same embedder per model."""

    def make(settings: Settings) -> SentenceTransformerEmbedder:
        key = f"{settings.model}|{settings.dtype}"
        if key not in _shared:
            _shared[key] = SentenceTransformerEmbedder(settings)
        return _shared[key]

    monkeypatch.setattr(app_module, "SentenceTransformerEmbedder", make)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return out.stdout


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


SAMPLE_FILES = {
    "src/shop/cart.py": '''"""Shopping cart."""


class Cart:
    def __init__(self):
        self.items = []

    def add_item(self, name, price):
        """Put an item with its price into the cart."""
        self.items.append((name, price))

    def total_price(self):
        """Sum the prices of every item in the cart."""
        return sum(price for _, price in self.items)
''',
    "src/shop/mail.py": '''import smtplib


def send_receipt_email(address, body):
    """Send the order receipt to the customer by email over SMTP."""
    with smtplib.SMTP("localhost") as smtp:
        smtp.sendmail("shop@example.com", [address], body)


def parse_address(text):
    """Split an address line into street, city and postcode."""
    street, city, postcode = [p.strip() for p in text.split(",")]
    return street, city, postcode
''',
    "web/app.js": """function renderBasket(items) {
  return items.map((item) => `<li>${item.name}</li>`).join("");
}
""",
    "docs/guide.md": """# Shop guide

## Refunds

Customers may return goods within thirty days for a full refund.
""",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with a few files committed."""
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for rel, text in SAMPLE_FILES.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def app(isolated_home: Path) -> Iterator[App]:
    a = App(Settings())
    yield a
    a.close()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `chroma run` on a free loopback port, for the whole session."""
    server = start_chroma(tmp_path_factory.mktemp("chroma-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_gate(
    chroma_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """HTTPS + `Authorization: Bearer GATE_TOKEN` in front of chroma_server: (gate, CA file)."""
    workdir = tmp_path_factory.mktemp("token-gate")
    certs = make_certs(workdir)
    gate = start_gate(workdir, chroma_server.url, GATE_TOKEN, certs)
    yield gate, certs.ca
    gate.stop()
