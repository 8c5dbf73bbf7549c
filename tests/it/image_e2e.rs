//! End-to-end through the `kiln` binary: build → export → load and run in a
//! real Docker engine (gzip, and zstd from Docker 23 on); podman and skopeo
//! read the same archive; two clean stores in two directories give the same
//! bytes. What needs no engine is in `image_cli`.

use std::process::Command;

use crate::common::engine::DockerEngine;
use crate::common::skip::{require, require_all};
use crate::common::{Project, read};

pub const HELLO_C: &str = r#"#include <stdio.h>
#include <stdlib.h>
int main(void) {
    const char *who = getenv("WHO");
    printf("hello from %s\n", who ? who : "nobody");
    return 0;
}
"#;

pub const HELLO_SPEC: &str = r#"
stage hello {
    tools "gcc"
    src "hello.c"
    run "gcc -static -O2 -o $out/hello hello.c"
}

image hello-image {
    from scratch
    copy hello "hello" to="/app/hello"
    entrypoint "/app/hello"
    env WHO="kiln"
    workdir "/app"
    user "1000:1000"
    tag "kiln-e2e-hello:v1"
}
"#;

fn hello_project() -> Project {
    let p = Project::new(HELLO_SPEC);
    p.write("hello.c", HELLO_C);
    p
}

/// `kiln export IMAGE -o FILE EXTRA…`, asserting success.
fn export(p: &Project, image: &str, file: &str, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["export", image, "-o", file];
    args.extend_from_slice(extra);
    let out = p.kiln(&args);
    assert!(
        out.status.success(),
        "kiln export failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.root().join(file)
}

fn sha256_file(path: &std::path::Path) -> String {
    kiln::hash::Digest::of(&std::fs::read(path).expect("read archive")).to_string()
}

#[test]
fn a_static_hello_from_scratch_runs_in_docker_with_its_config() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let p = hello_project();
    let tar = export(&p, "hello-image", "hello.tar", &[]);
    engine.docker_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-hello:v1"]);
    assert_eq!(out, "hello from kiln\n");
    let config = engine.docker_ok(&[
        "inspect",
        "--format",
        "{{json .Config}}",
        "kiln-e2e-hello:v1",
    ]);
    let config: serde_json::Value = serde_json::from_str(&config).expect("inspect JSON");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/app/hello"]));
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(
        config["Labels"]["org.opencontainers.image.title"],
        "hello-image"
    );
    // Docker's image ID is the config digest kiln reports.
    let inspect = p.kiln(&["inspect", "hello-image", "--json"]);
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("JSON");
    let id = engine.docker_ok(&["inspect", "--format", "{{.Id}}", "kiln-e2e-hello:v1"]);
    assert_eq!(id.trim(), inspect["config_digest"]);
    assert!(
        config["Env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e == "WHO=kiln"),
        "{config}"
    );
}

#[test]
fn kiln_load_hands_the_image_to_docker_and_prints_its_tag() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let p = hello_project();
    let out = p
        .cmd(&["load", "hello-image"])
        .env("DOCKER_HOST", engine.host())
        .output()
        .expect("kiln load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "kiln-e2e-hello:v1"
    );
    assert_eq!(
        engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-hello:v1"]),
        "hello from kiln\n"
    );
}

#[test]
fn two_clean_stores_in_two_directories_give_identical_archives() {
    for compression in ["gzip", "zstd"] {
        let (a, b) = (hello_project(), hello_project());
        let ta = export(
            &a,
            "hello-image",
            "img.tar",
            &["--compression", compression],
        );
        let tb = export(
            &b,
            "hello-image",
            "img.tar",
            &["--compression", compression],
        );
        assert_ne!(ta, tb);
        assert_eq!(
            sha256_file(&ta),
            sha256_file(&tb),
            "{compression} archives differ"
        );
        let digest = |p: &Project| {
            let out = p.kiln(&[
                "inspect",
                "hello-image",
                "--json",
                "--compression",
                compression,
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
            v["digest"].as_str().expect("digest").to_owned()
        };
        assert_eq!(digest(&a), digest(&b));
    }
}

#[test]
fn podman_loads_and_skopeo_reads_the_same_archive() {
    if !require_all(&["podman", "skopeo"]) {
        return;
    }
    let p = hello_project();
    let tar = export(&p, "hello-image", "hello.tar", &[]);
    let tar = tar.to_str().expect("utf-8 path");
    for transport in [
        format!("oci-archive:{tar}"),
        format!("docker-archive:{tar}"),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", "--config", &transport])
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo {transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config JSON");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/app/hello"]),
            "{transport}"
        );
    }
    let root = tempfile::tempdir().expect("podman root");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(root.path().join("root"))
            .arg("--runroot")
            .arg(root.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("podman")
    };
    let out = podman(&["load", "-i", tar]);
    assert!(
        out.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = podman(&["image", "inspect", "kiln-e2e-hello:v1"]);
    assert!(
        out.status.success(),
        "podman inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("podman JSON");
    assert_eq!(
        v[0]["Config"]["Entrypoint"],
        serde_json::json!(["/app/hello"])
    );
    assert_eq!(v[0]["Config"]["User"], "1000:1000");
}

#[test]
fn a_directory_copy_keeps_modes_and_owner_inside_the_container() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    if !require("busybox") {
        return;
    }
    let busybox = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v busybox"])
            .output()
            .expect("sh")
            .stdout,
    )
    .expect("utf-8");
    let p = Project::new(&format!(
        r#"
        stage tools {{
            run "mkdir -p $out/bin && cp {} $out/bin/busybox"
        }}
        stage site {{
            run "mkdir -p $out/site/sub && echo hi > $out/site/index.html && echo s > $out/site/sub/secret"
        }}
        image listing {{
            copy tools "bin/busybox" to="/bin/busybox"
            copy site "site" to="/srv/site" mode=0o640 owner="1000:2000"
            entrypoint "/bin/busybox" "ls" "-lnR" "/srv/site"
            tag "kiln-e2e-listing:v1"
        }}
        "#,
        busybox.trim()
    ));
    let out = p
        .cmd(&["export", "listing", "-o", "listing.tar"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("kiln export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = p.root().join("listing.tar");
    engine.docker_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-listing:v1"]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
            .to_owned()
    };
    for file in ["index.html", "secret"] {
        let l = line(file);
        assert!(l.starts_with("-rw-r-----"), "{l}");
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert_eq!((fields[2], fields[3]), ("1000", "2000"), "{l}");
        // SOURCE_DATE_EPOCH, as the container sees it.
        assert_eq!(fields[5..8], ["Nov", "14", "2023"], "{l}");
    }
}

#[test]
fn the_static_hello_image_is_the_binary_plus_a_little_metadata() {
    let p = hello_project();
    let out = p.kiln(&["inspect", "hello-image", "--json", "--compression", "none"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    let report = p.build(&["hello"]);
    let binary = std::fs::metadata(report.output("hello").join("hello"))
        .expect("binary")
        .len();
    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{v}");
    let layer = layers[0]["size"].as_u64().expect("size");
    // A tar pads to 512-byte blocks and adds headers for /app and the file.
    assert!(
        layer >= binary && layer - binary < 4096,
        "layer {layer} vs binary {binary}"
    );
}

#[test]
fn an_oci_directory_export_replaces_an_old_layout_but_never_other_files() {
    let p = hello_project();
    export(&p, "hello-image", "layout", &["--format", "oci"]);
    export(
        &p,
        "hello-image",
        "layout",
        &["--format", "oci", "--compression", "zstd"],
    );
    let blobs = std::fs::read_dir(p.root().join("layout/blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(
        blobs, 3,
        "config, manifest and one layer; no blobs left from the first export"
    );
    if require("skopeo") {
        let layout = format!(
            "oci:{}:kiln-e2e-hello:v1",
            p.root().join("layout").display()
        );
        let out = Command::new("skopeo")
            .args(["inspect", &layout])
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    p.write("notes/keep.txt", "mine\n");
    let out = p.kiln(&["export", "hello-image", "-o", "notes", "--format", "oci"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an OCI layout"));
    assert_eq!(read(&p.root().join("notes/keep.txt")), "mine\n");
}

/// Docker 23 and later load zstd layers (older engines cannot apply them,
/// which is why gzip is the default).
#[test]
fn docker_loads_zstd_layers_from_version_23() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let p = hello_project();
    let tar = export(&p, "hello-image", "zstd.tar", &["--compression", "zstd"]);
    let version = engine.docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    let major: u32 = (version.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .expect("a Docker version");
    if major < 23 {
        eprintln!("Docker {} cannot load zstd layers", version.trim());
        return;
    }
    let out = engine.docker(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "Docker {}: {}",
        version.trim(),
        String::from_utf8_lossy(&out.stderr)
    );
}
