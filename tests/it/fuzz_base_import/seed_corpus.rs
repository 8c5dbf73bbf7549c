//! The seed corpus of the base-import fuzzer, by name: valid archives of
//! each format (`ok-`) and the hostile cases import must refuse (`bad-`).
//! Each seed is a mode byte (see `fuzz/harness/base_import.rs`) and bytes.

use std::io::Write;

use super::harness::tar_of;
use crate::common::images::*;
use kiln::hash::Digest;

const ARCHIVE: u8 = 0;
const LAYER_IN_DOCKER: u8 = 1;
const LAYER_IN_OCI: u8 = 2;

fn seed(mode: u8, bytes: Vec<u8>) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend(bytes);
    out
}

fn tiny_image() -> Image {
    let plain = layer(Compress::None, |b| {
        dir(b, "bin");
        file(b, "bin/tool", 0o755, b"#!/bin/sh\necho hi\n");
        symlink(b, "bin/alias", "tool");
        dir(b, "etc");
        file(b, "etc/gone", 0o644, b"x");
    });
    let gzip = layer(Compress::Gzip, |b| {
        file(b, "etc/.wh.gone", 0o644, b"");
        file(b, "etc/hello", 0o600, b"hi\n");
    });
    Image::new(vec![plain, gzip])
}

fn written(write: impl FnOnce(&std::path::Path)) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("archive");
    write(&path);
    std::fs::read(path).expect("read back")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("in memory");
    gz.finish().expect("in memory")
}

fn layer_tar(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().expect("in memory")
}

/// A header whose size field claims a terabyte, followed by a few bytes.
fn huge_declared_size() -> Vec<u8> {
    let mut h = header(tar::EntryType::Regular, 0o644);
    h.set_path("big").expect("a short path");
    h.set_size(1 << 40);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[b'x'; 1024]);
    tar
}

/// An oci-archive whose index names the same nested index 32 times, which
/// names the next 32 times, four levels deep: 32^4 reads unless each blob
/// is read once.
fn index_fanout() -> Vec<u8> {
    let index_of = |child: &[u8]| {
        let d = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": Digest::of(child).to_string(),
            "size": child.len(),
        });
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": vec![d; 32] });
        serde_json::to_vec(&index).expect("serialises")
    };
    let leaf = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
    let mut blobs = vec![leaf];
    for _ in 0..4 {
        let next = index_of(blobs.last().expect("a blob"));
        blobs.push(next);
    }
    let top = blobs.pop().expect("the top index");
    let mut files: Vec<(String, Vec<u8>)> = blobs
        .into_iter()
        .map(|b| (format!("blobs/sha256/{}", Digest::of(&b).hex()), b))
        .collect();
    files.push(("index.json".into(), top));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    tar_of(&refs)
}

/// A docker-archive whose layer member is a symlink out of the archive.
fn docker_layer_link_outside() -> Vec<u8> {
    let image = tiny_image();
    let manifest = serde_json::json!([{ "Config": "c.json", "Layers": ["l/layer.tar"] }]);
    let manifest = serde_json::to_vec(&manifest).expect("serialises");
    layer_tar(|b| {
        file(b, "c.json", 0o644, &image.config);
        file(b, "manifest.json", 0o644, &manifest);
        raw_entry(
            b,
            tar::EntryType::Symlink,
            "l/layer.tar",
            "../../etc/passwd",
        );
    })
}

pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    let image = tiny_image();
    let docker = written(|p| write_docker_archive(&image, p));
    let oci = written(|p| write_oci_archive(&image, p));
    let gz_docker = gzip(&docker);
    let zstd_layer = layer(Compress::Zstd, |b| {
        dir(b, "opt/old");
        file(b, "opt/old/.wh..wh..opq", 0o644, b"");
        file(b, "opt/old/new", 0o644, b"kept");
    });
    let mixed = layer_tar(|b| {
        dir(b, "a");
        file(b, "a/f", 0o4755, b"setuid dropped");
        raw_entry(b, tar::EntryType::Link, "a/hard", "a/f");
        symlink(b, "a/abs", "/etc/passwd");
        file(b, "a/.wh.nothing", 0o644, b"");
    });
    vec![
        ("ok-docker-archive", seed(ARCHIVE, docker.clone())),
        ("ok-oci-archive", seed(ARCHIVE, oci)),
        ("ok-docker-archive-gzip", seed(ARCHIVE, gz_docker.clone())),
        ("ok-layer-in-docker", seed(LAYER_IN_DOCKER, mixed)),
        ("ok-layer-zstd-in-oci", seed(LAYER_IN_OCI, zstd_layer.bytes)),
        (
            "bad-layer-dotdot",
            seed(
                LAYER_IN_DOCKER,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Regular, "../kiln-fuzz-escape", "");
                }),
            ),
        ),
        (
            "bad-layer-absolute",
            seed(
                LAYER_IN_OCI,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Regular, "/tmp/kiln-fuzz-canary", "");
                }),
            ),
        ),
        (
            "bad-layer-symlink-escape",
            seed(
                LAYER_IN_DOCKER,
                layer_tar(|b| {
                    symlink(b, "a", "/tmp");
                    file(b, "a/kiln-fuzz-canary", 0o644, b"escaped");
                }),
            ),
        ),
        (
            "bad-layer-relative-symlink-escape",
            seed(
                LAYER_IN_DOCKER,
                layer_tar(|b| {
                    symlink(b, "up", "../../../../../../../../tmp");
                    dir(b, "up/kiln-fuzz-escape");
                    file(b, "up/kiln-fuzz-escape/x", 0o644, b"escaped");
                }),
            ),
        ),
        (
            "bad-layer-hardlink-outside",
            seed(
                LAYER_IN_DOCKER,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Link, "passwd", "/etc/passwd");
                }),
            ),
        ),
        (
            "bad-layer-hardlink-dotdot",
            seed(
                LAYER_IN_OCI,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Link, "x", "../../../etc/passwd");
                }),
            ),
        ),
        (
            "bad-layer-device",
            seed(
                LAYER_IN_DOCKER,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Char, "dev-null", "");
                }),
            ),
        ),
        (
            "bad-layer-fifo",
            seed(
                LAYER_IN_OCI,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Fifo, "fifo", "");
                }),
            ),
        ),
        (
            "bad-layer-whiteout-of-parent",
            seed(
                LAYER_IN_DOCKER,
                layer_tar(|b| {
                    dir(b, "d");
                    file(b, "d/.wh..", 0o644, b"");
                }),
            ),
        ),
        (
            "bad-layer-huge-declared-size",
            seed(LAYER_IN_DOCKER, huge_declared_size()),
        ),
        (
            "bad-layer-truncated-gzip",
            seed(LAYER_IN_DOCKER, {
                let bytes = gzip(&layer_tar(|b| file(b, "f", 0o644, &[7u8; 4096])));
                bytes[..bytes.len() / 2].to_vec()
            }),
        ),
        (
            "bad-archive-truncated-gzip",
            seed(ARCHIVE, gz_docker[..gz_docker.len() / 2].to_vec()),
        ),
        (
            "bad-archive-truncated-tar",
            seed(ARCHIVE, docker[..docker.len() - 1536].to_vec()),
        ),
        (
            "bad-archive-layer-link-outside",
            seed(ARCHIVE, docker_layer_link_outside()),
        ),
        (
            "bad-archive-absolute-member",
            seed(
                ARCHIVE,
                layer_tar(|b| {
                    raw_entry(b, tar::EntryType::Regular, "/tmp/kiln-fuzz-canary", "");
                }),
            ),
        ),
        ("bad-archive-index-fanout", seed(ARCHIVE, index_fanout())),
    ]
}
