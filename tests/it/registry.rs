//! End-to-end against a private registry (`common::registry`): bases pulled
//! by digest (`base NAME { image "HOST/REPO:TAG@sha256:…" }`, a manifest or
//! an index resolved to a platform), pulls that must be refused (a digest
//! the registry lacks, a tampered blob or manifest); `kiln push` is in
//! registry_push.rs. The `harness_` tests
//! check the registry helpers themselves, without kiln.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
use crate::common::registry::{Registry, StartError, agent, arch_image};
use crate::common::skip::require_sandbox;
use crate::common::{Project, read};
use kiln::hash::Digest;

/// The Go name of this machine's architecture, and the other one of the
/// index the tests push.
fn host_and_other_arch() -> (&'static str, &'static str) {
    if cfg!(target_arch = "aarch64") {
        ("arm64", "amd64")
    } else {
        ("amd64", "arm64")
    }
}

/// Pushes the busybox image as a docker-archive to `bb:1`; its manifest
/// digest.
fn push_busybox(registry: &Registry) -> Digest {
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb.tar");
    // A docker-archive cannot carry zstd layers.
    write_docker_archive(&busybox_image_with(Compress::Gzip), &archive);
    registry.push_archive(&archive, "docker-archive", "bb:1")
}

/// The layer digests of the manifest `reference` names in `registry`.
fn layers(registry: &Registry, reference: &str) -> Vec<Digest> {
    let raw = registry.raw_manifest(reference);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).expect("manifest JSON");
    (manifest["layers"].as_array().expect("layers").iter())
        .map(|l| {
            l["digest"]
                .as_str()
                .expect("digest")
                .parse()
                .expect("a digest")
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every regular file under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let entry = entry.expect("dir entry");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            found.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
    found
}

// ---- the harness -------------------------------------------------------

#[test]
fn harness_push_archive_returns_the_digest_the_registry_serves() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let digest = push_busybox(&registry);
    let http = agent(Duration::from_secs(10));
    let url = format!("http://{}/v2/bb/manifests/1", registry.host());
    let mut response = (http.get(&url))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, \
             application/vnd.oci.image.manifest.v1+json",
        )
        .call()
        .expect("GET the manifest");
    assert_eq!(response.status(), 200, "{}", registry.log());
    let header = (response.headers().get("Docker-Content-Digest"))
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let body = response.body_mut().read_to_vec().expect("manifest body");
    assert_eq!(header.as_deref(), Some(digest.to_string().as_str()));
    assert_eq!(Digest::of(&body), digest);
    // Every blob it names is where `blob` says, with the bytes it names.
    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let mut blobs = layers(&registry, "bb:1");
    blobs.push(
        manifest["config"]["digest"]
            .as_str()
            .expect("config")
            .parse()
            .expect("a digest"),
    );
    assert_eq!(blobs.len(), 4, "{manifest}");
    for blob in blobs.iter().chain([&digest]) {
        let bytes = std::fs::read(registry.blob(blob)).expect("a stored blob");
        assert_eq!(Digest::of(&bytes), *blob);
    }
}

#[test]
fn harness_oci_archives_push_too() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb-oci.tar");
    crate::common::images::write_oci_archive(&busybox_image_with(Compress::Zstd), &archive);
    let digest = registry.push_archive(&archive, "oci-archive", "bb:oci");
    assert_eq!(registry.manifest_digest(&format!("bb@{digest}")), digest);
    let manifest: serde_json::Value =
        serde_json::from_slice(&registry.raw_manifest("bb:oci")).expect("JSON");
    assert_eq!(
        manifest["layers"][2]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "skopeo kept the zstd layer"
    );
}

#[test]
fn harness_index_names_one_manifest_per_platform() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let (amd, arm) = (arch_image("amd64"), arch_image("arm64"));
    let pushed = registry.push_index(&amd, &arm, "multi:1");
    let raw = registry.raw_manifest("multi:1");
    assert_eq!(Digest::of(&raw), pushed.index);
    let index: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_ne!(pushed.amd64, pushed.arm64);
    for (digest, image, arch) in [(pushed.amd64, &amd, "amd64"), (pushed.arm64, &arm, "arm64")] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&registry.raw_manifest(&format!("multi@{digest}")))
                .expect("JSON");
        assert_eq!(
            manifest["config"]["digest"],
            image.id().to_string(),
            "{arch}"
        );
        let config = std::fs::read(registry.blob(&image.id())).expect("config blob");
        let config: serde_json::Value = serde_json::from_slice(&config).expect("JSON");
        assert_eq!(config["architecture"], arch);
    }
}

#[test]
fn harness_registries_get_their_own_ports_and_stop_when_dropped() {
    let Some(a) = Registry::start() else {
        return;
    };
    let b = Registry::start().expect("a second registry");
    assert_ne!(a.host(), b.host());
    let (host, url) = (a.host(), format!("http://{}/v2/", a.host()));
    let http = agent(Duration::from_secs(5));
    assert_eq!(http.get(&url).call().expect("GET /v2/").status(), 200);
    drop(a);
    assert!(http.get(&url).call().is_err(), "still answering");
    std::net::TcpListener::bind(&host).expect("its port is free again");
}

/// What `a_tampered_layer_blob_is_refused…` relies on: the registry serves
/// a blob as its storage holds it, unchecked, and a changed gzip MTIME
/// leaves the decompressed tar (and so its diff_id) as it was.
#[test]
fn harness_a_tampered_blob_is_served_as_stored_and_unpacks_the_same() {
    let Some(registry) = Registry::start() else {
        return;
    };
    push_busybox(&registry);
    let victim = *layers(&registry, "bb:1").last().expect("a layer");
    let original = std::fs::read(registry.blob(&victim)).expect("the layer blob");
    let tampered = tamper_gzip_mtime(&registry, &victim);
    let url = format!("http://{}/v2/bb/blobs/{victim}", registry.host());
    let mut response = (agent(Duration::from_secs(10)).get(&url))
        .call()
        .expect("GET the blob");
    assert_eq!(response.status(), 200, "{}", registry.log());
    let served = response.body_mut().read_to_vec().expect("blob body");
    assert_eq!(served, tampered);
    assert_ne!(Digest::of(&served), victim);
    let gunzip = |bytes: &[u8]| {
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut tar)
            .expect("gunzip");
        tar
    };
    assert_eq!(gunzip(&served), gunzip(&original));
}

/// Flips the gzip MTIME of blob `digest` in `registry`'s storage (decoders
/// ignore it); the tampered bytes.
fn tamper_gzip_mtime(registry: &Registry, digest: &Digest) -> Vec<u8> {
    let path = registry.blob(digest);
    let mut bytes = std::fs::read(&path).expect("the blob");
    assert_eq!(bytes[..2], [0x1f, 0x8b], "a gzip blob");
    bytes[4] ^= 0xff;
    std::fs::write(&path, &bytes).expect("tamper");
    bytes
}

/// A port taken by a plain listener, or by another registry (which answers
/// `GET /v2/` with 200 too), is a taken port, not a started registry.
#[test]
fn harness_a_taken_port_is_told_apart_from_a_started_registry() {
    let Some(other) = Registry::start() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listener_port = listener.local_addr().expect("addr").port();
    let registry_port: u16 = (other.host().rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a port");
    for port in [listener_port, registry_port] {
        let result = Registry::start_on(port);
        assert!(
            matches!(result, Err(StartError::PortTaken)),
            "port {port}: {:?}",
            result.err()
        );
    }
}

// ---- pulling bases -----------------------------------------------------

fn from_registry(reference: &str) -> String {
    format!(
        r#"
base bb {{
    image "{reference}"
}}
stage hi {{
    from bb
    run "echo hi > $out/hi"
}}
"#
    )
}

#[test]
fn a_base_pulled_by_manifest_digest_builds_and_is_reused_without_the_registry() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !require_sandbox() {
        return;
    }
    let digest = push_busybox(&registry);
    let p = Project::new(&from_registry(&format!(
        "{}/bb:1@{digest}",
        registry.host()
    )));
    let report = p.build(&[]);
    assert_eq!(read(&report.output("hi").join("hi")), "hi\n");
    // The stage, changed, runs in the base's rootfs again: from the store.
    drop(registry);
    p.write(
        "kiln.kdl",
        &read(&p.root().join("kiln.kdl")).replace("echo hi", "echo again"),
    );
    let again = p.build(&[]);
    let base = (again.0["bases"].as_array().expect("bases").iter())
        .find(|b| b["name"] == "bb")
        .unwrap_or_else(|| panic!("no base bb in {}", again.0));
    assert_eq!(base["status"], "cached", "{}", again.0);
    assert_eq!(again.status("hi"), "built");
    assert_eq!(read(&again.output("hi").join("hi")), "again\n");
}

#[test]
fn an_index_resolves_to_this_machines_platform_or_the_one_asked_for() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !require_sandbox() {
        return;
    }
    let (host, other) = host_and_other_arch();
    let pushed = registry.push_index(&arch_image("amd64"), &arch_image("arm64"), "multi:1");
    let reference = format!("{}/multi:1@{}", registry.host(), pushed.index);
    // What the stage saw (its rootfs) and what an image from the base
    // inherits (its config's env).
    let spec = |platform: &str| {
        format!(
            r#"
base multi {{
    image "{reference}"{platform}
}}
stage arch {{
    from multi
    run "read a < /etc/arch && echo $a > $out/arch"
}}
image child {{
    from multi
    entrypoint "/bin/sh"
}}
"#
        )
    };
    let inherited_arch = |p: &Project| {
        let out = p.kiln(&["inspect", "child", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
        v["config"]["env"]["ARCH"].as_str().map(str::to_owned)
    };

    let p = Project::new(&spec(""));
    let report = p.build(&["arch"]);
    assert_eq!(
        read(&report.output("arch").join("arch")),
        format!("{host}\n")
    );
    assert_eq!(inherited_arch(&p).as_deref(), Some(host));

    let p = Project::new(&spec(&format!(" platform=\"linux/{other}\"")));
    assert_eq!(inherited_arch(&p).as_deref(), Some(other));

    // A manifest of the index pinned by its own digest: that one, whatever
    // the tag (which names the index) resolves to.
    let pinned = if other == "arm64" {
        pushed.arm64
    } else {
        pushed.amd64
    };
    let p = Project::new(
        &spec("").replace(&reference, &format!("{}/multi:1@{pinned}", registry.host())),
    );
    assert_eq!(inherited_arch(&p).as_deref(), Some(other));
}

#[test]
fn a_digest_the_registry_does_not_have_fails_naming_reference_and_digest() {
    let Some(registry) = Registry::start() else {
        return;
    };
    push_busybox(&registry);
    // The tag exists; the digest pins nothing there.
    let missing = Digest::of(b"not in the registry");
    let p = Project::new(&from_registry(&format!(
        "{}/bb:1@{missing}",
        registry.host()
    )));
    let out = p.kiln(&["build"]);
    let err = stderr(&out);
    // A failed pull, not a mistake in kiln.kdl (which would exit 2).
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}/bb", registry.host())), "{err}");
    assert!(err.contains(&missing.to_string()), "{err}");
}

/// The gzip header's MTIME field (bytes 4..8) is ignored by decoders: the
/// tampered blob unpacks to the very same tar, so only a check of the
/// blob's own digest can refuse it.
#[test]
fn a_tampered_layer_blob_is_refused_and_nothing_of_it_is_stored() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !require_sandbox() {
        return;
    }
    let digest = push_busybox(&registry);
    let victim = *layers(&registry, "bb:1").last().expect("a layer");
    let path = registry.blob(&victim);
    let original = std::fs::read(&path).expect("the layer blob");
    let actual = Digest::of(&tamper_gzip_mtime(&registry, &victim));

    let p = Project::new(&from_registry(&format!(
        "{}/bb:1@{digest}",
        registry.host()
    )));
    let out = p.kiln(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&victim.to_string()),
        "expected digest in: {err}"
    );
    assert!(err.contains(&actual.to_string()), "actual digest in: {err}");
    let kept: Vec<_> = (files_under(&p.store).into_iter())
        .filter(|f| std::fs::read(f).is_ok_and(|b| Digest::of(&b) == actual))
        .collect();
    assert!(
        kept.is_empty(),
        "the tampered blob is in the store: {kept:?}"
    );

    std::fs::write(&path, &original).expect("restore");
    let report = p.build(&[]);
    assert_eq!(read(&report.output("hi").join("hi")), "hi\n");
}

/// The registry answers for a digest with whatever its storage holds: a
/// manifest that is not the pinned one must be refused before anything it
/// names is fetched.
#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let digest = push_busybox(&registry);
    let path = registry.blob(&digest);
    let mut manifest = std::fs::read(&path).expect("the manifest blob");
    manifest.extend_from_slice(b"\n");
    std::fs::write(&path, &manifest).expect("tamper");
    let served = registry.raw_manifest(&format!("bb@{digest}"));
    assert_eq!(served, manifest, "the registry serves it as stored");

    let p = Project::new(&from_registry(&format!(
        "{}/bb:1@{digest}",
        registry.host()
    )));
    let out = p.kiln(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&digest.to_string()), "pinned digest in: {err}");
    assert!(
        err.contains(&Digest::of(&manifest).to_string()),
        "actual digest in: {err}"
    );
}

#[test]
fn kiln_build_of_a_base_pulls_it_ahead_of_the_stages_that_need_it() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let digest = push_busybox(&registry);
    let p = Project::new(&from_registry(&format!(
        "{}/bb:1@{digest}",
        registry.host()
    )));
    let report = p.build(&["bb"]);
    let bases = report.0["bases"].as_array().expect("bases");
    assert_eq!(
        (bases.len(), &bases[0]["status"]),
        (1, &serde_json::json!("built"))
    );
    assert!(
        report.0["stages"].as_array().expect("stages").is_empty(),
        "{}",
        report.0
    );
    drop(registry);
    // Pulled: the registry is no longer needed.
    let again = p.build(&["bb"]);
    assert_eq!(again.0["bases"][0]["status"], "cached");
}
