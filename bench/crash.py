"""kill -9 the daemon at a random point while it indexes a 1,000-file tree; restart; check.

    python bench/crash.py [--runs 20] [--files 1000]

Each run: a fresh data dir and a generated tree, a daemon indexing it, SIGKILL after a
random delay, a new daemon, and then the counts that matter: chunks lost (in the catalog,
not the store), orphaned (in the store, not the catalog), duplicated, still pending (not
embedded), and files whose indexed hash differs from disk. Indexing runs in two passes,
so each kill is classed by where it landed: pass 1 (the source still being chunked into
the catalog), pass 2 (chunks waiting for their vectors) or after both. The last line
sums every run; a non-zero count there is a bug.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, call, env_for, wait_idle  # noqa: E402

from contextd import rpc  # noqa: E402
from contextd.records import content_hash  # noqa: E402

WORDS = [
    "order",
    "invoice",
    "customer",
    "payment",
    "refund",
    "shipment",
    "parcel",
    "address",
    "tax",
    "discount",
    "cart",
    "session",
    "token",
    "cache",
    "queue",
    "retry",
    "backoff",
    "socket",
    "stream",
    "buffer",
    "parser",
    "lexer",
]


def make_tree(root: Path, n: int, rng: random.Random) -> None:
    for i in range(n):
        a, b, c = rng.sample(WORDS, 3)
        lines = [f"def {a}_{b}_{i}({c}):", f'    """Handle the {a} of a {b} with {c}."""']
        lines += [
            f"    {c} = {c} + {rng.randrange(1000)}  # {rng.choice(WORDS)}"
            for _ in range(rng.randrange(3, 30))
        ]
        path = root / f"pkg{i % 20}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + f"\n    return {c}\n")


def start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [*CONTEXTD, "daemon"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    home = Path(env["CONTEXTD_HOME"])
    deadline = time.monotonic() + 120
    while not rpc.ping(home, timeout=1) and time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"daemon exited with {proc.returncode}; see {log}")
        time.sleep(0.05)
    return proc


def where_killed(home: Path) -> tuple[str, int]:
    """(pass the kill landed in, chunks in the catalog then), read after the kill."""
    try:
        db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=5)
        n, pending = db.execute("SELECT COUNT(*), SUM(embedded = 0) FROM chunks").fetchone()
        row = db.execute("SELECT dirty, indexed_at FROM sources").fetchone()
        db.close()
    except sqlite3.Error:
        return "start", 0
    if row is None or row[0] or not row[1]:
        return "pass 1", int(n)
    return ("pass 2" if pending else "done"), int(n)


def disk_mismatch(home: Path, root: Path) -> int:
    db = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=5)
    have = dict(db.execute("SELECT path, hash FROM files WHERE status = 'indexed'").fetchall())
    db.close()
    want = {str(p.relative_to(root)): content_hash(p.read_bytes()) for p in root.rglob("*.py")}
    return len(set(want.items()) ^ set(have.items()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--min-delay", type=float, default=0.5)
    p.add_argument("--max-delay", type=float, default=25.0)
    a = p.parse_args()
    rng = random.Random(2026)
    totals = {"lost": 0, "orphan": 0, "duplicate": 0, "pending": 0, "mismatch": 0}
    phases: dict[str, int] = {}
    slowest = 0.0
    for run in range(1, a.runs + 1):
        with tempfile.TemporaryDirectory(prefix="contextd-crash-") as tmp:
            home, tree = Path(tmp) / "home", Path(tmp) / "tree"
            make_tree(tree, a.files, rng)
            env = env_for(home)
            log = Path(tmp) / "daemon.stderr"
            proc = start(env, log)
            call(home, "add", path=str(tree), name="tree")
            delay = rng.uniform(a.min_delay, a.max_delay)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            phase, at_kill = where_killed(home)
            phases[phase] = phases.get(phase, 0) + 1
            t0 = time.perf_counter()
            proc = start(env, log)
            wait_idle(home)
            recovered = time.perf_counter() - t0
            slowest = max(slowest, recovered)
            report = call(home, "verify")["tree"]
            mismatch = disk_mismatch(home, tree)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        for k in ("lost", "orphan", "duplicate", "pending"):
            totals[k] += report[k]
        totals["mismatch"] += mismatch
        print(
            f"run {run:2d}: killed after {delay:5.1f}s in {phase:6s} with {at_kill:4d} chunks "
            f"written; restarted and converged in {recovered:5.1f}s to {report['chunks']} "
            f"chunks: lost {report['lost']}, orphan {report['orphan']}, "
            f"duplicate {report['duplicate']}, pending {report['pending']}, "
            f"files differing from disk {mismatch}",
            flush=True,
        )
    landed = ", ".join(f"{n} in {k}" for k, n in sorted(phases.items()))
    print(
        f"summary: {a.runs} kill -9 runs on {a.files} files ({landed}): lost {totals['lost']}, "
        f"duplicate {totals['duplicate']}, orphan {totals['orphan']}, "
        f"pending {totals['pending']}, files differing from disk {totals['mismatch']}; "
        f"slowest restart-to-converged {slowest:.1f}s"
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
