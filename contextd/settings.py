"""The one Settings object, read from the environment (prefix CONTEXTD_) at the entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contextd.errors import ConfigError
from contextd.home import default_home

DEFAULT_MODEL = "default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=default_home)
    """Data dir: catalog, vector store, logs."""

    model: str = DEFAULT_MODEL
    """Embedding model: "default" (bundled all-MiniLM-L6-v2), a sentence-transformers
    name, or a local directory."""

    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    batch_size: int = Field(default=64, ge=1, le=4096)
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

    http_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve MCP over streamable HTTP from the daemon on this port (off when unset)."""
    http_host: str = "127.0.0.1"
    http_max_body: int = Field(default=1024 * 1024, ge=1024)

    @field_validator("home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

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
