#!/usr/bin/env bash
# Source hashing: `tree::scan_sources` (through the `hashtree` example) against
# b3sum over the same files.
#
# 1. Cold scan (no stat cache) of a ~1 GiB tree of mixed sizes vs
#    `find -type f -print0 | xargs -0 b3sum`. Both read from the page cache
#    (hyperfine warm-up runs), so this compares hashing and walking, not the disk.
# 2. A 10,000-file tree (100 dirs x 100 files, 1-4 KiB): cold scan, and warm
#    scan with a stat cache (what a no-op `kiln build` pays), vs b3sum.
# Needs hyperfine and b3sum. Prints hyperfine's tables; figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --example hashtree
hashtree="$PWD/target/release/examples/hashtree"
work=$(mktemp -d /tmp/kiln-bench-hash.XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import os, random, sys
random.seed(7)
root = sys.argv[1]
block = os.urandom(1 << 20)
def write(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        # Random bytes, cheap to make: a random 1 MiB block, rotated per file.
        off = random.randrange(len(block))
        data = (block[off:] + block[:off]) * (size // len(block) + 1)
        fh.write(data[:size])
# ~1 GiB: 4 x 128 MiB, 64 x 4 MiB, 2,000 x 64 KiB, 20,000 x 1-8 KiB.
for i in range(4): write(f"{root}/big/huge{i}.bin", 128 << 20)
for i in range(64): write(f"{root}/big/mid/m{i:02}.bin", 4 << 20)
for i in range(2000): write(f"{root}/big/small/d{i // 100:02}/s{i:04}.bin", 64 << 10)
for i in range(20000): write(f"{root}/big/tiny/d{i // 500:02}/t{i:05}.txt", random.randint(1024, 8192))
# The 10,000-file tree of bench/noop.sh.
for d in range(100):
    for f in range(100):
        write(f"{root}/tenk/d{d:03}/f{f:03}.txt", random.randint(1024, 4096))
PY
# Old enough for the stat cache to trust (newer files are racy, re-hashed).
find "$work/tenk" -type f -exec touch -d '1 hour ago' {} +
du -sh --apparent-size "$work/big" "$work/tenk"

echo "== 1 GiB, cold"
hyperfine -N --warmup 2 --runs 10 --export-markdown "$work/big.md" \
    "$hashtree $work/big" \
    "sh -c 'find $work/big -type f -print0 | xargs -0 b3sum >/dev/null'"

echo "== 10,000 files"
"$hashtree" "$work/tenk" --cache "$work/statcache" >/dev/null
hyperfine -N --warmup 3 --runs 30 --export-markdown "$work/tenk.md" \
    "$hashtree $work/tenk --cache $work/statcache" \
    "$hashtree $work/tenk" \
    "sh -c 'find $work/tenk -type f -print0 | xargs -0 b3sum >/dev/null'"
cat "$work/big.md" "$work/tenk.md"
