"""`git checkout` between two branches that differ in N small files: does the daemon converge,
how long does it take, and how much memory does it peak at?

    python bench/checkout_storm.py [--files 10000] [--bodies 200]

The wide branch adds N files under 100 folders; their bodies come from `--bodies` distinct
texts, so the model embeds only those few and the catalog, FTS and Chroma carry all N.
Prints the time from each checkout to searchable (catalog = working tree) and to fully
embedded, and the daemon's peak RSS (VmHWM).
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
from _common import CONTEXTD, call, env_for, git, wait_idle  # noqa: E402

from contextd import rpc  # noqa: E402


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def files_indexed(home: Path) -> int:
    rows = call(home, "sources")
    return int(rows[0]["files"]) if rows else 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--bodies", type=int, default=200)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-storm-") as tmp:
        home, root = Path(tmp) / "home", Path(tmp) / "repo"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "README.md").write_text("# storm\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "base")
        git(root, "checkout", "-q", "-b", "wide")
        for i in range(a.files):
            path = root / f"d{i % 100}" / f"f_{i}.py"
            path.parent.mkdir(exist_ok=True)
            b = i % a.bodies
            path.write_text(f"def body_{b}(v):\n    '''Step {b}.'''\n    return v + {b}\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "wide")
        git(root, "checkout", "-q", "main")
        env = env_for(home, reconcile_interval_s="3600")
        with open(Path(tmp) / "daemon.err", "wb") as err:
            proc = subprocess.Popen([*CONTEXTD, "daemon"], env=env, stderr=err,
                                    stdout=subprocess.DEVNULL)  # fmt: skip
        while not rpc.ping(home, timeout=1):
            time.sleep(0.1)
        call(home, "add", path=str(root), name="storm")
        wait_idle(home)
        figures = []
        for branch, want in (("wide", a.files + 1), ("main", 1)):
            t0 = time.perf_counter()
            git(root, "checkout", "-q", branch)
            while files_indexed(home) != want:
                time.sleep(0.2)
            searchable = time.perf_counter() - t0
            wait_idle(home, timeout=3600)
            figures.append((branch, searchable, time.perf_counter() - t0))
            print(f"checkout {branch}: searchable in {searchable:.1f}s, "
                  f"embedded in {figures[-1][2]:.1f}s", flush=True)  # fmt: skip
        report = call(home, "verify")["storm"]
        hwm = vm_hwm_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    (_, s1, e1), (_, s2, e2) = figures
    print(
        f"summary: checkout storm of {a.files} files: there searchable {s1:.1f}s / embedded "
        f"{e1:.1f}s, back {s2:.1f}s / {e2:.1f}s; daemon peak RSS {hwm:.0f} MB; "
        f"lost {report['lost']}, orphan {report['orphan']}, duplicate {report['duplicate']}, "
        f"pending {report['pending']}"
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
