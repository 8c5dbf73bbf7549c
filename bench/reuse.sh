#!/usr/bin/env bash
# Imports and templates against the same graph written out flat: `kiln
# check` and a no-op `kiln build` of a spec that imports a shared file and
# instantiates one of its templates 100 times (201 stages: a shared tool
# stage, and per instance a stage and one that uses it and the tool, the
# params substituted into `env`), against one kiln.kdl holding the same 201
# stages with the same inputs. Release build, own stores, hyperfine `-N`,
# warm-up runs first, all four commands in one hyperfine run (the spec
# cache warm, as every command after the first finds it), then `kiln check`
# again with the spec cache emptied before each run (a full parse and
# validation). Prints hyperfine's tables and the ratios import+template /
# flat; figures go to BENCHMARKS.md ("Imports and templates"). The issue's
# bar: ≤ 1.2× on both.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${KILN:-}" ] || cargo build --release -q
kiln=${KILN:-$PWD/target/release/kiln}
runs=${RUNS:-40}
n=${N:-100}
work=$(mktemp -d /tmp/kiln-bench-reuse.XXXXXX)
cleanup() {
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/lib" "$work/reuse" "$work/flat"

cat >"$work/lib/shared.kdl" <<'KDL'
arg greeting default="hello"

stage tool {
    run "echo $greeting > $out/t"
}

template program {
    param name
    param times type="integer" default=1
    stage gen {
        env NAME="${name}"
        run "echo $NAME > $out/src"
    }
    stage build {
        use gen tool
        env TIMES="${times}"
        run "for i in $(seq $TIMES); do cat $gen/src $tool/t; done > $out/x"
    }
}
KDL
{
    echo 'import "../lib/shared.kdl" as=lib'
    for ((i = 0; i < n; i++)); do
        printf 'lib.program p%03d name="p%03d" times=%d\n' "$i" "$i" "$((i % 3 + 1))"
    done
} >"$work/reuse/kiln.kdl"
{
    echo 'arg greeting default="hello"'
    echo 'stage tool { run "echo $greeting > $out/t" }'
    for ((i = 0; i < n; i++)); do
        printf 'stage p%03d-gen {\n    env NAME="p%03d"\n    run "echo $NAME > $out/src"\n}\n' "$i" "$i"
        printf 'stage p%03d-build {\n    use p%03d-gen tool\n    env TIMES="%d"\n    run "for i in $(seq $TIMES); do cat $p%03d_gen/src $tool/t; done > $out/x"\n}\n' \
            "$i" "$i" "$((i % 3 + 1))" "$i"
    done
} >"$work/flat/kiln.kdl"

for spec in reuse flat; do
    "$kiln" -q --store "$work/store-$spec" -f "$work/$spec/kiln.kdl" build
done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
k() { echo "$kiln -q --store $work/store-$1 -f $work/$1/kiln.kdl $2"; }
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/warm.json" \
    -n "check flat" "$(k flat check)" \
    -n "check import+template" "$(k reuse check)" \
    -n "no-op build flat" "$(k flat build)" \
    -n "no-op build import+template" "$(k reuse build)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/cold.json" \
    --prepare "rm -rf $work/store-flat/v2/cache/spec $work/store-reuse/v2/cache/spec" \
    -n "check flat, no spec cache" "$(k flat check)" \
    -n "check import+template, no spec cache" "$(k reuse check)"
python3 - "$work/warm.json" "$work/cold.json" <<'PY'
import json, sys
rows = {}
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        rows[r["command"]] = r
def ratio(what):
    flat, reuse = rows[f"{what} flat"], rows[f"{what} import+template"]
    return reuse["mean"] / flat["mean"], reuse["min"] / flat["min"]
for what in ["check", "no-op build"]:
    mean, low = ratio(what)
    print(f"{what}: import+template / flat = {mean:.2f}x (mean), {low:.2f}x (min)")
flat, reuse = rows["check flat, no spec cache"], rows["check import+template, no spec cache"]
print(f"check, no spec cache: import+template / flat = {reuse['mean'] / flat['mean']:.2f}x (mean), "
      f"{reuse['min'] / flat['min']:.2f}x (min)")
PY
