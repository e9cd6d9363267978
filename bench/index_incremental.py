"""Re-indexing a large tree: with nothing changed, and with 1% of its files edited.

    python bench/index_incremental.py --home DATA_DIR [PATH] [--runs 5] [--daemon]

PATH (default: the standard library of this Python) is copied to a temp dir, since its
files are edited. DATA_DIR is a data dir that already indexed PATH (e.g. kept by
`bench/index_cold.py --keep`); it is copied too, and the copy's embedding cache lets the
copied tree be indexed without the model. Then, `contextd index` as a user types it:

- no change: the whole command's wall time, `--runs` times (median);
- 1% touched: each run appends a new function to a different 1% of the files, then
  times the command, and reports the part of it spent embedding the new chunks.

With --daemon the commands go to a warm daemon instead of running in-process. With
--no-wait every command is `contextd index --no-wait`: pass 1 only, the new chunks are
left to the embedding backlog (use it when DATA_DIR was kept by `--searchable-only`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, cli, env_for, wait_idle  # noqa: E402

SKIP = shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc")


def timed_index(env: dict[str, str], *args: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [*CONTEXTD, "index", "--json", *args], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"contextd index failed: {out.stderr.strip()[-2000:]}")
    return seconds, json.loads(out.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path, nargs="?", default=Path(sysconfig.get_paths()["stdlib"]))
    p.add_argument("--home", type=Path, required=True, help="a data dir that indexed PATH")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--daemon", action="store_true", help="through a warm daemon")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="pass 1 only (`index --no-wait`): new chunks are counted, not embedded",
    )
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-incr-") as tmp:
        tree, home = Path(tmp) / "tree", Path(tmp) / "home"
        shutil.copytree(a.path, tree, ignore=SKIP, symlinks=True)
        shutil.copytree(a.home, home)
        env = env_for(home)
        for name in json.loads(cli(env, "sources", "--json")):
            cli(env, "remove", name["name"])
        cli(env, "add", str(tree), "--name", "copy", "--no-hooks")
        t0 = time.perf_counter()
        extra = ("--no-wait",) if a.no_wait else ()
        setup = json.loads(cli(env, "index", "--json", *extra))
        print(
            f"setup: {setup['files']} files, {setup['chunks']} chunks in "
            f"{time.perf_counter() - t0:.0f}s ({setup['embedded']} embedded, "
            f"{setup['cached']} from the cache)",
            flush=True,
        )
        if a.daemon:
            cli(env, "start")
            wait_idle(home, timeout=3600)
        try:
            files = sorted(p for p in tree.rglob("*.py") if p.is_file())
            step = max(1, len(files) // 100)
            same, touched = [], []
            for run in range(a.runs):
                seconds, summary = timed_index(env, *extra)
                assert summary["changed"] == 0, summary
                same.append(seconds)
                picked = files[run::step][: len(files) // 100]
                for f in picked:
                    with f.open("a", encoding="utf-8") as fh:
                        fh.write(f"\n\ndef bench_added_{run}(x):\n    return x + {run}\n")
                seconds, summary = timed_index(env, *extra)
                touched.append((seconds, summary["embed_seconds"], summary))
                print(
                    f"run {run + 1}: no change {same[-1]:.2f}s; {len(picked)} files touched "
                    f"{seconds:.2f}s ({summary['changed']} changed, {summary['embedded']} "
                    f"embedded in {summary['embed_seconds']:.2f}s)",
                    flush=True,
                )
        finally:
            if a.daemon:
                cli(env, "stop")
    t_same = statistics.median(same)
    t_touch = statistics.median(s for s, _, _ in touched)
    t_embed = statistics.median(e for _, e, _ in touched)
    n = touched[0][2]["changed"]
    print(
        f"summary: {setup['files']} files ({'daemon' if a.daemon else 'in-process'}), "
        f"median of {a.runs}: no-change re-index {t_same:.2f}s; {n} files (1%) touched "
        f"{t_touch:.2f}s, of which embedding their new chunks {t_embed:.2f}s "
        f"(rest {t_touch - t_embed:.2f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
