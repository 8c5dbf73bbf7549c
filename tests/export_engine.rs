//! Exported images in real engines: Docker loads and runs them, podman loads
//! them, skopeo reads both archive flavours, and two exports from fresh
//! directories are byte-identical.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::engine::DockerEngine;
use kiln::export::{self, Compression, Engine, ExportOptions, StageOutput};
use kiln::spec::{
    Command as Cmd, Content, ContentAttrs, Image, ImageRoot, Name, Owner, Spanned, Spec, SrcPath,
};

fn sp<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        span: (0..0).into(),
    }
}

fn attrs(to: &str) -> ContentAttrs {
    ContentAttrs {
        to: sp(to.into()),
        mode: None,
        owner: Owner::default(),
        closure: false,
        closure_extra: Vec::new(),
        span: (0..0).into(),
    }
}

fn copy(stage: &str, path: &str, attrs: ContentAttrs) -> Content {
    Content::Copy {
        stage: sp(Name::new(stage).unwrap()),
        path: sp(SrcPath::new(path).unwrap()),
        attrs,
    }
}

/// Stage outputs made by the test: `app/hello` (static C) and `bb/busybox`.
fn fixture(root: &Path) -> (Spec, BTreeMap<Name, StageOutput>) {
    let app = root.join("out/app");
    std::fs::create_dir_all(&app).unwrap();
    let c = root.join("hello.c");
    let hello = r#"#include <stdio.h>
#include <stdlib.h>
int main(void) { printf("hello from kiln, %s\n", getenv("GREETING")); return 0; }
"#;
    std::fs::write(&c, hello).unwrap();
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(app.join("hello"))
        .arg(&c)
        .status();
    assert!(status.unwrap().success(), "gcc -static builds the fixture");
    std::fs::write(app.join("secret"), "s3cret").unwrap();
    let bb = root.join("out/bb");
    std::fs::create_dir_all(&bb).unwrap();
    std::fs::copy("/bin/busybox", bb.join("busybox")).unwrap();

    let mut secret = attrs("/data/secret");
    secret.mode = Some(0o600);
    secret.owner = Owner {
        uid: 1000,
        gid: 1000,
    };
    let image = Image {
        name: sp(Name::new("hello").unwrap()),
        from: sp(ImageRoot::Scratch),
        contents: vec![
            copy("app", "hello", attrs("/app/hello")),
            copy("bb", "busybox", attrs("/bin/busybox")),
            copy("app", "secret", secret),
        ],
        entrypoint: Some(sp(Cmd::Exec(vec!["/app/hello".into()]))),
        cmd: None,
        env: BTreeMap::from([("GREETING".into(), "world".into())]),
        workdir: Some(sp("/app".into())),
        user: Some(sp("1000:1000".into())),
        expose: vec!["8080/tcp".into()],
        labels: BTreeMap::from([("description".into(), "Demo".into())]),
        volumes: Vec::new(),
        stop_signal: None,
        tags: vec![sp("kiln-hello:v1".into())],
        max_layers: 100,
    };
    let spec = Spec {
        source: Arc::new(miette::NamedSource::new("kiln.kdl", String::new())),
        context: root.to_owned(),
        args: Vec::new(),
        stages: Vec::new(),
        bases: Vec::new(),
        fetches: Vec::new(),
        images: vec![image],
        names: Default::default(),
    };
    let outputs = BTreeMap::from([
        (Name::new("app").unwrap(), StageOutput::scan(&app).unwrap()),
        (Name::new("bb").unwrap(), StageOutput::scan(&bb).unwrap()),
    ]);
    (spec, outputs)
}

fn export_to(root: &Path, compression: Compression) -> (PathBuf, export::Assembled) {
    let (spec, outputs) = fixture(root);
    let opts = ExportOptions {
        compression,
        source_date_epoch: 1_700_000_000,
        ..Default::default()
    };
    let img = export::assemble(
        &spec,
        &spec.images[0],
        &outputs,
        &root.join("layers"),
        &opts,
    )
    .unwrap();
    let tar = root.join(format!("app-{}.tar", compression.name()));
    export::write_archive(&img, std::fs::File::create(&tar).unwrap()).unwrap();
    (tar, img)
}

/// Whether `program` runs; with `KILN_E2E=1` its absence fails the test.
fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var("KILN_E2E").as_deref() != Ok("1"),
        "KILN_E2E=1 but `{program}` is not installed"
    );
    found
}

#[test]
fn exports_are_byte_identical_from_two_fresh_directories() {
    for compression in [Compression::Zstd, Compression::Gzip] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (tar_a, img_a) = export_to(a.path(), compression);
        let (tar_b, img_b) = export_to(b.path(), compression);
        assert_eq!(img_a.digest(), img_b.digest());
        let (bytes_a, bytes_b) = (std::fs::read(tar_a).unwrap(), std::fs::read(tar_b).unwrap());
        assert!(bytes_a == bytes_b, "{compression:?} archives differ");
    }
}

#[test]
fn skopeo_reads_the_archive_as_oci_and_as_docker() {
    if !have("skopeo") {
        eprintln!("skipped: no skopeo");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tar, img) = export_to(dir.path(), Compression::Zstd);
    for transport in ["oci-archive", "docker-archive"] {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("{transport}:{}", tar.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = &img;
    }
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", tar.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["Entrypoint"][0], "/app/hello");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
}

#[test]
fn podman_loads_the_archive() {
    if !have("podman") {
        eprintln!("skipped: no podman");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tar, _) = export_to(dir.path(), Compression::Zstd);
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(dir.path().join("proot"))
            .arg("--runroot")
            .arg(dir.path().join("prun"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = podman(&["load", "-i", tar.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = podman(&["image", "inspect", "kiln-hello:v1"]);
    assert!(
        out.status.success(),
        "podman inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect[0]["Config"]["Entrypoint"][0], "/app/hello");
    assert_eq!(inspect[0]["Config"]["WorkingDir"], "/app");
}

#[test]
fn docker_loads_and_runs_the_image() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // gzip: Docker 20.10 (Debian's docker.io) cannot apply zstd layers.
    let (_, img) = export_to(dir.path(), Compression::Gzip);
    // SAFETY: the only test in this binary that reads or writes DOCKER_HOST.
    unsafe { std::env::set_var("DOCKER_HOST", engine.host()) };
    let tags = export::load(&img, Engine::Docker).unwrap();
    assert_eq!(tags, ["kiln-hello:v1"]);

    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-hello:v1"]);
    assert_eq!(out, "hello from kiln, world\n");

    let ls = [
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "/bin/busybox",
    ];
    let out =
        engine.docker_ok(&[&ls[..], &["kiln-hello:v1", "ls", "-ln", "/data", "/app"]].concat());
    assert!(
        out.contains("-rw-------    1 1000     1000             6 Nov 14  2023 secret"),
        "{out}"
    );
    assert!(out.contains("-rwxr-xr-x    1 0        0"), "{out}");

    let config = engine.docker_ok(&["inspect", "--format", "{{json .Config}}", "kiln-hello:v1"]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["Entrypoint"], serde_json::json!(["/app/hello"]));
    assert_eq!(config["Env"], serde_json::json!(["GREETING=world"]));
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["Labels"]["org.opencontainers.image.title"], "hello");
    let id = engine.docker_ok(&["inspect", "--format", "{{.Id}}", "kiln-hello:v1"]);
    assert_eq!(id.trim(), img.config_digest().to_string());

    // zstd layers need Docker 23+; older engines refuse them.
    let version = engine.docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0);
    let (tar, _) = export_to(&dir.path().join("zstd"), Compression::Zstd);
    let out = engine.docker(&["load", "-i", tar.to_str().unwrap()]);
    if major >= 23 {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("Docker {} rejects zstd layers, as expected", version.trim());
    }
}
