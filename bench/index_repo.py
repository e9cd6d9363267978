"""Index a clone of a git repository through the real CLI and report the figures.

    python bench/index_repo.py GIT_DIR [--query Q --expect-path P --expect-symbol S]

GIT_DIR may be a bare repository. It is cloned into a temp dir (nothing of it is kept),
then: `contextd add` + `contextd index` (cold), a search, a second index with nothing
changed, an edit to one function and a third index, and a check that no chunk's
embedded text exceeds the model's token limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTEXTD = [sys.executable, "-m", "contextd"]


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return elapsed, out.stdout


def edit_one_function(root: Path, rel: str, function: str) -> None:
    path = root / rel
    text = path.read_text()
    m = re.search(rf"\n(\s*)def {re.escape(function)}\(.*?:\n", text, re.S)
    if not m:
        sys.exit(f"no function {function} in {rel}")
    indent = m.group(1) + "    "
    insert = f"{indent}# contextd bench: an edit inside {function}\n"
    path.write_text(text[: m.end()] + insert + text[m.end() :])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("git_dir")
    p.add_argument("--query", default="how are redirects followed")
    p.add_argument("--expect-path", default="src/requests/sessions.py")
    p.add_argument("--expect-symbol", default="resolve_redirects")
    p.add_argument("--edit-path", default="src/requests/sessions.py")
    p.add_argument("--edit-function", default="rebuild_method")
    a = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="contextd-bench-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", a.git_dir, str(clone)], check=True)
        env = {**os.environ, "CONTEXTD_HOME": str(Path(tmp) / "home"), "HF_HUB_OFFLINE": "1"}
        run([*CONTEXTD, "add", str(clone), "--name", "bench"], env)

        cold_s, out = run([*CONTEXTD, "index", "bench", "--json"], env)
        cold = json.loads(out)
        _, out = run([*CONTEXTD, "search", a.query, "-k", "10", "--json"], env)
        hits = json.loads(out)
        rank = next(
            (
                i
                for i, h in enumerate(hits, 1)
                if h["path"] == a.expect_path and a.expect_symbol in h["symbol"]
            ),
            None,
        )

        warm_s, out = run([*CONTEXTD, "index", "bench", "--json"], env)
        warm = json.loads(out)

        db = sqlite3.connect(Path(tmp) / "home" / "catalog.sqlite3")
        q = "SELECT COUNT(*) FROM chunks WHERE path = ? AND symbol LIKE ?"
        fn_chunks = db.execute(q, (a.edit_path, f"%{a.edit_function}%")).fetchone()[0]
        edit_one_function(clone, a.edit_path, a.edit_function)
        edit_s, out = run([*CONTEXTD, "index", "bench", "--json"], env)
        edit = json.loads(out)

        from contextd.embedder import default_model_dir
        from contextd.indexers.tokens import TokenCounter

        counter = TokenCounter.from_model_dir(default_model_dir())
        rows = db.execute("SELECT symbol, text FROM chunks").fetchall()
        texts = [f"{s}\n{t}" if s else t for s, t in rows]
        longest = max(counter.counts(texts))

    print(f"query: {a.query!r}")
    for i, h in enumerate(hits[:5], 1):
        print(f"  {i}. {h['path']}:{h['start_line']}-{h['end_line']} {h['symbol']} {h['score']}")
    print(
        f"cold index: {cold_s:.1f}s wall, {cold['files']} files, {cold['chunks']} chunks, "
        f"{cold['embedded']} embedded at {cold['embed_rate']} chunks/s (embedding only), "
        f"{cold['embedded'] / cold_s:.1f} chunks/s overall incl. model load"
    )
    print(f"expected hit {a.expect_path} {a.expect_symbol}: rank {rank}")
    print(
        f"no-change re-index: {warm_s:.2f}s wall ({100 * warm_s / cold_s:.1f}% of cold), "
        f"embedded {warm['embedded']}, changed {warm['changed']}"
    )
    print(
        f"edit inside {a.edit_function} ({fn_chunks} chunk(s) carry its name): {edit_s:.2f}s wall, "
        f"changed files {edit['changed']}, embedded {edit['embedded']}, cached {edit['cached']}"
    )
    print(
        f"token limit: longest embedded chunk {longest} tokens of {counter.content_limit} "
        f"allowed over {len(rows)} chunks"
    )


if __name__ == "__main__":
    main()
