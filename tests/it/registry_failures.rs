//! End-to-end: pulls that cannot finish, told clearly, leaving nothing
//! half-written: an index without this platform, a registry nobody
//! answers at, and one that goes away in the middle of a layer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use crate::common::Project;
use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
use crate::common::registry::{Registry, arch_image};
use kiln::hash::Digest;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn base_spec(reference: &str, platform: &str) -> String {
    format!("base bb {{ image \"{reference}\"{platform} }}\n")
}

#[test]
fn an_index_without_the_platform_asked_for_names_the_ones_it_has() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let pushed = registry.push_index(&arch_image("amd64"), &arch_image("arm64"), "multi:1");
    let reference = format!("{}/multi:1@{}", registry.host(), pushed.index);
    let p = Project::new(&base_spec(&reference, " platform=\"linux/s390x\""));
    let out = p.kiln(&["build", "bb"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(err.contains("has no image for linux/s390x"), "{err}");
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
}

#[test]
fn a_registry_nobody_answers_at_is_said_to_be_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let digest = Digest::of(b"nothing");
    let p = Project::new(&base_spec(&format!("127.0.0.1:{port}/bb:1@{digest}"), ""));
    let out = p.kiln(&["build", "bb"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Cannot reach the registry"),
        "{}",
        stderr(&out)
    );
}

/// A base of an imported file that cannot be pulled is shown in that file.
#[test]
fn a_base_of_an_imported_file_that_cannot_be_pulled_is_shown_in_its_file() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let digest = Digest::of(b"nothing");
    let p = Project::new("import \"lib/bases.kdl\" as=lib\n");
    let bases = format!(
        "// the bases\n{}",
        base_spec(&format!("127.0.0.1:{port}/bb:1@{digest}"), "")
    );
    p.write("lib/bases.kdl", &bases);
    let out = p.kiln(&["build", "lib.bb"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Cannot reach the registry"), "{err}");
    assert!(
        err.contains("bases.kdl:2:"),
        "the base's line in its file: {err}"
    );
}

/// A proxy to `upstream` that ends every connection once it has passed
/// `limit` bytes of answers on it: a registry that goes away in the middle
/// of a layer (manifests and configs are far smaller). Runs until the test
/// process ends; its port is returned.
fn cutting_proxy(upstream: String, limit: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut s_out) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
            });
            std::thread::spawn(move || pass_until(server, client, limit));
        }
    });
    port
}

fn pass_until(mut from: TcpStream, mut to: TcpStream, limit: usize) {
    let mut buf = [0u8; 16 << 10];
    let mut passed = 0;
    while passed < limit {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let n = n.min(limit - passed);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                passed += n;
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_registry_gone_mid_layer_leaves_nothing_half_written_and_the_next_pull_works() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb.tar");
    // Uncompressed layers: the busybox layer is larger than the cut.
    write_docker_archive(&busybox_image_with(Compress::None), &archive);
    let digest = registry.push_archive(&archive, "docker-archive", "bb:1");
    let proxy = cutting_proxy(registry.host(), 256 << 10);

    let cut = Project::new(&base_spec(&format!("127.0.0.1:{proxy}/bb:1@{digest}"), ""));
    let out = cut.kiln(&["build", "bb"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{proxy}/bb")),
        "{}",
        stderr(&out)
    );
    let blobs = cut.store.join("v2/blobs");
    assert!(
        files_in(&blobs.join("tmp")).is_empty(),
        "a partial download is left"
    );
    // The config (small) may be stored; no layer is.
    for name in files_in(&blobs.join("sha256")) {
        let bytes = std::fs::read(blobs.join("sha256").join(&name)).expect("blob");
        assert!(bytes.len() < 256 << 10, "a layer was stored: {name}");
        assert_eq!(
            Digest::of(&bytes).hex(),
            name,
            "a stored blob matches its name"
        );
    }

    // The same base (the same digest) from the registry itself: the same
    // store pulls it cleanly.
    cut.write(
        "kiln.kdl",
        &base_spec(&format!("{}/bb:1@{digest}", registry.host()), ""),
    );
    let report = cut.build(&["bb"]);
    assert_eq!(report.0["bases"][0]["status"], "built");
}
