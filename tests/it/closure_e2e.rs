//! The runtime closure end to end, through the `kiln` binary: dynamically
//! linked programs built `from host` (C with zlib, CGO Go with go-sqlite3)
//! copied into `from scratch` images that run in a real Docker engine and
//! hold exactly their closure; shared libc layers; an unresolvable library;
//! `kiln why`; `closure=#false`; `layers max=N`.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::common::Project;
use crate::common::engine::DockerEngine;
use crate::common::skip::require_debian_x86_64;

const ZLIB_C: &str = r#"#include <stdio.h>
#include <zlib.h>
int main(void) { printf("zlib %s\n", zlibVersion()); return 0; }
"#;

const HELLO_C: &str = r#"#include <stdio.h>
int main(void) { puts("hello"); return 0; }
"#;

const ZLIB_SPEC: &str = r#"
stage zprog {
    tools "gcc"
    src "z.c"
    run "gcc -O2 -o $out/zprog z.c -lz"
}

stage hello {
    tools "gcc"
    src "hello.c"
    run "gcc -O2 -o $out/hello hello.c"
}

image zimg {
    copy zprog "zprog" to="/app/zprog"
    entrypoint "/app/zprog"
    tag "kiln-e2e-zlib:v1"
}

image himg {
    copy hello "hello" to="/app/hello"
    add "motd" to="/etc/motd"
    entrypoint "/app/hello"
}
"#;

fn zlib_project(spec: &str) -> Project {
    let p = Project::new(spec);
    p.write("z.c", ZLIB_C);
    p.write("hello.c", HELLO_C);
    p.write("motd", "welcome\n");
    p
}

fn inspect(p: &Project, image: &str) -> serde_json::Value {
    let out = p.ok(&["inspect", image, "--json"]);
    serde_json::from_str(&out).expect("inspect JSON")
}

fn export(p: &Project, image: &str) -> PathBuf {
    let file = format!("{image}.tar");
    p.ok(&["export", image, "-o", &file]);
    p.root().join(file)
}

/// Every path (no trailing `/`) in every layer of a kiln archive.
fn image_paths(archive: &Path) -> BTreeSet<String> {
    let mut blobs = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
    for entry in ar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        blobs.insert(path, bytes);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&blobs["manifest.json"]).expect("manifest.json");
    let mut paths = BTreeSet::new();
    for layer in manifest[0]["Layers"].as_array().expect("layers") {
        let gz = flate2::read::GzDecoder::new(&blobs[layer.as_str().expect("str")][..]);
        for entry in tar::Archive::new(gz).entries().expect("layer entries") {
            let entry = entry.expect("layer entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            paths.insert(path.trim_end_matches('/').to_owned());
        }
    }
    paths
}

fn libz_real() -> String {
    let target = std::fs::read_link("/usr/lib/x86_64-linux-gnu/libz.so.1").expect("libz link");
    format!(
        "usr/lib/x86_64-linux-gnu/{}",
        target.to_str().expect("utf-8")
    )
}

#[test]
fn a_zlib_program_from_scratch_holds_exactly_its_closure() {
    if !require_debian_x86_64() {
        return;
    }
    let p = zlib_project(ZLIB_SPEC);
    let expected: BTreeSet<String> = [
        "app",
        "app/zprog",
        "lib",
        "lib64",
        "usr",
        "usr/lib",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libz.so.1",
        &libz_real(),
        "usr/lib64",
        "usr/lib64/ld-linux-x86-64.so.2",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(image_paths(&export(&p, "zimg")), expected);

    let v = inspect(&p, "zimg");
    let roles: Vec<&str> = (v["layers"].as_array().expect("layers").iter())
        .map(|l| l["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["closure", "closure", "copy"], "{v}");
    assert_eq!(v["closure"]["files"], 7, "{v}");

    // `layers max=2` merges the two smallest adjacent layers; the
    // filesystem stays the same.
    let merged = zlib_project(&ZLIB_SPEC.replace(
        "tag \"kiln-e2e-zlib:v1\"",
        "tag \"kiln-e2e-zlib:v1\"\n    layers max=2",
    ));
    assert_eq!(image_paths(&export(&merged, "zimg")), expected);
    let layers = inspect(&merged, "zimg")["layers"].clone();
    assert_eq!(layers.as_array().expect("layers").len(), 2, "{layers}");
    assert_eq!(layers[1]["role"], "merged", "{layers}");
}

#[test]
fn a_zlib_program_from_scratch_runs_in_docker() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let p = zlib_project(ZLIB_SPEC);
    let tar = export(&p, "zimg");
    engine.docker_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-zlib:v1"]);
    assert!(out.starts_with("zlib 1."), "{out}");
}

#[test]
fn two_images_whose_programs_need_libc_share_the_libc_layer() {
    let p = zlib_project(ZLIB_SPEC);
    let libc_layer = |image: &str| {
        let v = inspect(&p, image);
        let layers = v["layers"].as_array().expect("layers").clone();
        let first = layers.first().expect("a layer").clone();
        assert_eq!(first["role"], "closure", "{v}");
        first["digest"].as_str().expect("digest").to_owned()
    };
    assert_eq!(libc_layer("zimg"), libc_layer("himg"));
}

#[test]
fn an_unresolvable_library_fails_naming_program_and_library() {
    let p = Project::new(
        r#"
stage libfoo {
    tools "gcc"
    src "foo.c"
    run "gcc -shared -fPIC -o $out/libfoo.so foo.c"
}

stage app {
    tools "gcc"
    use libfoo
    src "main.c"
    run "gcc -o $out/app main.c -L$libfoo -lfoo"
}

image broken {
    copy app "app" to="/bin/app"
    entrypoint "/bin/app"
}
"#,
    );
    p.write("foo.c", "int foo(void) { return 42; }\n");
    p.write(
        "main.c",
        "int foo(void);\nint main(void) { return foo() == 42 ? 0 : 1; }\n",
    );
    let out = p.kiln(&["export", "broken", "-o", "broken.tar"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`/bin/app` needs `libfoo.so`"), "{stderr}");
    assert!(
        stderr.contains(r#"copy app "app" to="/bin/app""#),
        "the diagnostic points at the copy:\n{stderr}"
    );
    assert!(stderr.contains("closure=#false"), "{stderr}");
    assert!(!p.root().join("broken.tar").exists());
}

#[test]
fn kiln_why_names_the_copy_the_add_and_the_library_chain() {
    if !require_debian_x86_64() {
        return;
    }
    let p = zlib_project(ZLIB_SPEC);
    let why = |image: &str, path: &str| p.ok(&["why", image, path]);
    crate::snapshot!(
        "why_closure",
        &p,
        why("zimg", "/usr/lib/x86_64-linux-gnu/libz.so.1")
    );
    crate::snapshot!("why_add", &p, why("himg", "/etc/motd"));
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["why", "zimg", "/lib64/ld-linux-x86-64.so.2", "--json"]))
            .expect("why JSON");
    assert_eq!(
        json["resolved"],
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    );
    assert_eq!(json["origin"]["via"], "closure");
    assert_eq!(
        json["origin"]["chain"],
        serde_json::json!(["/app/zprog", "interpreter /lib64/ld-linux-x86-64.so.2"])
    );

    let out = p.kiln(&["why", "zimg", "/etc/motd"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "/etc/motd is not in image `zimg`"
    );
}

#[test]
fn closure_false_leaves_the_libraries_out_and_closure_extra_adds_files() {
    if !require_debian_x86_64() {
        return;
    }
    let p = zlib_project(&ZLIB_SPEC.replace(
        r#"copy hello "hello" to="/app/hello""#,
        r#"copy hello "hello" to="/app/hello" closure=#false"#,
    ));
    let v = inspect(&p, "himg");
    let roles: Vec<&str> = (v["layers"].as_array().expect("layers").iter())
        .map(|l| l["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["copy", "add"], "{v}");
    assert_eq!(v["closure"]["files"], 0);

    // /etc/os-release is a symlink to ../usr/lib/os-release on Debian: the
    // link and its target both come along.
    let p = zlib_project(&ZLIB_SPEC.replace(
        r#"copy zprog "zprog" to="/app/zprog""#,
        "copy zprog \"zprog\" to=\"/app/zprog\" {\n        closure-extra \"/etc/os-release\"\n    }",
    ));
    let paths = image_paths(&export(&p, "zimg"));
    assert!(paths.contains("etc/os-release"), "{paths:?}");
    assert!(paths.contains("usr/lib/os-release"), "{paths:?}");
    let why = p.ok(&["why", "zimg", "/usr/lib/os-release"]);
    crate::snapshot!("why_closure_extra", &p, why);
}

#[test]
fn a_directory_where_the_closure_needs_a_symlink_is_an_error() {
    if !require_debian_x86_64() {
        return;
    }
    let p = zlib_project(&ZLIB_SPEC.replace(
        r#"add "motd" to="/etc/motd""#,
        r#"add "motd" to="/lib/motd""#,
    ));
    let out = p.kiln(&["export", "himg", "-o", "himg.tar"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // miette wraps long messages behind a `│` margin.
    let words: Vec<&str> = stderr.split_whitespace().filter(|w| *w != "│").collect();
    let stderr = words.join(" ");
    assert!(
        stderr.contains("needs `/lib` to be a symlink to `usr/lib`, but the image has a directory"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"copy hello "hello" to="/app/hello""#),
        "{stderr}"
    );
}

const SQLITE_GO: &str = r#"package main

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
	if _, err := db.Exec("create table t (v text); insert into t values ('kiln')"); err != nil {
		panic(err)
	}
	if err := db.QueryRow("select v || ' on sqlite ' || sqlite_version() from t").Scan(&v); err != nil {
		panic(err)
	}
	fmt.Println(v)
}
"#;

/// Debian's go-sqlite3 (golang-github-mattn-go-sqlite3-dev) in GOPATH mode,
/// offline; it links the system libsqlite3 dynamically.
const SQLITE_SPEC: &str = r#"
stage sqlapp {
    tools "go" "gcc"
    src "main.go"
    env GO111MODULE="off" CGO_ENABLED="1"
    run "export GOPATH=$PWD/gopath:/usr/share/gocode GOCACHE=$PWD/gocache && go build -o $out/sqlapp main.go"
}

image sqlimg {
    copy sqlapp "sqlapp" to="/app/sqlapp"
    entrypoint "/app/sqlapp"
    tag "kiln-e2e-sqlite:v1"
}
"#;

#[test]
fn a_cgo_sqlite_program_from_scratch_answers_a_query_in_docker() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let p = Project::new(SQLITE_SPEC);
    p.write("main.go", SQLITE_GO);
    let started = std::time::Instant::now();
    let tar = export(&p, "sqlimg");
    eprintln!("go build + export: {:?}", started.elapsed());
    engine.docker_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-sqlite:v1"]);
    assert!(out.starts_with("kiln on sqlite 3."), "{out}");
    let why = p.ok(&["why", "sqlimg", "/lib/x86_64-linux-gnu/libsqlite3.so.0"]);
    assert!(
        why.contains("needed through /app/sqlapp → libsqlite3.so.0"),
        "{why}"
    );
}
