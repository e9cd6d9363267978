"""Shared bench helpers: a temp data dir, the CLI, the daemon socket, percentiles."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from contextd import rpc

CONTEXTD = [sys.executable, "-m", "contextd"]


def env_for(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env |= {f"CONTEXTD_{k.upper()}": v for k, v in settings.items()}
    return env


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([*CONTEXTD, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"contextd {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )


def call(home: Path, op: str, **args: Any) -> Any:
    return rpc.call(home, op, args, timeout=None)


def wait_idle(home: Path, timeout: float = 600.0) -> dict[str, Any]:
    """Until every source is indexed, nothing is pending and the worker is not busy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = call(home, "status")
        except rpc.DaemonUnavailable:
            time.sleep(0.2)
            continue
        rows = status["sources"]
        if rows and all(
            r["indexed_at"]
            and not r["busy"]
            and not r["pending"]  # chunks waiting to be embedded
            and not r.get("queued")  # changed files waiting to be indexed
            and not r["interrupted"]
            for r in rows
        ):
            return dict(status)
        time.sleep(0.1)
    raise TimeoutError("the daemon did not become idle")


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
