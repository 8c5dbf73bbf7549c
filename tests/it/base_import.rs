//! Base image import and unpacking, on archives these tests write by hand
//! (a busybox rootfs in three layers: plain, gzip, zstd) in each format kiln
//! reads, plus hostile layers that must be refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::images::*;
use crate::common::skip::require;
use kiln::base::{self, BaseError};
use kiln::hash::Digest;
use tempfile::TempDir;

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: TempDir::new().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn blobs(&self) -> PathBuf {
        self.path("blobs")
    }
    fn rootfs_dir(&self) -> PathBuf {
        self.path("rootfs")
    }
}

fn assert_busybox_rootfs(root: &Path) {
    let out = Command::new(root.join("bin/busybox"))
        .args(["echo", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(root.join("bin/sh").is_file(), "bin/sh resolves to busybox");
    assert_eq!(std::fs::read(root.join("etc/hello")).unwrap(), b"hi\n");
}

#[test]
fn every_format_imports_to_the_same_image_and_a_runnable_rootfs() {
    let env = Env::new();
    let image = busybox_image();
    write_docker_archive(&image, &env.path("docker.tar"));
    write_oci_archive(&image, &env.path("oci.tar"));
    write_oci_dir(&image, &env.path("layout"));

    let mut imported = Vec::new();
    for archive in ["docker.tar", "oci.tar", "layout"] {
        let img = base::import(&env.path(archive), &image.id(), &env.blobs())
            .unwrap_or_else(|e| panic!("{archive}: {e:?}"));
        assert_eq!(img.config_digest, image.id(), "{archive}");
        assert_eq!(img.config_json, image.config);
        let blobs: Vec<Digest> = img.layers.iter().map(|l| l.digest).collect();
        let expected: Vec<Digest> = image.layers.iter().map(|l| Digest::of(&l.bytes)).collect();
        assert_eq!(blobs, expected, "{archive}: layers reused verbatim");
        for l in &img.layers {
            assert_eq!(Digest::of(&std::fs::read(&l.blob).unwrap()), l.digest);
        }
        imported.push(img);
    }
    let media: Vec<&str> = imported[0]
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd"
        ]
    );

    let root = base::rootfs(&imported[0], &env.rootfs_dir()).unwrap();
    assert_eq!(root, env.rootfs_dir().join(image.id().hex()));
    assert_busybox_rootfs(&root);
    assert_eq!(
        base::rootfs(&imported[2], &env.rootfs_dir()).unwrap(),
        root,
        "reused"
    );
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_layers() {
    let env = Env::new();
    let image = busybox_image();
    write_oci_archive(&image, &env.path("oci.tar"));
    let img = base::import(&env.path("oci.tar"), &image.id(), &env.blobs()).unwrap();
    let root = base::rootfs(&img, &env.rootfs_dir()).unwrap();
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("etc/.wh.gone").exists());
    assert!(!root.join("opt/old/file").exists());
    assert!(!root.join("opt/old/sub").exists());
    assert!(!root.join("opt/old/.wh..wh..opq").exists());
    assert_eq!(std::fs::read(root.join("opt/old/new")).unwrap(), b"kept");
}

#[test]
fn wrong_digest_names_both_digests() {
    let env = Env::new();
    let image = busybox_image();
    write_docker_archive(&image, &env.path("docker.tar"));
    let pinned = Digest::of(b"something else");
    let err = base::import(&env.path("docker.tar"), &pinned, &env.blobs()).unwrap_err();
    assert!(matches!(err, BaseError::DigestMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&pinned.to_string()) && msg.contains(&image.id().to_string()),
        "{msg}"
    );
    assert_eq!(
        miette::Diagnostic::code(&err).unwrap().to_string(),
        "kiln::base::digest_mismatch"
    );
}

#[test]
fn corrupted_layer_blob_is_a_checksum_error() {
    let env = Env::new();
    let image = busybox_image();
    write_oci_dir(&image, &env.path("layout"));
    let victim = env
        .path("layout")
        .join("blobs/sha256")
        .join(Digest::of(&image.layers[2].bytes).hex());
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let err = base::import(&env.path("layout"), &image.id(), &env.blobs()).unwrap_err();
    assert!(matches!(err, BaseError::BlobChecksum { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "blobs/sha256/{}",
            Digest::of(&image.layers[2].bytes).hex()
        )),
        "{msg}"
    );
}

#[test]
fn corrupted_docker_layer_fails_its_diff_id() {
    let env = Env::new();
    let mut image = busybox_image();
    // Same tar, different content: the config still lists the old diff_id.
    image.layers[2] = Blob {
        diff_id: image.layers[2].diff_id,
        ..layer(Compress::Zstd, |b| {
            file(b, "etc/hello", 0o600, b"tampered\n")
        })
    };
    write_docker_archive(&image, &env.path("docker.tar"));
    let err = base::import(&env.path("docker.tar"), &image.id(), &env.blobs()).unwrap_err();
    assert!(matches!(err, BaseError::DiffId { .. }), "{err:?}");
}

#[test]
fn a_changed_archive_is_verified_again() {
    let env = Env::new();
    let image = busybox_image();
    write_docker_archive(&image, &env.path("docker.tar"));
    let first = base::import(&env.path("docker.tar"), &image.id(), &env.blobs()).unwrap();
    let again = base::import(&env.path("docker.tar"), &image.id(), &env.blobs()).unwrap();
    assert_eq!(first.layers, again.layers);
    assert_eq!(first.config_json, again.config_json);

    let mut other = busybox_image();
    other.layers[2] = layer(Compress::Zstd, |b| file(b, "etc/hello", 0o600, b"other\n"));
    let other = Image::new(other.layers);
    write_docker_archive(&other, &env.path("docker.tar"));
    let err = base::import(&env.path("docker.tar"), &image.id(), &env.blobs()).unwrap_err();
    assert!(
        matches!(err, BaseError::DigestMismatch { actual, .. } if actual == other.id()),
        "{err:?}"
    );
}

#[test]
fn unknown_format_names_the_archive() {
    let env = Env::new();
    std::fs::write(
        env.path("notes.tar"),
        tar_of(&[("README".into(), b"hi".to_vec())]),
    )
    .unwrap();
    let err = base::import(&env.path("notes.tar"), &Digest::of(b""), &env.blobs()).unwrap_err();
    assert!(matches!(err, BaseError::UnknownFormat { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.tar"));
}

/// Imports a one-layer image and unpacks it; the unpack must fail naming
/// `entry`, leaving nothing in the rootfs dir and nothing in the sentinel.
fn assert_refused(name: &str, build: impl FnOnce(&mut tar::Builder<Vec<u8>>, &Path), entry: &str) {
    let env = Env::new();
    let sentinel = env.path("sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    let image = Image::new(vec![layer(Compress::None, |b| build(b, &sentinel))]);
    write_oci_archive(&image, &env.path("evil.tar"));
    let img = base::import(&env.path("evil.tar"), &image.id(), &env.blobs()).unwrap();
    let err = base::rootfs(&img, &env.rootfs_dir()).unwrap_err();
    assert!(
        matches!(err, BaseError::UnsafeEntry { .. }),
        "{name}: {err:?}"
    );
    assert!(err.to_string().contains(entry), "{name}: {err}");
    assert_eq!(
        std::fs::read_dir(&sentinel).unwrap().count(),
        0,
        "{name}: wrote outside"
    );
    assert_eq!(
        std::fs::read_dir(env.rootfs_dir()).unwrap().count(),
        0,
        "{name}: left a rootfs"
    );
    assert!(!env.path("evil").exists() && !env.tmp.path().parent().unwrap().join("evil").exists());
}

#[test]
fn hostile_layers_are_refused_without_writing_outside() {
    assert_refused(
        "parent dir",
        |b, _| raw_entry(b, tar::EntryType::Regular, "../evil", ""),
        "../evil",
    );
    assert_refused(
        "absolute",
        |b, s| {
            raw_entry(
                b,
                tar::EntryType::Regular,
                &format!("{}/evil", s.display()),
                "",
            )
        },
        "/evil",
    );
    assert_refused(
        "symlink then file",
        |b, s| {
            symlink(b, "link", &s.display().to_string());
            file(b, "link/file", 0o644, b"escaped");
        },
        "link/file",
    );
    assert_refused(
        "symlink chain to ..",
        |b, _| {
            symlink(b, "up", "..");
            symlink(b, "upup", "up/..");
            dir(b, "d");
            symlink(b, "d/s", "../upup/sentinel");
            file(b, "d/s/evil", 0o644, b"escaped");
        },
        "d/s/evil",
    );
    assert_refused(
        "hardlink out",
        |b, _| raw_entry(b, tar::EntryType::Link, "passwd", "/etc/passwd"),
        "passwd",
    );
    assert_refused(
        "hardlink through symlink",
        |b, _| {
            symlink(b, "etc", "/etc");
            raw_entry(b, tar::EntryType::Link, "passwd", "etc/passwd");
        },
        "passwd",
    );
    for name in [".wh...", "d/.wh..", ".wh."] {
        assert_refused(
            "whiteout of a parent",
            |b, _| {
                dir(b, "d");
                file(b, name, 0o644, b"");
            },
            name,
        );
    }
    assert_refused(
        "char device",
        |b, _| raw_entry(b, tar::EntryType::Char, "dev/null", ""),
        "dev/null",
    );
    assert_refused(
        "whiteout through symlink",
        |b, s| {
            symlink(b, "link", &s.display().to_string());
            file(b, "link/.wh.x", 0o644, b"");
        },
        "link/.wh.x",
    );
}

#[test]
fn read_only_dirs_hardlinks_and_replacements_unpack_like_an_overlay() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    let lower = layer(Compress::None, |b| {
        b.append_data(&mut header(tar::EntryType::Directory, 0o555), "ro", &[][..])
            .unwrap();
        file(b, "ro/a", 0o4755, b"setuid dropped");
        file(b, "was-dir/x", 0o644, b"");
        symlink(b, "was-link", "/etc");
    });
    let upper = layer(Compress::Gzip, |b| {
        file(b, "ro/b", 0o644, b"written into a read-only dir");
        let mut h = header(tar::EntryType::Link, 0o644);
        b.append_link(&mut h, "ro/a-again", "ro/a").unwrap();
        file(b, "was-dir", 0o644, b"a file now");
        dir(b, "was-link");
        file(b, "was-link/passwd", 0o644, b"inside the rootfs");
    });
    let image = Image::new(vec![lower, upper]);
    write_oci_dir(&image, &env.path("layout"));
    let img = base::import(&env.path("layout"), &image.id(), &env.blobs()).unwrap();
    let root = base::rootfs(&img, &env.rootfs_dir()).unwrap();
    assert_eq!(
        std::fs::read(root.join("ro/b")).unwrap(),
        b"written into a read-only dir"
    );
    let a = std::fs::metadata(root.join("ro/a")).unwrap();
    assert_eq!(
        a.ino(),
        std::fs::metadata(root.join("ro/a-again")).unwrap().ino()
    );
    assert_eq!(a.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::metadata(root.join("ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(std::fs::read(root.join("was-dir")).unwrap(), b"a file now");
    assert!(
        std::fs::symlink_metadata(root.join("was-link"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        std::fs::read(root.join("was-link/passwd")).unwrap(),
        b"inside the rootfs"
    );
}

#[test]
fn skopeo_converted_archives_import_to_the_same_image() {
    if !require("skopeo") {
        return;
    }
    let env = Env::new();
    // Docker archives cannot carry zstd layers, so skopeo refuses to convert them.
    let image = busybox_image_with(Compress::Gzip);
    write_oci_archive(&image, &env.path("oci.tar"));
    let source = format!("oci-archive:{}", env.path("oci.tar").display());
    let targets = [
        ("skopeo-docker.tar", "docker-archive:{}:bb:latest"),
        ("skopeo-oci.tar", "oci-archive:{}:bb:latest"),
        ("skopeo-layout", "oci:{}:bb:latest"),
    ];
    for (name, target) in targets {
        let converted = env.path(name);
        let status = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", &source])
            .arg(target.replace("{}", &converted.display().to_string()))
            .status()
            .unwrap();
        assert!(status.success(), "{name}");
        let img = base::import(&converted, &image.id(), &env.blobs())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(img.config_digest, image.id(), "{name}");
        let rootfs_dir = env.path(&format!("rootfs-{name}"));
        assert_busybox_rootfs(&base::rootfs(&img, &rootfs_dir).unwrap());
    }
}
