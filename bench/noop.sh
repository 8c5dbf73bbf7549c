#!/usr/bin/env bash
# No-op rebuilds: `kiln build` (and `kiln export`) with nothing changed, each
# against a baseline timed in the same run. Release build, own stores,
# hyperfine `-N`, warm-up runs first. Prints hyperfine's tables; figures go
# to BENCHMARKS.md ("No-op builds" and "No-op rebuild").
#
# Cases (ONLY="…" runs a subset; all by default):
# - gen:     generated 1,000-stage specs, wide (1,000 independent stages) and
#            chain (each `use`s the previous), against a `nix-build` no-op of
#            1,001 trivial derivations (1,000 leaves and one that needs them).
# - scratch: examples/hello-scratch: `kiln build`, `kiln export -o FILE`
#            against `cp` of that archive, and (if dockerd starts) a cached
#            `docker build` on overlay2 from the same toolchain image (with
#            BuildKit if the CLI has buildx, else the classic builder).
# - hello-c: examples/hello-c (2 stages).
# - tree:    one stage over a 10,000-file tree, against `git status`.
#
# Needs hyperfine; nix-build (Debian's nix-bin) for gen, golang-go and
# busybox-static for scratch, dockerd for its docker row. About 3 minutes
# (the first nix-build of 1,001 derivations takes most of one).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${KILN:-}" ] || cargo build --release -q
kiln=${KILN:-$PWD/target/release/kiln}
repo="$PWD"
runs=${RUNS:-30}
only=${ONLY:-gen scratch hello-c tree}
work=$(mktemp -d /tmp/kiln-bench-noop.XXXXXX)
engine_pid=""
cleanup() {
    if [ -n "$engine_pid" ]; then
        kill "$engine_pid" 2>/dev/null || true
        wait "$engine_pid" 2>/dev/null || true
    fi
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
want() { [[ " $only " == *" $1 "* ]]; }
bench() { hyperfine -N --warmup 5 --runs "$runs" "$@"; }
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >"$work/report.md"

# gen SHAPE N: a spec of N trivial stages; chain: each uses the one before.
gen() {
    local shape=$1 n=$2 i
    for ((i = 0; i < n; i++)); do
        if [ "$shape" = chain ] && [ "$i" -gt 0 ]; then
            printf 'stage s%04d { use s%04d; run "echo %d > $out/x" }\n' "$i" "$((i - 1))" "$i"
        else
            printf 'stage s%04d { run "echo %d > $out/x" }\n' "$i" "$i"
        fi
    done
}

if want gen; then
    for shape in wide chain; do
        mkdir -p "$work/$shape"
        gen "$shape" 1000 >"$work/$shape/kiln.kdl"
        "$kiln" -q --store "$work/store-$shape" -f "$work/$shape/kiln.kdl" build
    done
    # Nix: the same question ("is all of this built?") over 1,001
    # derivations. Its store is the default /nix when this user may write it
    # (root), else a store of its own under the work dir.
    mkdir -p "$work/nix"
    cat >"$work/nix/default.nix" <<'NIX'
let
  trivial = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
  leaves = builtins.genList (i: trivial "s${toString i}" "echo ${toString i} > $out") 1000;
in trivial "all" "echo ${builtins.concatStringsSep " " leaves} > $out"
NIX
    export NIX_CONFIG=$'build-users-group =\nsandbox = false'
    nix_store=""
    [ -w /nix/store ] || [ "$(id -u)" = 0 ] || nix_store="--store $work/nix/store"
    nix="nix-build $nix_store --no-out-link $work/nix/default.nix"
    $nix >/dev/null 2>&1
    bench --export-markdown "$work/gen.md" \
        -n "kiln build, 1,000 wide" "$kiln -q --store $work/store-wide -f $work/wide/kiln.kdl build" \
        -n "kiln build, 1,000 chain" "$kiln -q --store $work/store-chain -f $work/chain/kiln.kdl build" \
        -n "nix-build, 1,001 derivations" "$nix"
    cat "$work/gen.md" >>"$work/report.md"
fi

# start_engine: a private dockerd on overlay2 (own data root and socket);
# fails, and the docker row is left out, where overlay2 cannot run.
start_engine() {
    local e="$work/engine"
    mkdir -p "$e"
    dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
        --data-root "$e/root" --exec-root "$e/exec" -H "unix://$e/docker.sock" \
        -p "$e/pid" >"$e/log" 2>&1 &
    engine_pid=$!
    export DOCKER_HOST="unix://$e/docker.sock"
    for _ in $(seq 1 60); do
        docker version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

if want scratch; then
    dir="$work/hello-scratch"
    cp -R examples/hello-scratch "$dir"
    cp -R examples/toolchains "$work/toolchains" # what it imports
    k="$kiln -q --store $work/store-scratch -f $dir/kiln.kdl"
    $k build
    $k export hello-scratch -o "$work/k.tar"
    docker_row=()
    if command -v dockerd >/dev/null && start_engine; then
        $k export go.golang -o "$work/golang.tar"
        docker load -q -i "$work/golang.tar" >/dev/null
        cp bench/docker-vs-kiln/hello-scratch.Dockerfile "$dir/Dockerfile"
        # BuildKit: Debian's docker.io client (20.10) has it built in with
        # DOCKER_BUILDKIT=1; a newer client elsewhere on PATH wants a buildx
        # plugin instead. Without either, the classic builder (on the same
        # overlay2 engine) is what there is.
        [ -x /usr/bin/docker ] && docker() { /usr/bin/docker "$@"; }
        builder="BuildKit" buildkit=1
        if ! DOCKER_BUILDKIT=1 docker build -q --network none -t bench-hello "$dir" >/dev/null 2>&1; then
            builder="classic builder, no buildx" buildkit=0
            DOCKER_BUILDKIT=0 docker build -q --network none -t bench-hello "$dir" >/dev/null
        fi
        docker_row=(-n "docker build ($builder, overlay2, cached)"
            "env DOCKER_BUILDKIT=$buildkit $(type -P /usr/bin/docker docker | head -1) build -q --network none -t bench-hello $dir")
    else
        echo "no overlay2 engine: docker row left out" >&2
    fi
    bench --export-markdown "$work/scratch.md" \
        -n "kiln build" "$k build" \
        -n "kiln export -o FILE" "$k export hello-scratch -o $work/k.tar" \
        -n "cp of the archive" "cp $work/k.tar $work/copy.tar" \
        "${docker_row[@]}"
    echo "archive: $(stat -c %s "$work/k.tar") bytes" >>"$work/report.md"
    cat "$work/scratch.md" >>"$work/report.md"
fi

if want hello-c; then
    cp -r "$repo/examples/hello-c" "$work/hello-c"
    k="$kiln -q --store $work/store-hello -f $work/hello-c/kiln.kdl"
    $k build
    bench --export-markdown "$work/hello.md" -n "kiln build, hello-c" "$k build"
    cat "$work/hello.md" >>"$work/report.md"
fi

# 10,000 files in 100 directories, 1-4 KiB each.
if want tree; then
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
    cat >"$proj/kiln.kdl" <<'KDL'
stage count {
    src "tree"
    run "find tree -type f | wc -l > $out/count"
}
KDL
    k="$kiln -q --store $work/store-big -f $proj/kiln.kdl"
    $k build
    (cd "$proj" && git init -q && git add -A && git -c user.email=b@b -c user.name=b commit -qm init)
    bench --export-markdown "$work/big.md" \
        -n "kiln build, 10,000 files" "$k build" \
        -n "git status --porcelain" "git -C $proj status --porcelain"
    cat "$work/big.md" >>"$work/report.md"
fi
cat "$work/report.md"
