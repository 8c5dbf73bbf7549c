#!/usr/bin/env bash
# Image size: one CGO Go program using go-sqlite3 (Debian's
# golang-github-mattn-go-sqlite3-dev, GOPATH mode, offline), packaged three
# ways by kiln:
#   closure  dynamically linked, `from scratch` + its runtime closure
#   busybox  the same binary + closure on a busybox runtime base (Debian's
#            static busybox at /bin/busybox, /bin/sh -> busybox)
#   static   linked fully statically (-linkmode external -extldflags
#            "-static -lm": Debian's libsqlite3.a needs libm named)
# plus a static C hello, to show what an image adds around one binary.
# Each stage runs the program it built, so every binary is known to work.
# Prints a markdown table of uncompressed (tar) and gzip layer sizes; the
# figures go to BENCHMARKS.md. Needs go, gcc, busybox, jq.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
kiln="$PWD/target/release/kiln"
work=$(mktemp -d /tmp/kiln-bench-size.XXXXXX)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
export KILN_HOME="$work/store"
proj="$work/proj"
mkdir -p "$proj"

cat >"$proj/main.go" <<'GO'
package main

import (
	"database/sql"
	"fmt"

	_ "github.com/mattn/go-sqlite3"
)

func main() {
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		panic(err)
	}
	var v string
	if err := db.QueryRow("select sqlite_version()").Scan(&v); err != nil {
		panic(err)
	}
	fmt.Println("sqlite", v)
}
GO
printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$proj/hello.c"

cat >"$proj/kiln.kdl" <<'KDL'
stage sqlapp {
    tools "go" "gcc"
    src "main.go"
    env GO111MODULE="off" CGO_ENABLED="1"
    run "export GOPATH=$PWD/gp:/usr/share/gocode GOCACHE=$PWD/cache && go build -o $out/sqlapp main.go && $out/sqlapp"
}
stage sqlstatic {
    tools "go" "gcc"
    src "main.go"
    env GO111MODULE="off" CGO_ENABLED="1"
    run #"export GOPATH=$PWD/gp:/usr/share/gocode GOCACHE=$PWD/cache && go build -ldflags '-linkmode external -extldflags "-static -lm"' -o $out/sqlapp main.go && $out/sqlapp"#
}
stage busybox {
    tools "busybox"
    run "mkdir -p $out/bin && cp \"$(command -v busybox)\" $out/bin/busybox && ln -s busybox $out/bin/sh"
}
stage hello {
    tools "gcc"
    src "hello.c"
    run "gcc -static -O2 -o $out/hello hello.c && $out/hello"
}
image closure-img {
    copy sqlapp "sqlapp" to="/app/sqlapp"
    entrypoint "/app/sqlapp"
}
image busybox-img {
    copy busybox "bin" to="/bin"
    copy sqlapp "sqlapp" to="/app/sqlapp"
    entrypoint "/app/sqlapp"
}
image static-img {
    copy sqlstatic "sqlapp" to="/app/sqlapp"
    entrypoint "/app/sqlapp"
}
image hello-img {
    copy hello "hello" to="/app/hello"
    entrypoint "/app/hello"
}
KDL

cd "$proj"
"$kiln" -q build
echo "| image | layers | uncompressed | gzip |"
echo "|-------|-------:|-------------:|-----:|"
for image in closure busybox static; do
    "$kiln" -q inspect "$image-img" --json >"$work/$image.json"
    jq -r --arg i "$image" \
        '"| \($i) | \(.layers | length) | \([.layers[].uncompressed_size] | add) | \(.size) |"' \
        "$work/$image.json"
done
closure=$(jq '[.layers[].uncompressed_size] | add' "$work/closure.json")
static=$(jq '[.layers[].uncompressed_size] | add' "$work/static.json")
echo
echo "closure vs static (uncompressed): $(( (closure - static) * 1000 / static )) per mille"
echo "binaries: dynamic $(stat -c %s "$("$kiln" -q store path sqlapp)/sqlapp")," \
    "static $(stat -c %s "$("$kiln" -q store path sqlstatic)/sqlapp")"
jq -r '.layers[] | "  closure image layer: \(.role) \(.uncompressed_size) \(.created_by)"' "$work/closure.json"

# The static hello: its layer is the binary plus tar framing; the image adds
# a config and a manifest.
"$kiln" -q export hello-img -o "$work/hello.tar" --compression none
binary=$(stat -c %s "$("$kiln" -q store path hello)/hello")
layer=$("$kiln" -q inspect hello-img --json --compression none | jq '.layers[0].uncompressed_size')
manifest=$(tar -xOf "$work/hello.tar" index.json | jq -r '.manifests[0].digest' | cut -d: -f2)
msize=$(tar -xOf "$work/hello.tar" "blobs/sha256/$manifest" | wc -c)
csize=$(tar -xOf "$work/hello.tar" "blobs/sha256/$manifest" | jq '.config.size')
echo
echo "static hello: binary $binary B, layer tar $layer B (+$((layer - binary)) B framing)," \
    "config $csize B + manifest $msize B = $((csize + msize)) B of metadata"
