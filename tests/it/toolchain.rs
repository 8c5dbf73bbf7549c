//! End-to-end: the chain host → toolchain image → builder → runtime image,
//! in one kiln.kdl. The toolchain image holds Debian's Go 1.19 (its `go` is
//! dynamically linked: the runtime closure brings ld.so and libc) and a
//! static busybox for a shell; a builder stage runs `from` it in the sandbox.

use crate::common::Project;
use crate::common::engine::DockerEngine;

const SPEC: &str = r#"
stage go-dist {
    tools "go"
    run "mkdir -p $out/usr/lib/go-1.19/pkg/linux_amd64 $out/usr/share/go-1.19 $out/usr/bin"
    run "cd /usr/lib/go-1.19 && cp -a bin VERSION $out/usr/lib/go-1.19/ && cp -a pkg/tool pkg/include $out/usr/lib/go-1.19/pkg/"
    // Precompiled std packages, without those of the go command itself.
    run "cd /usr/lib/go-1.19/pkg/linux_amd64 && for d in *; do [ $d = cmd ] || cp -a $d $out/usr/lib/go-1.19/pkg/linux_amd64/; done"
    run "cp -a /usr/share/go-1.19/src /usr/share/go-1.19/pkg $out/usr/share/go-1.19/ && ln -s ../../share/go-1.19/src $out/usr/lib/go-1.19/src"
    run "ln -s ../lib/go-1.19/bin/go $out/usr/bin/go"
}

stage shell {
    tools "busybox"
    run "mkdir -p $out/bin && cp $(command -v busybox) $out/bin/busybox && for t in sh ls cat mkdir rm; do ln -s busybox $out/bin/$t; done"
}

image go-toolchain {
    copy go-dist "." to="/"
    copy shell "bin" to="/bin"
}

stage hello {
    from go-toolchain
    src "hello.go"
    // No -trimpath needed: the sandbox builds at /src whatever the checkout.
    run "GOCACHE=$TMPDIR/cache GOPATH=$TMPDIR/gopath GO111MODULE=off CGO_ENABLED=0 go build -o $out/hello hello.go"
}

image hello-image {
    copy hello "hello" to="/hello"
    entrypoint "/hello"
    tag "kiln-e2e-go-hello:v1"
}
"#;

const HELLO_GO: &str = r#"package main

import "fmt"

func main() {
	fmt.Println("Hello, world! (go, built in a kiln toolchain image)")
}
"#;

#[test]
fn a_go_hello_built_from_a_kiln_made_toolchain_image_runs_in_docker() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let p = Project::new(SPEC);
    p.write("hello.go", HELLO_GO);
    let out = p.kiln(&["export", "hello-image", "-o", "hello.tar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    engine.docker_ok(&[
        "load",
        "-i",
        p.root().join("hello.tar").to_str().expect("utf-8 path"),
    ]);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-go-hello:v1"]);
    assert_eq!(out, "Hello, world! (go, built in a kiln toolchain image)\n");

    // The toolchain image is part of the builder's key: a rebuild with
    // nothing changed builds nothing, a changed program rebuilds only `hello`.
    let report = p.build(&["hello"]);
    assert!(report.with_status("built").is_empty(), "{:?}", report.0);
    p.write(
        "hello.go",
        &HELLO_GO.replace("Hello, world!", "Hello again!"),
    );
    let report = p.build(&["hello"]);
    assert_eq!(report.with_status("built"), ["hello"]);
}
