//! One fuzz input → an image archive on disk → kiln's base import and
//! unpack, as `kiln build` runs them for `base NAME { archive … }`; then the
//! checks that nothing was written outside the work directory. Shared (by
//! `#[path]`) between the cargo-fuzz target `fuzz/fuzz_targets/base_import.rs`
//! and the stable, bounded test `tests/it/fuzz_base_import.rs`.
//!
//! The first byte picks what the rest is, so that mutations reach the
//! unpacker and not only the checks that guard it:
//! - `0`: a whole archive file (docker-archive or oci-archive tar, maybe
//!   compressed). The pinned digest is whatever config the archive names,
//!   as a user who pins what they were given would.
//! - `1`: one layer blob (a tar, maybe compressed), wrapped here into a
//!   valid docker-archive whose config lists the layer's real diff_id.
//! - `2`: the same, wrapped into an oci-archive.

#![allow(dead_code)] // each includer uses its own subset

use std::io::Read;
use std::path::{Path, PathBuf};

use kiln::base::{self, BaseError};
use kiln::hash::Digest;

/// Absolute paths the seed corpus's hostile entries aim at; none may exist
/// after any input.
pub const CANARIES: &[&str] = &[
    "/tmp/kiln-fuzz-escape",
    "/tmp/kiln-fuzz-escape/x",
    "/tmp/kiln-fuzz-canary",
];

/// Where one input is unpacked: `root/work/{archive,blobs,rootfs}`; `root`
/// must hold nothing but `work` afterwards.
pub struct Dirs {
    pub root: PathBuf,
    pub work: PathBuf,
}

impl Dirs {
    pub fn new(root: &Path) -> Dirs {
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        Dirs {
            root: root.to_owned(),
            work,
        }
    }
}

/// Imports and unpacks `data` under `dirs.work`. Errors are fine (most
/// inputs are invalid); panics, hangs and escapes are not.
pub fn run(data: &[u8], dirs: &Dirs) -> Result<PathBuf, BaseError> {
    let Some((&mode, rest)) = data.split_first() else {
        return Err(BaseError::UnknownFormat {
            archive: PathBuf::new(),
        });
    };
    let archive = dirs.work.join("archive");
    let bytes = match mode % 3 {
        0 => rest.to_vec(),
        1 => docker_archive_of_layer(rest),
        _ => oci_archive_of_layer(rest),
    };
    std::fs::write(&archive, bytes).expect("write the archive");
    let blobs = dirs.work.join("blobs");
    let pinned = Digest::of(b"not pinned yet");
    let image = match base::import(&archive, &pinned, &blobs) {
        Ok(image) => image,
        // Pin what the archive holds and go on, as a user would.
        Err(BaseError::DigestMismatch { actual, .. }) => base::import(&archive, &actual, &blobs)?,
        Err(e) => return Err(e),
    };
    base::rootfs(&image, &dirs.work.join("rootfs"))
}

/// Panics if anything was written outside `dirs.work`, or in the wrong
/// place inside it.
pub fn check(dirs: &Dirs) {
    for canary in CANARIES {
        assert!(
            std::fs::symlink_metadata(canary).is_err(),
            "{canary} was written outside the work dir"
        );
    }
    assert_eq!(names(&dirs.root), ["work"], "written beside the work dir");
    let work = names(&dirs.work);
    assert!(
        work.iter()
            .all(|n| ["archive", "blobs", "rootfs"].contains(&n.as_str())),
        "written in the work dir: {work:?}"
    );
    let blobs = dirs.work.join("blobs");
    if blobs.exists() {
        assert_eq!(names(&blobs), ["imports", "sha256", "tmp"]);
        assert_eq!(
            names(&blobs.join("tmp")),
            Vec::<String>::new(),
            "temp files left"
        );
    }
    let rootfs = dirs.work.join("rootfs");
    if rootfs.exists() {
        // Each image is `<hex>/`, with its tree record `<hex>.tree`.
        for name in names(&rootfs) {
            let hex = name.strip_suffix(".tree").unwrap_or(&name);
            let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            assert!(is_hex, "written in rootfs/ beside the images: {name}");
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list a work dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The sha256 of the layer's uncompressed tar, as far as it decompresses:
/// a layer that does not is refused by import, which is what is tested.
fn diff_id(layer: &[u8]) -> Digest {
    let mut tar = Vec::new();
    let decoded = match layer {
        [0x1f, 0x8b, ..] => flate2::read::GzDecoder::new(layer).read_to_end(&mut tar),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            zstd::stream::read::Decoder::new(layer).and_then(|mut d| d.read_to_end(&mut tar))
        }
        _ => return Digest::of(layer),
    };
    let _ = decoded;
    Digest::of(&tar)
}

fn config_of(layer: &[u8]) -> Vec<u8> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [diff_id(layer).to_string()] },
    });
    serde_json::to_vec(&config).expect("a config serialises")
}

/// A tar of regular files, in order.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).expect("in memory");
    }
    b.into_inner().expect("in memory")
}

fn docker_archive_of_layer(layer: &[u8]) -> Vec<u8> {
    let config = config_of(layer);
    let manifest = serde_json::json!([{ "Config": "config.json", "Layers": ["layer.tar"] }]);
    let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
    tar_of(&[
        ("config.json", &config),
        ("layer.tar", layer),
        ("manifest.json", &manifest),
    ])
}

fn oci_archive_of_layer(layer: &[u8]) -> Vec<u8> {
    let config = config_of(layer);
    let descriptor = |media: &str, bytes: &[u8]| {
        serde_json::json!({
            "mediaType": media,
            "digest": Digest::of(bytes).to_string(),
            "size": bytes.len(),
        })
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    });
    let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)],
    });
    let index = serde_json::to_vec(&index).expect("an index serialises");
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", Digest::of(bytes).hex());
    let (m, c, l) = (blob(&manifest), blob(&config), blob(layer));
    tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&m, &manifest),
        (&c, &config),
        (&l, layer),
    ])
}
