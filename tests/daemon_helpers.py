"""Driving a real daemon process from tests: start, CLI calls, convergence checks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from contextd.connectors.filters import is_temp_file, secret_reason
from contextd.records import content_hash
from tests.conftest import git

CONTEXTD = [sys.executable, "-m", "contextd"]


def contextd(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([*CONTEXTD, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"contextd {' '.join(args)} -> {out.returncode}\n{out.stderr}")
    return out


def start_daemon(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "CONTEXTD_RECONCILE_INTERVAL_S": "3600"}  # fmt: skip
    env |= {f"CONTEXTD_{k.upper()}": v for k, v in settings.items()}
    contextd(env, "start")
    return env


def stop_daemon(env: dict[str, str]) -> None:
    """Stop it, and fail if it did not stop cleanly (a traceback after "daemon stopping")."""
    contextd(env, "stop", check=False)
    log = Path(env["CONTEXTD_HOME"]) / "logs" / "contextd.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    tail = text[text.rfind("daemon stopping") :] if "daemon stopping" in text else ""
    assert "Traceback" not in tail, f"the daemon failed while stopping:\n{tail[-3000:]}"


def working_tree(root: Path) -> dict[str, str]:
    """What should be indexed: git's file set as it is on disk now."""
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    out = {}
    for rel in filter(None, listed.split("\0")):
        path = root / rel
        if (
            path.is_file()
            and not path.is_symlink()
            and not secret_reason(rel)
            and not is_temp_file(path.name)
        ):
            out[rel] = content_hash(path.read_bytes())
    return out


def pending(home: Path, source: str) -> int:
    """Chunks of a source still waiting to be embedded."""
    db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(
            "SELECT COUNT(*) FROM chunks WHERE source = ? AND embedded = 0", (source,)
        ).fetchone()
    finally:
        db.close()
    return int(row[0])


def indexed(home: Path, source: str) -> dict[str, str]:
    db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT path, hash FROM files WHERE source = ? AND status = 'indexed'", (source,)
        ).fetchall()
    finally:
        db.close()
    return dict(rows)


def wait_converged(env: dict[str, str], source: str, root: Path, timeout: float = 45.0) -> float:
    """Seconds until the index equals the working tree, every chunk embedded; fails with
    the difference."""
    home = Path(env["CONTEXTD_HOME"])
    started = time.monotonic()
    while True:
        want, have = working_tree(root), indexed(home, source)
        if want == have and not pending(home, source):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            stale = sorted(p for p in set(want) & set(have) if want[p] != have[p])
            raise AssertionError(
                f"not converged: missing {missing}, extra {extra}, stale {stale}, "
                f"{pending(home, source)} chunk(s) not embedded"
            )
        time.sleep(0.1)
