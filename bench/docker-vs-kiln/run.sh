#!/usr/bin/env bash
# Docker vs kiln on examples/hello-scratch and examples/http-sqlite, on this
# machine, in one run: cold build, no-op rebuild, rebuild after editing one
# source file (Docker with and without a BuildKit cache mount for Go's build
# cache), image size, and whether two clean builds give the same image.
# Docker is what its users run: BuildKit (`DOCKER_BUILDKIT=1` with Debian's
# own client, /usr/bin/docker: a newer client on PATH wants buildx) on the
# overlay2 storage driver (vfs, said in the report, where overlay2 cannot
# start), `--network none` (the private engine has no bridge).
# Needs docker.io, hyperfine, golang-go, gcc, busybox-static and
# golang-github-mattn-go-sqlite3-dev. Starts a private engine (own data root
# and socket, no bridge) and stops it by its pid at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${RUNS:-5}
cargo build --release -q --manifest-path "$repo/Cargo.toml"
kiln="$repo/target/release/kiln"

work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
engine_pid=""
stop_engine() {
    if [ -n "$engine_pid" ]; then
        kill "$engine_pid" 2>/dev/null || true
        wait "$engine_pid" 2>/dev/null || true
    fi
    engine_pid=""
}
cleanup() {
    stop_engine
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export DOCKER_HOST="unix://$work/engine/docker.sock" DOCKER_BUILDKIT=1
docker=/usr/bin/docker
# start_engine DRIVER: a private engine; fails if it does not come up.
start_engine() {
    dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver="$1" \
        --data-root "$work/engine/root-$1" --exec-root "$work/engine/exec" \
        -H "$DOCKER_HOST" -p "$work/engine/pid" >"$work/dockerd-$1.log" 2>&1 &
    engine_pid=$!
    for _ in $(seq 1 60); do
        $docker version >/dev/null 2>&1 && return 0
        kill -0 "$engine_pid" 2>/dev/null || break
        sleep 0.5
    done
    stop_engine
    return 1
}
driver=overlay2
if ! start_engine overlay2; then
    driver=vfs
    start_engine vfs
fi
{
    echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "docker: $($docker version -f '{{.Server.Version}}'), BuildKit, storage driver $driver$([ $driver = vfs ] && echo ' (overlay2 did not start here: see dockerd-overlay2.log)')"
    echo
} >"$work/report.md"

# Docker's build image for the CGO example: the host packages kiln's
# `from host` stage uses, as one imported layer, with busybox as /bin/sh.
make_cgo_image() {
    local pkgs list
    pkgs=$(apt-cache depends --recurse --installed --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends \
        gcc libc6-dev libsqlite3-dev golang-1.19-go golang-github-mattn-go-sqlite3-dev \
        busybox-static 2>/dev/null | grep -v '^[ <]' | sort -u)
    list="$work/cgo-files"
    # shellcheck disable=SC2086
    dpkg -L $pkgs 2>/dev/null | sort -u | while read -r f; do
        # Links to directories count too (Go's /usr/lib/go-1.19/src), but
        # not the top-level merged-/usr ones (/bin -> usr/bin): the image
        # keeps real directories there.
        if [ -L "$f" ] && [ -d "$f" ]; then
            case $f in /*/*) printf '%s\n' "${f#/}" ;; esac
        elif [ -L "$f" ] || [ -f "$f" ]; then
            printf '%s\n' "${f#/}"
        fi
    done >"$list"
    mkdir -p "$work/cgo-extra/bin" "$work/cgo-extra/tmp"
    ln -sf busybox "$work/cgo-extra/bin/sh"
    { tar -C / --no-recursion -cf - -T "$list"; } >"$work/cgo.tar"
    tar -C "$work/cgo-extra" -rf "$work/cgo.tar" bin/sh tmp
    $docker import "$work/cgo.tar" go-cgo:bench >/dev/null
}

# bench NAME IMAGE SOURCE: one example both ways (NAME.Dockerfile, and
# NAME.cache.Dockerfile with a cache mount).
bench() {
    local name=$1 image=$2 source=$3 dir="$work/$1"
    cp -R "$repo/examples/$name" "$dir"
    [ -d "$work/toolchains" ] || cp -R "$repo/examples/toolchains" "$work/toolchains"
    cp "$here/$name.Dockerfile" "$dir/Dockerfile"
    cp "$here/$name.cache.Dockerfile" "$dir/cache.Dockerfile"
    cd "$dir"
    local k="$kiln -q --store $work/store-$name"
    local d="$docker build -q --network none -t bench-$name ."
    local dc="$docker build -q --network none -f cache.Dockerfile -t bench-$name-cache ."
    local edit="echo '// edited' >> $source"
    hyperfine -N --runs "$runs" --export-markdown "$work/$name-cold.md" \
        --prepare "rm -rf $work/store-$name" -n "kiln cold" "$k export $image -o k.tar" \
        --prepare "true" -n "docker cold" "$d --no-cache"
    $k export "$image" -o k.tar
    $d >/dev/null
    $dc >/dev/null
    hyperfine -N --warmup 2 --runs "$((runs * 4))" --export-markdown "$work/$name-noop.md" \
        -n "kiln build (no-op)" "$k build" \
        -n "kiln export (no-op)" "$k export $image -o k.tar" \
        -n "docker build (cached)" "$d"
    hyperfine --warmup 1 --runs "$runs" --export-markdown "$work/$name-edit.md" \
        --prepare "$edit" -n "kiln after an edit" "$k export $image -o k.tar" \
        --prepare "$edit" -n "docker after an edit" "$d" \
        --prepare "$edit" -n "docker with a cache mount, after an edit" "$dc"
    git -C "$repo" show "HEAD:examples/$name/$source" >"$source"

    local ksize dsize
    ksize=$($k inspect "$image" --json --compression none |
        python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
    dsize=$($docker image inspect -f '{{.Size}}' "bench-$name")
    local k1 k2 d1 d2
    k1=$(KILN_HOME="$work/clean-a" "$kiln" -q inspect "$image" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
    k2=$(KILN_HOME="$work/clean-b" "$kiln" -q inspect "$image" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
    rm -rf "$work/clean-a" "$work/clean-b"
    d1=$($d --no-cache)
    d2=$($d --no-cache)
    {
        echo "### $name"
        echo
        cat "$work/$name-cold.md" "$work/$name-noop.md" "$work/$name-edit.md"
        echo
        echo "- image size (uncompressed): kiln $ksize bytes, docker $dsize bytes"
        echo "- two clean kiln builds: $k1 / $k2"
        echo "- two docker build --no-cache: $d1 / $d2"
        echo
    } >>"$work/report.md"
    cd "$repo"
}

(cd "$repo/examples/hello-scratch" && "$kiln" -q --store "$work/store-toolchain" export go.golang -o "$work/golang.tar")
$docker load -q -i "$work/golang.tar" >/dev/null
make_cgo_image
# ONLY=http-sqlite runs one of the two.
for example in ${ONLY:-hello-scratch http-sqlite}; do
    case $example in
    hello-scratch) bench hello-scratch hello-scratch hello.go ;;
    http-sqlite) bench http-sqlite go-http-demo src/main.go ;;
    esac
done
cat "$work/report.md"
