"""Time from `git commit` returning to search returning the new text, daemon running.

    python bench/freshness.py GIT_DIR [--repeats 10] [--sizes 1,10,100]

GIT_DIR (e.g. a clone of psf/requests, bare is fine) is cloned into a temp dir. For each
size, that many tracked text files get a line with a fresh unique word, are committed,
and the daemon's search is asked for the word every 20 ms until every changed file is
among the hits. The search is the daemon's own (the socket `contextd search` uses);
a terminal `contextd search` adds its process start-up on top (reported separately).
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
from _common import CONTEXTD, call, cli, env_for, git, ms, pct, wait_idle  # noqa: E402

TEXT = (".py", ".md", ".rst", ".txt", ".cfg", ".toml", ".yml", ".yaml", ".ini")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("git_dir")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--sizes", default="1,10,100")
    a = p.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="contextd-fresh-") as tmp:
        home, repo = Path(tmp) / "home", Path(tmp) / "repo"
        env = env_for(home)
        subprocess.run(["git", "clone", "-q", a.git_dir, str(repo)], check=True)
        cli(env, "add", str(repo), "--name", "bench")
        cli(env, "start")
        try:
            t0 = time.perf_counter()
            wait_idle(home, timeout=1800)
            print(f"initial index through the daemon: {time.perf_counter() - t0:.1f}s")
            tracked = subprocess.run(
                ["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True
            ).stdout.split()
            candidates = [f for f in tracked if f.endswith(TEXT)]
            results: dict[int, list[float]] = {}
            for size in [int(s) for s in a.sizes.split(",")]:
                n = min(size, len(candidates))
                for r in range(a.repeats):
                    word = f"freshprobe{size}x{r}x{rng.randrange(10**9)}"
                    files = rng.sample(candidates, n)
                    for f in files:
                        with open(repo / f, "a", encoding="utf-8") as fh:
                            fh.write(f"\n{'#' if f.endswith('.py') else ''} {word} probe\n")
                    git(repo, "add", "-A", env=env)
                    git(repo, "commit", "-q", "-m", f"probe {word}", env=env)
                    committed = time.perf_counter()
                    while True:
                        hits = call(home, "search", query=word, k=3 * n + 20)
                        found = {h["path"] for h in hits if word in h["text"]}
                        if found >= set(files):
                            break
                        if time.perf_counter() - committed > 120:
                            raise TimeoutError(f"{word}: {len(found)}/{n} files after 120 s")
                        time.sleep(0.02)
                    results.setdefault(n, []).append(time.perf_counter() - committed)
                    wait_idle(home)
            cli_times = []
            for _ in range(10):
                t0 = time.perf_counter()
                subprocess.run(
                    [*CONTEXTD, "search", "probe", "-k", "5", "--json"],
                    env=env,
                    capture_output=True,
                    check=True,
                )
                cli_times.append(time.perf_counter() - t0)
        finally:
            cli(env, "stop")
    targets = {1: "1.5 s", 10: "3 s"}
    for n, times in results.items():
        print(
            f"{n:3d} file(s): n={len(times)} p50 {ms(pct(times, 50))} p95 {ms(pct(times, 95))} "
            f"max {ms(max(times))} (target p95 {targets.get(n, 'as measured')})"
        )
    print(
        f"terminal `contextd search` wall time against the warm daemon: "
        f"median {ms(sorted(cli_times)[5])}"
    )


if __name__ == "__main__":
    main()
