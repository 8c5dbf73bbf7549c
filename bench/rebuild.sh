#!/usr/bin/env bash
# What `kiln build --rebuild` costs next to the cold build it checks, for
# hello-c and hello-scratch, side by side in one hyperfine run each:
#   - cold build: an empty store every run (`kiln build`);
#   - --rebuild: a store holding the build (`kiln build --rebuild`: the
#     no-op build, then every stage again with empty caches, compared).
# Target: --rebuild ≤ 1.1× the cold build. Needs hyperfine, gcc, Debian's
# golang-go and busybox-static. Figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
kiln="$PWD/target/release/kiln"
work=$(mktemp -d /tmp/kiln-bench-rebuild.XXXXXX)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

for example in ${EXAMPLES:-hello-c hello-scratch}; do
    cp -r "examples/$example" "$work/$example"
    cd "$work/$example"
    "$kiln" -q --store "$work/warm-$example" build
    hyperfine -N --warmup 1 --runs "${RUNS:-5}" \
        --prepare "sh -c 'chmod -R u+w $work/cold 2>/dev/null; rm -rf $work/cold'" \
        --export-markdown "$work/$example.md" \
        -n "$example: cold build" "$kiln -q --store $work/cold build" \
        -n "$example: --rebuild" "$kiln -q --store $work/warm-$example build --rebuild"
    cat "$work/$example.md"
    cd - >/dev/null
done
