"""Search latency against the warm daemon, with and without confidence.

    python bench/query_latency.py PATH [--queries 500] [--git]

PATH is indexed by a daemon in a temp data dir: a folder (e.g. the standard library,
`python -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])"`) or, with --git,
a repository (bare is fine) cloned into a temp dir. Then the queries go over the
daemon's socket (what `contextd search` and `contextd mcp` use), alternating with and
without confidence so both see the same machine load. Prints p50/p95/p99 of each.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, call, cli, env_for, ms, pct, wait_idle  # noqa: E402

WORDS = [
    "parse", "the", "configuration", "file", "open", "socket", "connection", "retry",
    "timeout", "decode", "unicode", "string", "encode", "json", "read", "lines", "from",
    "path", "compress", "archive", "thread", "lock", "queue", "schedule", "event", "loop",
    "format", "date", "time", "zone", "hash", "password", "random", "number", "sort", "list",
    "merge", "dictionary", "cache", "result", "error", "handler", "log", "message", "email",
    "header", "cookie", "redirect", "proxy", "certificate", "verify", "download", "upload",
]  # fmt: skip


def queries(n: int) -> list[str]:
    """Deterministic 2-5 word queries, all different (a seeded draw of the word list)."""
    rng = random.Random(0)
    out: dict[str, None] = {}
    while len(out) < n:
        out[" ".join(rng.sample(WORDS, 2 + len(out) % 4))] = None
    return list(out)


def cli_wall(env: dict[str, str], qs: list[str]) -> list[float]:
    """Wall time of the whole `contextd search` command, as typed in a terminal."""
    out = []
    for q in qs:
        t0 = time.perf_counter()
        subprocess.run([*CONTEXTD, "search", q, "-k", "5"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--cli", type=int, default=30, help="`contextd search` commands to time")
    p.add_argument("--git", action="store_true", help="PATH is a repository; clone it")
    p.add_argument("--home", type=Path, help="data dir to use and keep (reused when indexed)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-qlat-") as tmp:
        home = a.home.resolve() if a.home else Path(tmp) / "home"
        env = env_for(home)
        root = a.path
        if a.git:
            root = Path(tmp) / "clone"
            subprocess.run(["git", "clone", "-q", str(a.path), str(root)], check=True)
        if not (home / "catalog.sqlite3").exists() or a.git:
            cli(env, "add", str(root), "--name", "bench", "--no-hooks")
        started = time.perf_counter()
        cli(env, "start")
        try:
            status = wait_idle(home, timeout=3600)
            row = status["sources"][0]
            print(
                f"indexed {row['files']} files, {row['chunks']} chunks in "
                f"{time.perf_counter() - started:.0f}s",
                flush=True,
            )
            times: dict[bool, list[float]] = {True: [], False: []}
            verdicts: dict[str, int] = {}
            qs = queries(a.queries)
            for q in qs[:10]:  # warm-up: caches, first-call paths
                call(home, "search", query=q, k=8)
            for i, q in enumerate(qs):
                for confidence in (True, False) if i % 2 else (False, True):
                    t0 = time.perf_counter()
                    answer = call(home, "search", query=q, k=8, confidence=confidence)
                    times[confidence].append(time.perf_counter() - t0)
                    if confidence:
                        verdicts[answer["verdict"]] = verdicts.get(answer["verdict"], 0) + 1
            walls = cli_wall(env, qs[: a.cli])
        finally:
            cli(env, "stop")
    for confidence, label in ((True, "with confidence"), (False, "without confidence")):
        t = times[confidence]
        print(
            f"{label}: n={len(t)} p50 {ms(pct(t, 50))} p95 {ms(pct(t, 95))} p99 {ms(pct(t, 99))}",
            flush=True,
        )
    print(f"verdicts: {verdicts}")
    w, wo = times[True], times[False]
    print(
        f"summary: {a.path.name} {row['chunks']} chunks, {len(w)} queries via the daemon: "
        f"with confidence p50 {ms(pct(w, 50))} p95 {ms(pct(w, 95))} p99 {ms(pct(w, 99))}; "
        f"without p50 {ms(pct(wo, 50))} p95 {ms(pct(wo, 95))} p99 {ms(pct(wo, 99))}; "
        f"`contextd search` command wall time p50 {ms(pct(walls, 50))} "
        f"p95 {ms(pct(walls, 95))} (n={len(walls)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
