"""Time contextd's git hooks with the daemon up, frozen (SIGSTOP) and down.

    python bench/hook_latency.py [--runs 1000]

Each hook script is run as git runs it (its own process, in the repository) `--runs`
times per state. Prints p50, p99 and max per state and hook, and every non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import call, cli, env_for, git, ms, pct  # noqa: E402

HOOK_ARGS = {
    "post-commit": [],
    "post-merge": ["0"],
    "post-checkout": ["a" * 40, "b" * 40, "1"],
    "post-rewrite": ["amend"],
}


def run_hooks(repo: Path, env: dict[str, str], runs: int) -> dict[str, tuple[list[float], int]]:
    results = {}
    for hook, args in HOOK_ARGS.items():
        path = repo / ".git" / "hooks" / hook
        times, failures = [], 0
        for _ in range(runs):
            t0 = time.perf_counter()
            code = subprocess.call([str(path), *args], cwd=repo, env=env, stdin=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            failures += code != 0
        results[hook] = (times, failures)
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-hooks-") as tmp:
        home, repo = Path(tmp) / "home", Path(tmp) / "repo"
        env = env_for(home)
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "a.py").write_text("x = 1\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "init")
        cli(env, "add", str(repo))
        cli(env, "start")
        pid = call(home, "ping")["pid"]
        report = {}
        report["up"] = run_hooks(repo, env, a.runs)
        os.kill(pid, signal.SIGSTOP)
        try:
            report["stopped"] = run_hooks(repo, env, a.runs)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(2)
        cli(env, "stop")
        report["down"] = run_hooks(repo, env, a.runs)
        time.sleep(2)  # let the last background notifiers finish before the dir goes
    worst_p99, total_fail = 0.0, 0
    for state, hooks in report.items():
        for hook, (times, failures) in hooks.items():
            p99 = pct(times, 99)
            worst_p99, total_fail = max(worst_p99, p99), total_fail + failures
            print(
                f"{state:8s} {hook:14s} n={len(times)} p50 {ms(pct(times, 50))} "
                f"p99 {ms(p99)} max {ms(max(times))} non-zero exits {failures}"
            )
    print(
        f"summary: {sum(len(t) for h in report.values() for t, _ in h.values())} hook runs, "
        f"worst p99 {ms(worst_p99)} (target < 50 ms), non-zero exits {total_fail}"
    )


if __name__ == "__main__":
    main()
