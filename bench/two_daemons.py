"""A second daemon on the same data dir must refuse at once. Runs it 10 times."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, cli, env_for  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="contextd-two-") as tmp:
        env = env_for(Path(tmp) / "home")
        cli(env, "start")
        times, codes, message = [], [], ""
        try:
            for _ in range(10):
                t0 = time.perf_counter()
                out = subprocess.run(
                    [*CONTEXTD, "daemon"], env=env, capture_output=True, text=True, timeout=60
                )
                times.append(time.perf_counter() - t0)
                codes.append(out.returncode)
                message = out.stderr.strip().splitlines()[-1]
        finally:
            cli(env, "stop")
    print(
        f"second daemon: exit codes {sorted(set(codes))}, refused in max {max(times):.2f}s "
        f"(median {sorted(times)[5]:.2f}s; target < 2 s); message: {message}"
    )


if __name__ == "__main__":
    main()
