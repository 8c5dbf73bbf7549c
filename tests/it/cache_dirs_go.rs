//! `cache` with the tool it is for: Go's build cache, in the examples'
//! toolchain image. The Go toolchain says itself what it compiled
//! (`go build -v` prints each package it compiles, and nothing for one it
//! takes from its cache; `-x` would need the `buildid` tool, which the
//! examples' toolchain leaves out), so reuse is asserted on its word, not
//! on time; and a build with a warm cache gives the bytes a build with an
//! empty one gives.

use std::path::Path;

use crate::common::skip::{require_all, require_sandbox};
use crate::common::{Project, Report, read};

const HELLO: &str =
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello\")\n}\n";

/// The examples' toolchain (imported from examples/toolchains), then a
/// builder that keeps Go's build cache.
fn spec() -> String {
    let toolchain = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/toolchains/go.kdl");
    format!(
        "import {:?} as=go\nstage build {{\n    from go.golang\n    src \"hello.go\"\n    \
         cache \"/tmp/go-cache\"\n    \
         env CGO_ENABLED=\"0\" GOCACHE=\"/tmp/go-cache\" GOPATH=\"/tmp/go\"\n    \
         run \"go build -v -trimpath -o $out/hello hello.go\"\n}}\n",
        toolchain.display().to_string()
    )
}

/// The build log of `stage` in `report`.
fn log(p: &Project, report: &Report, stage: &str) -> String {
    let key = report.key(stage);
    let hex = key.rsplit(':').next().expect("key");
    read(&p.store.join(format!("v2/logs/{}-{stage}.log", &hex[..32])))
}

/// The packages `go build -v` compiled (the program itself is
/// `command-line-arguments`).
fn compiled(log: &str) -> Vec<String> {
    let mut packages: Vec<String> = (log.lines())
        .filter(|l| !l.is_empty() && !l.contains(' '))
        .map(str::to_owned)
        .collect();
    packages.sort();
    packages.dedup();
    packages
}

#[test]
fn an_edited_go_program_reuses_the_go_build_cache_and_builds_the_bytes_an_empty_cache_does() {
    if !require_sandbox() || !require_all(&["go", "busybox"]) {
        return;
    }
    let p = Project::new(&spec());
    p.write("hello.go", HELLO);
    let cold = p.build(&["build"]);
    let first = compiled(&log(&p, &cold, "build"));
    for package in ["fmt", "runtime", "command-line-arguments"] {
        assert!(
            first.iter().any(|c| c == package),
            "cold build compiled {first:?}"
        );
    }

    let edited = HELLO.replace("hello", "hello again");
    p.write("hello.go", &edited);
    let warm = p.build(&["build"]);
    assert_eq!(warm.status("build"), "built");
    assert_eq!(
        compiled(&log(&p, &warm, "build")),
        ["command-line-arguments"],
        "only the edited package compiles: the rest comes from the cache"
    );

    // Another store, its cache empty: the same program, the same bytes.
    let q = Project::new(&spec());
    q.write("hello.go", &edited);
    let empty = q.build(&["build"]);
    let again = compiled(&log(&q, &empty, "build"));
    assert!(again.iter().any(|c| c == "fmt"), "{again:?}");
    assert_eq!(empty.key("build"), warm.key("build"));
    assert_eq!(empty.output_hash("build"), warm.output_hash("build"));
}
