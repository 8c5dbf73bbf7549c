#!/usr/bin/env bash
# Export: `kiln export` of an image holding a ~500 MB generated tree (half
# text-like, compressible; half random; a few thousand files of mixed sizes),
# with a cold layer cache and a warm one, against `tar | zstd -3 -T0` and
# `tar | pigz -6` on the same tree and `docker save` of the same image loaded
# into a private engine. The build itself is not timed. Needs hyperfine, zstd,
# pigz, python3; dockerd and docker for the `docker save` row (skipped without
# them). Prints hyperfine's tables; figures go to BENCHMARKS.md. About 4
# minutes. TREE=go exports a copy of the host's Go installation
# (/usr/lib/go-1.19, Debian's golang-1.19-go: real source and binaries)
# instead of the generated tree.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
kiln="$PWD/target/release/kiln"
work=$(mktemp -d /tmp/kiln-bench-export.XXXXXX)
dockerd_pid=""
cleanup() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    [ -n "${engine:-}" ] && rm -rf "$engine"
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export KILN_HOME="$work/store"
export SOURCE_DATE_EPOCH=0
proj="$work/proj"
mkdir -p "$proj"

# The generator (bench/gen-tree.py): seeded, so every run (and machine) gets
# the same tree. Text files are slices of an 8 MiB word soup (a window larger
# than zstd -3's keeps them from compressing better than real text would);
# random files are random bytes. Sizes: 4 x 32 MiB, 40 x 4 MiB, 3,000 files
# of 256 B-512 KiB (log-uniform), alternating text and random.
cp bench/gen-tree.py "$proj/gen.py"
case ${TREE:-generated} in
generated) data_stage='
    tools "python3"
    src "gen.py"
    run "python3 gen.py $out/data"' ;;
go) data_stage='
    tools "go"
    run "cp -RL /usr/lib/go-1.19 $out/data"' ;;
*) echo "TREE is generated or go" >&2; exit 2 ;;
esac
cat >"$proj/kiln.kdl" <<KDL
stage data {$data_stage
}
image big {
    copy data "data" to="/data"
}
KDL
# /usr/bin first: a pyenv shim is no program a stage can run (and `export`
# resolves the tools again: the same python3 keeps the stage cached).
export PATH="/usr/bin:$PATH"
"$kiln" -q -f "$proj/kiln.kdl" build
data=$(echo "$KILN_HOME"/v2/store/*-data/data)
echo "tree: $(find "$data" -type f | wc -l) files, $(du -sb "$data" | cut -f1) bytes"

exp="$kiln -q -f $proj/kiln.kdl export big"
# Cold: no layer cache and no stored image (an image is a store entry, keyed
# with its compression, that holds its layers' blobs), so `export` packs the
# layer. `--prepare` drops both, and every command's previous output: kiln's
# archive and the baselines' files alike (replacing a 328 MB file costs
# about 0.2 s here, whichever command does it; until 2026-11-30 only kiln's
# was deleted, which charged that cost to the baselines alone). Not the page
# cache: every command reads the tree from memory, as after a build. It ends
# with `sync`, for every command: kiln writes twice what `tar | zstd` writes
# (the blob into the store, then the archive), and the writeback of one run
# would otherwise land in the next, whichever command that is.
cat >"$work/cold.sh" <<SH
rm -rf "$KILN_HOME/v2/layers" "$work/x.tar" "$work/y.tar.zst" "$work/y.tar.gz"
for d in "$KILN_HOME"/v2/store/*-big; do
    [ -e "\$d" ] || continue
    k=\$(basename "\$d")
    chmod -R u+w "\$d"
    rm -rf "\$d" "$KILN_HOME/v2/meta/\${k%-big}.json"
done
# No run pays for the writeback of the one before it.
sync
SH
hyperfine -N --warmup 1 --runs 5 --export-markdown "$work/cold.md" \
    --prepare "sh $work/cold.sh" \
    -n "kiln export, zstd, cold" "$exp -o $work/x.tar --compression zstd" \
    -n "kiln export, gzip, cold" "$exp -o $work/x.tar --compression gzip" \
    -n "tar | zstd -3 -T0" "sh -c 'tar -C $data -cf - . | zstd -q -3 -T0 > $work/y.tar.zst'" \
    -n "tar | pigz -6" "sh -c 'tar -C $data -cf - . | pigz -6 > $work/y.tar.gz'"
for c in zstd gzip; do
    $exp -o "$work/x.tar" --compression $c
    echo "$c archive: $(stat -c %s "$work/x.tar") bytes"
done
# The runs deleted each other's outputs: one more of each, to measure them.
echo "tar | zstd: $(tar -C "$data" -cf - . | zstd -q -3 -T0 | wc -c) bytes"
echo "tar | pigz: $(tar -C "$data" -cf - . | pigz -6 | wc -c) bytes"
hyperfine -N --warmup 2 --runs 10 --export-markdown "$work/warm.md" \
    --prepare "rm -f $work/x.tar" \
    -n "kiln export, zstd, warm" "$exp -o $work/x.tar --compression zstd" \
    -n "kiln export, gzip, warm" "$exp -o $work/x.tar --compression gzip"
cat "$work/cold.md" "$work/warm.md"

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    echo "no dockerd: docker save skipped"
    exit 0
fi
# A private engine, as tests/it/common/engine.rs starts it. Docker 20.10 loads
# gzip layers only, hence the gzip archive.
engine=$(mktemp -d /tmp/kd.XXXXXX)
export DOCKER_HOST="unix://$engine/docker.sock"
dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$work/docker-root" --exec-root "$engine/exec" \
    -H "$DOCKER_HOST" -p "$engine/pid" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 240); do docker version >/dev/null 2>&1 && break; sleep 0.25; done
docker load -q -i "$work/x.tar"
hyperfine -N --warmup 1 --runs 5 --export-markdown "$work/docker.md" \
    --prepare "rm -f $work/z.tar" \
    -n "docker save" "docker save big:latest -o $work/z.tar"
echo "docker save archive: $(stat -c %s "$work/z.tar") bytes"
cat "$work/docker.md"
