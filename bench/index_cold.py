"""Cold index of a large real tree: when it is searchable, how fast it embeds, what it costs.

    python bench/index_cold.py [PATH ...] [--git GIT_DIR ...] [--sample 1500] [--keep DIR]
                               [--repeat 3]

Without arguments the tree is the standard library of the Python running this script
(`sysconfig.get_paths()["stdlib"]`). --git clones a repository (bare is fine) into a
temp dir first. Each tree is indexed in a fresh data dir by `contextd index`, in child
processes (so peak RSS is the indexer's own), as the two passes a user sees:

- lexically searchable: `contextd index --no-wait` (pass 1: every file in the catalog
  and FTS5), wall time of the whole command;
- fully embedded: that plus `contextd index` finishing pass 2 (model load included);
- chunks/s: chunks embedded per second of pass 2, and over the whole run;
- raw model chunks/s: the same model on a sample of the same chunks, in a fresh process
  each time, as each pass 2 is,
  with sentence-transformers' own `encode`, in bfloat16 and float32, and in bfloat16 on
  batches sorted by token length as contextd forms them; pipeline/raw is against the best
  of these. A shared machine's speed drifts by 10-15% within minutes, so pass 2 runs
  `--repeat` times from a copy of the data dir taken after pass 1, each between two raw
  measurements (each run's ratio is against their mean), and the median is reported;
- peak RSS of the indexing processes, and the data dir's size on disk.

One summary line per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, cli, env_for  # noqa: E402

from contextd.settings import Settings  # noqa: E402


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_index(env: dict[str, str], *args: str) -> tuple[dict, int, float]:
    """`contextd index --json ARGS` in a child: (summary, its peak RSS in bytes, seconds)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [*CONTEXTD, "index", "--json", *args], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            sys.exit(f"contextd index failed: {err.read().decode().strip()[-2000:]}")
        return json.loads(out.read()), usage.ru_maxrss * 1024, seconds


def sample_texts(home: Path, sample: int) -> list[str]:
    from contextd.app import App

    app = App(Settings(home=home))
    ids = sorted(app.catalog.chunk_ids("bench"))
    random.Random(0).shuffle(ids)
    texts = [s.chunk.embed_text for s in app.catalog.chunks(ids[:sample])]
    app.close()
    return texts


def raw_rates(home: Path, texts: list[str], dtypes: list[str] | None = None) -> dict[str, float]:
    """`raw_rates_here` in a fresh process, as each pipeline run is (like with like)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"home": str(home), "texts": texts, "dtypes": dtypes}, f)
        f.flush()
        out = subprocess.run(
            [sys.executable, __file__, "--raw-only", f.name], capture_output=True, text=True
        )
    if out.returncode != 0:
        sys.exit(f"raw model measurement failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_rates_here(
    home: Path, texts: list[str], dtypes: list[str] | None = None
) -> dict[str, float]:
    """The model alone on the index's own chunk texts: chunks/s per dtype."""
    import numpy as np
    import torch

    from contextd.embedder import SentenceTransformerEmbedder, cpu_has_fast_bf16

    st = SentenceTransformerEmbedder(Settings(home=home))._load()
    rates = {}
    if dtypes is None:
        dtypes = ["bfloat16", "float32"] if cpu_has_fast_bf16() else ["float32"]
    batch = Settings(home=home).batch_size
    # sentence-transformers batches by characters; contextd by tokens. The model on
    # token-sorted batches (one `encode` call each) is the stricter ceiling, so it counts too.
    ids = st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"]
    by_tokens = [texts[i] for i in sorted(range(len(texts)), key=lambda i: -len(ids[i]))]
    batches = [by_tokens[s : s + batch] for s in range(0, len(by_tokens), batch)]
    for dtype in dtypes:
        st.to(getattr(torch, dtype))
        with torch.inference_mode():
            st.encode(texts[:batch], batch_size=batch)  # warm up
            t0 = time.perf_counter()
            v = st.encode(texts, batch_size=batch, normalize_embeddings=True)
            rates[dtype] = len(texts) / (time.perf_counter() - t0)
            if dtype == dtypes[0]:
                t0 = time.perf_counter()
                for b in batches:
                    st.encode(b, batch_size=batch, normalize_embeddings=True)
                rates[f"{dtype} token-sorted"] = len(texts) / (time.perf_counter() - t0)
        assert np.isfinite(v).all()
    return rates


def bench(
    root: Path,
    label: str,
    sample: int,
    keep: Path | None = None,
    searchable_only: bool = False,
    repeat: int = 3,
) -> str:
    with tempfile.TemporaryDirectory(prefix="contextd-cold-") as tmp:
        home = keep.resolve() if keep else Path(tmp) / "home"
        if keep and keep.exists():
            sys.exit(f"{keep} exists; --keep wants a new directory")
        env = env_for(home)
        cli(env, "add", str(root), "--name", "bench", "--no-hooks")
        first, rss1, searchable = run_index(env, "--no-wait")
        row = first["sources"][0]
        print(
            f"{label}: {row['files']} files ({row['skipped']} skipped), {row['chunks']} "
            f"chunks lexically searchable in {searchable:.1f}s (`contextd index --no-wait`, "
            f"peak RSS {rss1 / 2**20:.0f} MiB)",
            flush=True,
        )
        if searchable_only:
            return f"summary: {label}: pass 1 only (--searchable-only)"
        texts = sample_texts(home, sample)
        after_pass1 = Path(tmp) / "after-pass-1"
        if repeat > 1:
            shutil.copytree(home, after_pass1)
        raws = [raw_rates(home, texts)]
        runs: list[tuple[dict, float]] = []
        rss2 = 0  # the highest of the pass-2 runs
        for i in range(repeat):
            if i:
                shutil.rmtree(home)
                shutil.copytree(after_pass1, home)
            summary, rss, embedding = run_index(env)
            rss2 = max(rss2, rss)
            last = i == repeat - 1
            raws.append(raw_rates(home, texts, None if last else [next(iter(raws[0]))]))
            runs.append((summary, embedding))
            around = ", ".join(
                f"{k} {(raws[-2][k] + raws[-1][k]) / 2:.1f}" for k in raws[-1] if k in raws[-2]
            )
            print(
                f"  pass 2 run {i + 1}: {summary['embed_rate']:.1f} chunks/s; raw model "
                f"around it: {around}",
                flush=True,
            )
        size = du(home)
    kinds = [k for k in raws[0] if all(k in r for r in raws)]  # measured around every run
    ratios, pipelines, totals = [], [], []
    for i, (summary, embedding) in enumerate(runs):
        best = max((raws[i][k] + raws[i + 1][k]) / 2 for k in kinds)
        pipelines.append(summary["embed_rate"])
        ratios.append(summary["embed_rate"] / best)
        totals.append(searchable + embedding)
    pipeline = statistics.median(pipelines)
    seconds = statistics.median(totals)
    overall = runs[0][0]["embedded"] / seconds if seconds else 0.0
    rates = {k: (raws[0][k] + raws[-1][k]) / 2 for k in raws[0]}
    raw = " ".join(
        f"{k} {v:.1f} (first {raws[0][k]:.1f}, last {raws[-1][k]:.1f})" for k, v in rates.items()
    )
    f32 = rates.get("float32", 0.0)
    each = ", ".join(f"{r:.2f}" for r in ratios)
    return (
        f"summary: {label}: {row['files']} files ({row['skipped']} skipped), "
        f"{row['chunks']} chunks; lexically searchable {searchable:.1f}s, fully embedded "
        f"{seconds:.1f}s; pipeline {pipeline:.1f} chunks/s while embedding, {overall:.1f} "
        f"over the run; raw model on {len(texts)} of its chunks: {raw} chunks/s; "
        f"pipeline/raw {statistics.median(ratios):.2f} (median of {len(ratios)}: {each}), "
        f"pipeline/float32 {pipeline / f32:.2f}; "
        f"peak RSS {max(rss1, rss2) / 2**20:.0f} MiB; store {size / 2**20:.0f} MiB"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", type=Path, nargs="*")
    p.add_argument("--git", type=Path, nargs="*", default=[], help="repositories to clone")
    p.add_argument("--sample", type=int, default=1500, help="chunks for the raw model rate")
    p.add_argument("--keep", type=Path, help="keep the (first) tree's data dir here")
    p.add_argument("--searchable-only", action="store_true", help="pass 1 only")
    p.add_argument(
        "--repeat", type=int, default=3, help="pass 2 runs, each between raw measurements"
    )
    p.add_argument("--raw-only", type=Path, help=argparse.SUPPRESS)  # raw_rates' child
    a = p.parse_args()
    if a.raw_only:
        job = json.loads(a.raw_only.read_text())
        print(json.dumps(raw_rates_here(Path(job["home"]), job["texts"], job["dtypes"])))
        return 0
    paths = list(a.paths)
    if not paths and not a.git:
        paths = [Path(sysconfig.get_paths()["stdlib"])]
    for path in paths:
        print(bench(path, str(path), a.sample, a.keep, a.searchable_only, a.repeat), flush=True)
        a.keep = None
    for git_dir in a.git:
        with tempfile.TemporaryDirectory(prefix="contextd-clone-") as tmp:
            clone = Path(tmp) / git_dir.name.removesuffix(".git")
            subprocess.run(["git", "clone", "-q", str(git_dir), str(clone)], check=True)
            label = f"clone of {git_dir}"
            print(bench(clone, label, a.sample, None, a.searchable_only, a.repeat), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
