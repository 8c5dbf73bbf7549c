#!/usr/bin/env bash
# Registries, each case against its baseline in the same hyperfine run, on
# a private `docker-registry` (Debian's distribution 2.8) on 127.0.0.1 with
# its storage in the work dir:
# - push:  `kiln push` of a ~500 MB image (bench/gen-tree.py's tree in one
#          gzip layer) to an empty registry, against `skopeo copy` of the
#          same image (`kiln export`ed: an oci-archive) from that archive;
#          then `kiln push` again with nothing new to send.
# - pull:  `kiln build BASE` of that image as a registry base into an empty
#          store, against `skopeo copy docker://… oci:DIR`.
# - cache: `kiln build` of examples/hello-scratch and examples/http-sqlite
#          into an empty store, cold (no cache) against warm (`--cache` a
#          repository one earlier build pushed everything to).
# - survey: `kiln build --cache` into an empty store of a generated graph,
#          20 chains of 10 stages and one stage using the chains' ends:
#          only that one is downloaded, the 200 others are known from their
#          records (the survey asks for one record per node). BASELINE=PATH
#          adds the same command run by another kiln binary. DELAY=MS puts
#          the cache behind bench/latency-proxy.py, which holds every chunk
#          MS milliseconds each way, as a registry elsewhere answers.
# - lazy-base: `kiln build --cache` into an empty store of a builder stage
#          run in the ~500 MB image as a registry base and an image from
#          scratch shipping its output, pushed to the cache by an earlier
#          build (BASELINE=PATH adds another kiln binary's run).
# ONLY="push pull cache survey lazy-base" runs a subset. Needs hyperfine, skopeo,
# docker-registry, python3, and what the examples need (golang-go,
# busybox-static, gcc, golang-github-mattn-go-sqlite3-dev). About 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
kiln="$PWD/target/release/kiln"
repo="$PWD"
only=${ONLY:-push pull cache survey lazy-base}
want() { [[ " $only " == *" $1 "* ]]; }
work=$(mktemp -d /tmp/kiln-bench-registry.XXXXXX)
registry_pid=""
cleanup() {
    [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=0
export PATH="/usr/bin:$PATH"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host="127.0.0.1:$port"
storage="$work/registry"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $storage
http:
  addr: $host
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -sf "http://$host/v2/" >/dev/null && break; sleep 0.1; done
# The registry reads its storage on every request: emptying it between runs
# gives each push an empty registry.
empty="rm -rf $storage/docker"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >"$work/report.md"

# Times `kiln ARGS --store STORE build` from an empty STORE, and BASELINE's
# (another kiln binary) if set, in one hyperfine run; the table goes to the
# report. fresh_build NAME LABEL ARGS STORE
fresh_build() {
    local rows=(-n "$2" "$kiln $3 --store $4 build")
    if [ -n "${BASELINE:-}" ]; then
        rows+=(-n "baseline $BASELINE" "$BASELINE $3 --store $4 build")
    fi
    hyperfine -N --runs 5 --export-markdown "$work/$1.md" --prepare "rm -rf $4" "${rows[@]}"
    cat "$work/$1.md" >>"$work/report.md"
}

proj="$work/big"
mkdir -p "$proj"
cp bench/gen-tree.py "$proj/gen.py"
cat >"$proj/kiln.kdl" <<'KDL'
stage data {
    tools "python3"
    src "gen.py"
    run "python3 gen.py $out/data"
}
image big {
    copy data "data" to="/data"
}
// The same tree with a shell, for a stage to run in (lazy-base).
stage bin {
    tools "busybox"
    run "mkdir -p $out/bin && cp $(command -v busybox) $out/bin/ && for t in sh find wc; do ln -s busybox $out/bin/$t; done"
}
image bigsh {
    copy data "data" to="/data"
    copy bin "bin" to="/bin"
}
KDL
k="$kiln -q --store $work/store -f $proj/kiln.kdl"
if want push || want pull || want lazy-base; then
    $k build
    $k export big -o "$work/big.tar"
    echo "image: $(stat -c %s "$work/big.tar") bytes as an archive" >>"$work/report.md"
fi

if want push; then
    hyperfine -N --warmup 1 --runs 5 --prepare "$empty" --export-markdown "$work/push.md" \
        -n "kiln push" "$k push big $host/big:1" \
        -n "skopeo copy oci-archive: docker://" \
        "skopeo copy -q --dest-tls-verify=false oci-archive:$work/big.tar docker://$host/big:1"
    $k push big "$host/big:1" >/dev/null
    hyperfine -N --warmup 2 --runs 20 --export-markdown "$work/push-again.md" \
        -n "kiln push, nothing new" "$k push big $host/big:1"
    cat "$work/push.md" "$work/push-again.md" >>"$work/report.md"
fi

if want pull; then
    digest=$($k push big "$host/big:1" | sed 's/.*@//')
    mkdir -p "$work/pull"
    printf 'base big { image "%s" }\n' "$host/big:1@$digest" >"$work/pull/kiln.kdl"
    hyperfine -N --warmup 1 --runs 5 --export-markdown "$work/pull.md" \
        --prepare "rm -rf $work/store-pull $work/oci-pull" \
        -n "kiln build BASE (pull)" "$kiln -q --store $work/store-pull -f $work/pull/kiln.kdl build big" \
        -n "skopeo copy docker:// oci:" \
        "skopeo copy -q --src-tls-verify=false docker://$host/big:1 oci:$work/oci-pull"
    cat "$work/pull.md" >>"$work/report.md"
fi

if want lazy-base; then
    $k build bigsh
    digest=$($k push bigsh "$host/bigsh:1" | sed 's/.*@//')
    mkdir -p "$work/lazy"
    cat >"$work/lazy/kiln.kdl" <<KDL
base big { image "$host/bigsh:1@$digest" }
stage count {
    from big
    run "find /data -type f | wc -l > \$out/n"
}
image app {
    from scratch
    copy count "n" to="/n"
}
KDL
    l="-q -f $work/lazy/kiln.kdl --cache $host/lazy"
    $kiln $l --store "$work/seed-lazy" --cache-push build
    fresh_build lazy "kiln build --cache, builder base in the registry" "$l" "$work/fresh-lazy"
fi

if want cache; then
    for example in hello-scratch http-sqlite; do
        cp -R "$repo/examples/$example" "$work/$example"
        [ -d "$work/toolchains" ] || cp -R "$repo/examples/toolchains" "$work/toolchains"
        e="$kiln -q -f $work/$example/kiln.kdl"
        $e --store "$work/seed-$example" --cache "$host/cache" --cache-push build
        hyperfine -N --runs 3 --export-markdown "$work/cache-$example.md" \
            --prepare "rm -rf $work/fresh-$example" \
            -n "$example, cold" "$e --store $work/fresh-$example build" \
            -n "$example, warm cache" "$e --store $work/fresh-$example --cache $host/cache build"
        cat "$work/cache-$example.md" >>"$work/report.md"
    done
fi

if want survey; then
    g="$work/graph"
    mkdir -p "$g"
    python3 - "$g/kiln.kdl" <<'PY'
import sys
chains, depth = 20, 10
lines = []
for c in range(chains):
    for d in range(depth):
        use = f"    use s{c}-{d - 1}\n" if d else ""
        lines.append(f"stage s{c}-{d} {{\n{use}    run \"echo {c}-{d} > $out/n\"\n}}")
ends = "".join(f"    use s{c}-{depth - 1}\n" for c in range(chains))
lines.append(f"stage all {{\n{ends}    run \"echo all > $out/n\"\n}}")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
    e="-q -f $g/kiln.kdl"
    $kiln $e --store "$work/seed-graph" --cache "$host/graph" --cache-push build
    at=$host
    if [ -n "${DELAY:-}" ]; then
        proxy_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        python3 bench/latency-proxy.py "$proxy_port" "$port" "$DELAY" &
        proxy_pid=$!
        at="127.0.0.1:$proxy_port"
        for _ in $(seq 100); do curl -sf "http://$at/v2/" >/dev/null && break; sleep 0.1; done
    fi
    echo "survey: latency added each way: ${DELAY:-0} ms" >>"$work/report.md"
    fresh_build survey "kiln build --cache (201 nodes, 1 downloaded)" \
        "$e --cache $at/graph" "$work/fresh-graph"
fi
cat "$work/report.md"
