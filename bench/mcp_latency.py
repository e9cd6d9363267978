"""MCP over stdio against a warm daemon: launch-to-tools/list, then 200 search calls.

    python bench/mcp_latency.py GIT_DIR [--calls 200]

GIT_DIR (e.g. psf/requests; bare is fine) is cloned into a temp dir and indexed by a
daemon; then `contextd mcp` is launched as a subprocess by the SDK's stdio client.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, env_for, ms, pct, wait_idle  # noqa: E402
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

QUERIES = [
    "how are redirects followed",
    "proxy environment variables",
    "retry failed connections",
    "merge cookies into the request",
    "decode gzip content",
    "basic auth header",
    "timeout for connect and read",
    "prepare the request body",
    "stream the response",
    "verify TLS certificates",
]


async def measure(env: dict[str, str], calls: int) -> tuple[float, list[float]]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "contextd", "mcp"],
        env={k: v for k, v in env.items() if k.startswith(("CONTEXTD_", "HF_"))},
    )
    launched = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        to_list = time.perf_counter() - launched
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            r = await session.call_tool("search", {"query": QUERIES[i % len(QUERIES)], "k": 8})
            times.append(time.perf_counter() - t0)
            assert not r.isError if hasattr(r, "isError") else not r.is_error
    return to_list, times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("git_dir")
    p.add_argument("--calls", type=int, default=200)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-mcp-") as tmp:
        home, repo = Path(tmp) / "home", Path(tmp) / "repo"
        env = env_for(home)
        subprocess.run(["git", "clone", "-q", a.git_dir, str(repo)], check=True)
        cli(env, "add", str(repo), "--name", "bench", "--no-hooks")
        cli(env, "start")
        try:
            wait_idle(home, timeout=1800)
            launches = [asyncio.run(measure(env, 0))[0] for _ in range(5)]
            _, times = asyncio.run(measure(env, a.calls))
        finally:
            cli(env, "stop")
    print(
        f"launch to tools/list: median {ms(sorted(launches)[2])} over 5 launches "
        f"(max {ms(max(launches))}; target < 1 s)"
    )
    print(
        f"search over stdio, warm daemon: n={len(times)} p50 {ms(pct(times, 50))} "
        f"p95 {ms(pct(times, 95))} max {ms(max(times))} (targets 50 ms / 150 ms)"
    )


if __name__ == "__main__":
    main()
