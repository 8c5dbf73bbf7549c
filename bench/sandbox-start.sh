#!/usr/bin/env bash
# What the sandbox costs a stage: 20 independent stages that run `true`,
# built from an empty store with one job at a time, so each figure is 20
# sandbox set-ups (and 20 commits). Side by side in one hyperfine run:
#   - this kiln, --sandbox on (four processes, locked mounts, /proc masks)
#   - this kiln, --sandbox off (a plain /bin/sh: the baseline)
#   - OLD=path/to/kiln, --sandbox on, when given (an earlier build of kiln)
# Needs hyperfine. Figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
kiln="$PWD/target/release/kiln"
work=$(mktemp -d /tmp/kiln-bench-sandbox.XXXXXX)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

for i in $(seq -w 1 20); do
    printf 'stage s%s {\n    run "true %s"\n}\n' "$i" "$i"
done > "$work/kiln.kdl"

runs=(
    -n "sandbox on" "$kiln -q -j1 --sandbox on --store $work/store build"
    -n "sandbox off" "$kiln -q -j1 --sandbox off --store $work/store build"
)
if [ -n "${OLD:-}" ]; then
    runs+=(-n "old, sandbox on" "$OLD -q -j1 --sandbox on --store $work/store build")
fi
cd "$work"
hyperfine -N --warmup 2 --runs "${RUNS:-20}" \
    --prepare "sh -c 'chmod -R u+w $work/store 2>/dev/null; rm -rf $work/store'" \
    --export-markdown "$work/sandbox.md" "${runs[@]}"
cat "$work/sandbox.md"
