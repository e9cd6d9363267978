"""The one Settings object, read from the environment (prefix CONTEXTD_) at the entry point."""

from __future__ import annotations

import difflib
import getpass
import hashlib
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contextd.errors import ConfigError
from contextd.home import default_home

DEFAULT_MODEL = "default"


NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")


def default_namespace(home: Path) -> str:
    """user-host-<6 hex of the data dir>: two data dirs of one person on one machine differ."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    host = socket.gethostname().split(".")[0]
    slug = re.sub(r"[^a-z0-9]+", "-", f"{user}-{host}".lower()).strip("-")[:40] or "contextd"
    digest = hashlib.blake2b(str(home).encode(), digest_size=3).hexdigest()
    return f"{slug}-{digest}"


class Settings(BaseSettings):
    # An empty variable is unset: `CONTEXTD_HOME=` made the current folder the data dir.
    model_config = SettingsConfigDict(
        env_prefix="CONTEXTD_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    home: Path = Field(default_factory=default_home)
    """Data dir: catalog, vector store, logs."""

    model: str = DEFAULT_MODEL
    """Embedding model: "default" (bundled all-MiniLM-L6-v2), a sentence-transformers
    name, or a local directory."""

    device: str = "auto"
    """torch device: "auto" (a CUDA GPU when torch sees one, else the CPU), "cpu", "cuda",
    "cuda:1", "mps", "xpu"."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    batch_size: int = Field(default=32, ge=1, le=4096)
    chunk_threads: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=64)
    """Threads chunking files while the catalog is written (the tokenizer frees the GIL)."""

    max_file_bytes: int = Field(default=1024 * 1024, ge=1)
    parse_timeout_s: float = Field(default=5.0, gt=0)

    settle_ms: int = Field(default=200, ge=0, le=60_000)
    """Quiet period after a file event before the daemon indexes."""
    reconcile_interval_s: float = Field(default=300.0, gt=0)
    """Full reconcile scan period, catching anything events missed."""
    watch: Literal["auto", "polling"] = "auto"
    polling_interval_s: float = Field(default=2.0, gt=0)

    http_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve MCP over streamable HTTP from the daemon on this port (off when unset)."""
    http_host: str = "127.0.0.1"
    http_max_body: int = Field(default=1024 * 1024, ge=1024)

    store: str | None = None
    """A Chroma server (http(s)://host:port[/prefix]) holding the vectors instead of the
    embedded store in the data dir: team mode. Unset: embedded."""
    store_token: SecretStr | None = None
    """Sent as `Authorization: Bearer <token>`; else read from store_token_file."""
    store_token_file: Path | None = None
    """Default: $CONTEXTD_HOME/store-token when it exists (mode 0600)."""
    store_namespace: str | None = None
    """This daemon's collections on the server; default user-host-<data dir digest>."""
    store_allow_insecure: bool = False
    """Allow plain http:// to a non-loopback server (token and code cross in clear)."""
    store_ca_file: Path | None = None
    """CA certificate(s) to verify an https:// server with (a private CA)."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|xpu|cuda(:[0-9]+)?", value):
            raise ValueError(f"'{value}' is not a device: use auto, cpu, cuda, cuda:N, mps or xpu")
        return value

    @field_validator("http_host")
    @classmethod
    def _http_host(cls, value: str) -> str:
        if value.strip("[]") in ("0.0.0.0", "::", ""):
            raise ValueError(
                "give the one address clients will use (e.g. 192.168.1.20): the endpoint "
                "checks the Host header against it, and every interface is not a name"
            )
        return value

    @field_validator("home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("store_token_file", "store_ca_file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("store_ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file (give the CA certificate, PEM)")
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip().rstrip("/"))
        parts = parts._replace(scheme=parts.scheme.lower())  # HTTP:// is http://
        url = parts.geturl()
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("give the Chroma server as http(s)://HOST:PORT")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                "no user, password, query or fragment in the URL "
                "(the token has its own setting, CONTEXTD_STORE_TOKEN)"
            )
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("the port is not a number from 1 to 65535")
        return url

    @field_validator("store_namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not NAMESPACE_RE.fullmatch(value):
            raise ValueError(
                "use 1-48 letters, digits, '-' or '_', starting with a letter or digit"
            )
        return value

    @property
    def namespace(self) -> str:
        """Which of the server's collections are this daemon's (team mode)."""
        return self.store_namespace or default_namespace(self.home)

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite3"

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "contextd.log"

    @property
    def spool_path(self) -> Path:
        return self.home / "spool"

    @property
    def default_token_path(self) -> Path:
        return self.home / "store-token"


def misspelt_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """`CONTEXTD_X is not a setting; did you mean CONTEXTD_Y?` for each variable whose
    name is close to a setting's but not one (it would be ignored without a word)."""
    names = [f"CONTEXTD_{f.upper()}" for f in Settings.model_fields]
    out = []
    for key in sorted(os.environ if environ is None else environ):
        if key.startswith("CONTEXTD_") and key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.85)
            if close:
                out.append(f"{key} is not a setting (ignored); did you mean {close[0]}?")
    return out


def load_settings() -> Settings:
    """Build Settings from the environment, turning validation errors into one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CONTEXTD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"Invalid configuration ({problems}). Fix or unset it.") from None
