//! The import index: what makes a second `import` of an unchanged archive
//! cost a few `stat`s instead of hashing gigabytes.
//!
//! `imports/<config hex>-<path hash>.json` records the archive's stamp (size,
//! mtime, ctime, inode of the tar, or of every file of a layout directory)
//! and the layers found. A stamp that differs, a record that does not parse,
//! or a blob missing from the store is a miss, never an error: the archive is
//! simply verified again.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::blobs::BlobStore;
use super::error::BaseError;
use super::image::{ImportedImage, Layer};
use crate::fsx::{AtomicFile, IoContext};
use crate::hash::Digest;

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    stamps: Vec<Stamp>,
    config: Digest,
    layers: Vec<Layer>,
}

fn record_path(store: &BlobStore, archive: &Path, config: &Digest) -> Option<PathBuf> {
    let canonical = std::fs::canonicalize(archive).ok()?;
    let path_hash = blake3::hash(canonical.as_os_str().as_encoded_bytes());
    let name = format!("{}-{}.json", config.hex(), &path_hash.to_hex()[..16]);
    Some(store.imports_dir().join(name))
}

/// The image recorded for `archive` and `expected`, if the archive has not
/// changed since and its blobs are still in the store.
pub(crate) fn lookup(
    store: &BlobStore,
    archive: &Path,
    expected: &Digest,
) -> Option<ImportedImage> {
    let record_file = record_path(store, archive, expected)?;
    let bytes = std::fs::read(&record_file).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.config != *expected || record.stamps != stamps(archive).ok()? {
        return None;
    }
    let config_json = std::fs::read(store.path(expected)).ok()?;
    let config = serde_json::from_slice(&config_json).ok()?;
    let mut layers = record.layers;
    for layer in &mut layers {
        layer.blob = store.path(&layer.digest);
        if !layer.blob.is_file() {
            return None;
        }
    }
    // Used now: gc keeps what was used within its keep period.
    super::maintenance::touch(&record_file);
    super::maintenance::touch(&store.path(expected));
    for layer in &layers {
        super::maintenance::touch(&layer.blob);
    }
    Some(ImportedImage {
        config_digest: *expected,
        config,
        config_json,
        layers,
    })
}

/// Remembers a verified import (written to a temp file, then renamed).
pub(crate) fn record(
    store: &BlobStore,
    archive: &Path,
    image: &ImportedImage,
) -> Result<(), BaseError> {
    let Some(path) = record_path(store, archive, &image.config_digest) else {
        return Ok(());
    };
    let record = Record {
        stamps: stamps(archive).at(archive)?,
        config: image.config_digest,
        layers: image.layers.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&record).expect("kiln bug: an import record always serialises");
    // In the store's `tmp/`, which gc empties, not beside the records.
    let mut tmp = AtomicFile::create_in(&path, &store.tmp_dir(), ".tmp")?;
    tmp.write_all(&json).at(tmp.tmp_path())?;
    tmp.commit()?;
    Ok(())
}

/// The stamp of a tar file, or of every entry under a layout directory.
/// Inside the directory nothing is followed (`lstat`): a `blobs -> /` must
/// not make kiln walk the host's filesystem (import refuses it anyway).
fn stamps(archive: &Path) -> std::io::Result<Vec<Stamp>> {
    let mut out = Vec::new();
    let mut pending = vec![archive.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = if path == archive {
            std::fs::metadata(&path)?
        } else {
            std::fs::symlink_metadata(&path)?
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
            continue;
        }
        out.push(Stamp {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            path,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
