//! End-to-end: `kiln push` to a private registry (`common::registry`),
//! read back by skopeo, a fresh store, Docker and podman, and pushed again
//! to another repository by mounting what the registry has.

use std::process::{Command, Output};

use crate::common::engine::DockerEngine;
use crate::common::registry::{Registry, skopeo};
use crate::common::skip::{require, require_sandbox};
use crate::common::{Project, read};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch image: the host's static busybox (and `sh`) copied from a
/// stage, echoing a greeting; tagged `TAG`.
fn app_project(tag: &str) -> Project {
    Project::new(&format!(
        r#"
stage tools {{
    run "mkdir -p $out/bin && cp /bin/busybox $out/bin/busybox && ln -s busybox $out/bin/sh"
}}
image app {{
    from scratch
    copy tools "bin" to="/bin"
    entrypoint "/bin/busybox" "echo" "hello from a pushed image"
    tag "{tag}"
}}
"#
    ))
}

/// `kiln inspect --json IMAGE`'s manifest digest.
fn inspected_digest(p: &Project, image: &str) -> String {
    let out = p.kiln(&["inspect", image, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v["digest"].as_str().expect("digest").to_owned()
}

#[test]
fn kiln_push_prints_the_digest_skopeo_and_a_fresh_store_see() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let host = registry.host();
    let p = app_project(&format!("{host}/app:tagged"));
    let v1 = format!("{host}/app:v1");
    let out = p.ok(&["push", "app", &v1]);
    let digest = inspected_digest(&p, "app");
    assert_eq!(out, format!("{v1}@{digest}\n"));

    let inspected = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{v1}")]);
    let inspected: serde_json::Value = serde_json::from_slice(&inspected).expect("JSON");
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(registry.manifest_digest("app:v1").to_string(), digest);

    // Again, to two refs at once: the same digest, one line each, in order.
    let v2 = format!("{host}/other:v2");
    let out = p.ok(&["push", "app", &v1, &v2]);
    assert_eq!(out, format!("{v1}@{digest}\n{v2}@{digest}\n"));
    assert_eq!(registry.manifest_digest("other:v2").to_string(), digest);

    // No ref: the image's tags.
    let out = p.ok(&["push", "app"]);
    assert_eq!(out, format!("{host}/app:tagged@{digest}\n"));
    assert_eq!(registry.manifest_digest("app:tagged").to_string(), digest);

    if !require_sandbox() {
        return;
    }
    let fresh = Project::new(&format!(
        r#"
base app {{
    image "{v1}@{digest}"
}}
stage s {{
    from app
    run "/bin/busybox echo from the pushed image > $out/said"
}}
"#
    ));
    let report = fresh.build(&[]);
    assert_eq!(
        read(&report.output("s").join("said")),
        "from the pushed image\n"
    );
}

#[test]
fn docker_pulls_and_runs_what_kiln_pushed() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let v1 = format!("{}/app:v1", registry.host());
    let p = app_project(&v1);
    p.ok(&["push", "app"]);
    let digest = inspected_digest(&p, "app");
    engine.docker_ok(&["pull", &v1]);
    assert_eq!(
        engine.docker_ok(&["run", "--rm", "--network", "none", &v1]),
        "hello from a pushed image\n"
    );
    let repo_digest = engine.docker_ok(&["inspect", "--format", "{{index .RepoDigests 0}}", &v1]);
    assert_eq!(
        repo_digest.trim(),
        format!("{}/app@{digest}", registry.host())
    );
}

#[test]
fn podman_pulls_and_runs_what_kiln_pushed() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !require("podman") {
        return;
    }
    let v1 = format!("{}/app:v1", registry.host());
    let p = app_project(&v1);
    p.ok(&["push", "app"]);
    let digest = inspected_digest(&p, "app");
    let root = tempfile::tempdir().expect("podman root");
    let podman = |args: &[&str]| {
        let out = Command::new("podman")
            .arg("--root")
            .arg(root.path().join("root"))
            .arg("--runroot")
            .arg(root.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("podman");
        assert!(out.status.success(), "podman {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    podman(&["pull", "-q", "--tls-verify=false", &v1]);
    assert_eq!(
        podman(&["image", "inspect", "--format", "{{.Digest}}", &v1]).trim(),
        digest
    );
    // podman's default rlimits (nofile 1048576, …) are above the hard
    // limits of some containers that run these tests; ask for low ones.
    let run = [
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        &v1,
    ];
    assert_eq!(podman(&run), "hello from a pushed image\n");
}

#[test]
fn a_push_to_another_repository_mounts_the_layers_instead_of_sending_them() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let host = registry.host();
    let p = app_project(&format!("{host}/app:tagged"));
    p.ok(&["push", "app", &format!("{host}/first:v1")]);
    let before = registry.log().len();
    p.ok(&["push", "app", &format!("{host}/second:v1")]);
    let log = registry.log()[before..].to_owned();
    let mounts = (log.lines())
        .filter(|l| l.contains("POST /v2/second/blobs/uploads/?mount=sha256%3A"))
        .filter(|l| l.contains("from=first") && l.contains("HTTP/1.1\" 201"))
        .count();
    assert_eq!(mounts, 2, "the layer and the config are mounted:\n{log}");
    assert!(
        !log.contains("\"PATCH /v2/second/"),
        "a layer was uploaded:\n{log}"
    );
    assert_eq!(
        registry.manifest_digest("second:v1"),
        registry.manifest_digest("first:v1")
    );
}
