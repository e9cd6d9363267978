"""False positives of secret redaction on clean source files from real projects.

Scans what contextd would index (deny-list, binary, size and UTF-8 filters applied) from
the Python standard library and from git trees (bare clones are fine; read with
ls-tree/cat-file, nothing is checked out). Prints one summary line; `--show` prints
every finding with its line, to judge by hand; `--known FILE` names files (one
`corpus:path` per line) whose findings were judged genuine keys, reported apart.
Deny-listed files (`*.pem`…) are never indexed; they are counted, with how many hold a
finding (the standard library's test certificates and keys). Recall is measured on
`--planted` generated corpora of 105 secrets each (tests/secrets_corpus.py).

    python bench/secrets_fp.py [--stdlib] [GIT_DIR...] [--show] [--known FILE] [--planted N]
    python bench/secrets_fp.py --stdlib /work/.mirror/*/repo --known bench/secrets_known.txt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from contextd.connectors.filters import decode_text, is_binary, secret_reason
from contextd.redaction import find, redact

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.secrets_corpus import planted_corpus  # noqa: E402

MAX_BYTES = 1024 * 1024
SKIP_DIRS = {"__pycache__", "site-packages", "idlelib/Icons"}


def stdlib_files() -> Iterator[tuple[str, bytes]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(part in SKIP_DIRS for part in path.relative_to(root).parts):
            continue
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_BYTES:
            yield f"stdlib:{rel}", path.read_bytes()


def git_files(git_dir: str) -> Iterator[tuple[str, bytes]]:
    name = Path(git_dir).resolve().parent.name if Path(git_dir).name == "repo" else git_dir
    listing = subprocess.run(
        ["git", "--git-dir", git_dir, "ls-tree", "-r", "-z", "HEAD"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    blobs = []
    for entry in listing:
        if entry:
            meta, path = entry.split(b"\t", 1)
            mode, kind, sha = meta.split()
            if kind == b"blob" and mode != b"120000":
                blobs.append((sha.decode(), path.decode("utf-8", "replace")))
    with subprocess.Popen(
        ["git", "--git-dir", git_dir, "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as batch:
        assert batch.stdin and batch.stdout
        for sha, path in blobs:
            batch.stdin.write(f"{sha}\n".encode())
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            if header[-1] == b"missing":  # a large file the snapshot left out
                continue
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)
            if len(data) <= MAX_BYTES:
                yield f"{name}:{path}", data
        batch.stdin.close()


def planted_recall(seeds: int) -> str:
    """Recall on generated corpora (105 secrets each): the other half of the trade."""
    total = missed = 0
    kinds: set[str] = set()
    for seed in range(seeds):
        for f in planted_corpus(seed):
            clean = redact(f.text).text
            for secret in f.secrets:
                total += 1
                kinds.add(secret.kind)
                missed += any(p in clean for p in secret.probes)
    return (
        f"planted: {total} secrets of {len(kinds)} kinds, {total - missed} redacted "
        f"(recall {100 * (total - missed) / total:.3f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dirs", nargs="*", help="git directories (bare or not)")
    parser.add_argument("--stdlib", action="store_true", help="scan the standard library")
    parser.add_argument("--show", action="store_true", help="print each finding and its line")
    parser.add_argument("--known", type=Path, help="files whose findings are real test keys")
    parser.add_argument("--planted", type=int, default=100, help="generated corpora (seeds)")
    args = parser.parse_args()
    if not args.stdlib and not args.git_dirs:
        args.stdlib = True
    known = set()
    if args.known:
        lines = (line.split("#", 1)[0].strip() for line in args.known.read_text().splitlines())
        known = {line for line in lines if line}

    corpora = [stdlib_files()] if args.stdlib else []
    corpora += [git_files(d) for d in args.git_dirs]
    scanned = flagged = flagged_known = denied = denied_found = 0
    kinds: Counter[str] = Counter()
    size = 0
    seconds = 0.0
    for corpus in corpora:
        for name, data in corpus:
            rel = name.split(":", 1)[1]
            text = None if is_binary(data) else decode_text(data)
            if text is None:
                continue
            if secret_reason(rel):  # never indexed; real test keys live here (*.pem)
                denied += 1
                denied_found += bool(find(text))
                continue
            scanned += 1
            size += len(data)
            t0 = time.perf_counter()
            findings = find(text)
            seconds += time.perf_counter() - t0
            if not findings:
                continue
            if name in known:
                flagged_known += 1
            else:
                flagged += 1
                kinds.update(f.kind for f in findings)
            if args.show:
                for f in findings:
                    line_no = text.count("\n", 0, f.start) + 1
                    start = text.rfind("\n", 0, f.start) + 1
                    end = text.find("\n", f.end)
                    line = text[start : end if end != -1 else len(text)]
                    tag = " (known test key)" if name in known else ""
                    print(f"{name}:{line_no}: {f.kind}{tag}: {line.strip()[:160]}")
    total = flagged + flagged_known
    by_kind = ", ".join(f"{k} {n}" for k, n in kinds.most_common()) or "none"
    print(
        f"secrets FP: {scanned} files scanned ({size / 1e6:.1f} MB, "
        f"{size / 1e6 / max(seconds, 1e-9):.1f} MB/s), {total} with >=1 finding "
        f"({100 * total / max(scanned, 1):.2f}%); {flagged_known} are known test keys, "
        f"leaving {flagged} false positives: FP rate {100 * flagged / max(scanned, 1):.2f}%; "
        f"by kind: {by_kind}; deny-listed text files (not indexed): {denied}, "
        f"{denied_found} with a finding; {planted_recall(args.planted)}"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
