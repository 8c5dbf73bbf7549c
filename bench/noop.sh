#!/usr/bin/env bash
# No-op rebuild: `kiln build` with nothing changed, on the hello-c example and
# on a generated 10,000-file source tree, against `git status` over the same
# tree as a side-by-side baseline (git also answers "what changed?" from a
# stat cache). Needs hyperfine. Prints hyperfine's tables; figures go to
# BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
kiln="$PWD/target/release/kiln"
work=$(mktemp -d /tmp/kiln-bench-noop.XXXXXX)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

# 1. The example.
cp -r examples/hello-c "$work/hello-c"
export KILN_HOME="$work/store-hello"
"$kiln" -q -f "$work/hello-c/kiln.kdl" build
hyperfine -N --warmup 5 --runs 50 --export-markdown "$work/hello.md" \
    "$kiln -q -f $work/hello-c/kiln.kdl build"

# 2. 10,000 files in 100 directories, 1-4 KiB each.
proj="$work/big"
mkdir -p "$proj/tree"
python3 - "$proj/tree" <<'PY'
import os, random, sys
random.seed(7)
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d:03}/f{f:03}.txt", "wb") as fh:
            fh.write(os.urandom(random.randint(1024, 4096)))
PY
cat > "$proj/kiln.kdl" <<'KDL'
stage count {
    src "tree"
    run "find tree -type f | wc -l > $out/count"
}
KDL
export KILN_HOME="$work/store-big"
"$kiln" -q -f "$proj/kiln.kdl" build
(cd "$proj" && git init -q && git add -A && git -c user.email=b@b -c user.name=b commit -qm init)
hyperfine -N --warmup 3 --runs 30 --export-markdown "$work/big.md" \
    "$kiln -q -f $proj/kiln.kdl build" \
    "git -C $proj status --porcelain"
cat "$work/hello.md" "$work/big.md"
