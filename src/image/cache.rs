//! The compressed-layer cache: a packed layer is kept by its layer key, so a
//! second export of an unchanged layer copies no tar and runs no compressor.
//!
//! ```text
//! <layer_cache>/              (the store's `layers/` directory)
//! └── v1/
//!     ├── <key>.blob          the compressed layer, exactly as exported
//!     ├── <key>.json          its `Packed` digests and sizes; written last,
//!     │                       so its presence means the blob is whole
//!     └── .tmp-*              being written; renamed into place
//! ```
//!
//! The `.json`'s mtime is the entry's last use: a lookup touches it, and
//! [`collect`] (`kiln store gc`) deletes entries unused for the keep period.
//! [`verify`] re-hashes every blob against its recorded digests.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use super::error::ExportError;
use super::model::Packed;
use crate::base::Compression;
use crate::fsx::{AtomicFile, IoContext, write_atomic};
use crate::hash::{LayerKey, Sha256Reader};
use crate::store::{Damage, Swept};

fn dir(cache: &Path) -> PathBuf {
    cache.join("v1")
}

pub(crate) fn blob_path(cache: &Path, key: &LayerKey) -> PathBuf {
    dir(cache).join(format!("{}.blob", key))
}

fn meta_path(cache: &Path, key: &LayerKey) -> PathBuf {
    dir(cache).join(format!("{}.json", key))
}

/// The cached layer for `key`, if whole. Anything unreadable is a miss: the
/// layer is packed again and the entry replaced.
pub(crate) fn lookup(cache: &Path, key: &LayerKey) -> Option<Packed> {
    let meta = std::fs::read(meta_path(cache, key)).ok()?;
    let packed: Packed = serde_json::from_slice(&meta).ok()?;
    let blob = std::fs::metadata(blob_path(cache, key)).ok()?;
    if blob.len() != packed.size {
        return None;
    }
    // Used now, for gc; best effort (a read-only cache still serves).
    let _ = std::fs::File::options()
        .write(true)
        .open(meta_path(cache, key))
        .and_then(|f| f.set_modified(SystemTime::now()));
    Some(packed)
}

/// Runs `pack` into a temporary file and commits it as `key`'s entry.
pub(crate) fn insert(
    cache: &Path,
    key: &LayerKey,
    pack: impl FnOnce(&mut dyn Write) -> Result<Packed, ExportError>,
) -> Result<Packed, ExportError> {
    let dir = dir(cache);
    std::fs::create_dir_all(&dir).at(&dir)?;
    let tmp = AtomicFile::create(&blob_path(cache, key))?;
    let packed = {
        // 1 MiB: an uncompressed layer arrives in the tar's 8 KiB pieces.
        let mut out = BufWriter::with_capacity(1 << 20, tmp.file());
        let packed = pack(&mut out)?;
        out.flush().at(tmp.tmp_path())?;
        packed
    };
    // The same inode once renamed into place: the export that follows does
    // not hash what was just hashed.
    if let Ok(meta) = tmp.file().metadata() {
        crate::hash::fresh::remember(&meta, packed.digest);
    }
    // Unsynced: the blob is as large as the layer (see `commit_unsynced`).
    tmp.commit_unsynced()?;
    let json = serde_json::to_vec(&packed).expect("kiln bug: Packed serializes");
    write_atomic(&meta_path(cache, key), &json)?;
    Ok(packed)
}

/// Every cached layer whose blob no longer matches its recorded digest,
/// size or diff_id (the sha256 of the tar inside).
pub fn verify(cache: &Path) -> Vec<Damage> {
    let metas: Vec<PathBuf> = entries(cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    metas
        .par_iter()
        .filter_map(|meta| {
            let packed: Packed = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
            let blob = meta.with_extension("blob");
            // A missing blob is a miss (packed again), not damage.
            let problem = check_blob(&blob, &packed).ok()?.err()?;
            Some(Damage {
                path: blob,
                problem,
            })
        })
        .collect()
}

/// How many cached layers [`verify`] looks at.
pub fn count(cache: &Path) -> usize {
    let metas = entries(cache);
    metas
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .count()
}

/// `Ok(Err(problem))` if the blob does not match; `Err` if it is missing.
fn check_blob(blob: &Path, packed: &Packed) -> std::io::Result<Result<(), String>> {
    let file = std::fs::File::open(blob)?;
    let mut raw = Sha256Reader::new(std::io::BufReader::new(file));
    let mut head = [0u8; 4];
    let n = std::io::Read::read(&mut raw, &mut head)?;
    let compression = Compression::sniff(&head[..n]);
    let inner = compression.decoder(std::io::Read::chain(&head[..n], &mut raw));
    let diff_id = inner.and_then(crate::hash::sha256_of).map(|(d, _)| d);
    let (digest, size) = raw.finish()?;
    Ok(if digest != packed.digest || size != packed.size {
        Err(format!(
            "its sha256 is {digest} ({size} bytes), recorded {} ({} bytes)",
            packed.digest, packed.size
        ))
    } else {
        match diff_id {
            Ok(d) if d == packed.diff_id => Ok(()),
            Ok(d) => Err(format!(
                "its tar's sha256 is {d}, recorded {}",
                packed.diff_id
            )),
            Err(e) => Err(format!("it does not decompress: {e}")),
        }
    })
}

/// Deletes layers unused for `keep` (meta first: without it the blob is a
/// miss) and every leftover of an interrupted write. The caller holds the
/// store's caches lock, so no export writes meanwhile.
pub fn collect(cache: &Path, keep: Duration) -> Swept {
    let now = SystemTime::now();
    let mut swept = Swept::default();
    let all = entries(cache);
    let (metas, rest): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|p| p.extension().is_some_and(|e| e == "json"));
    for meta in metas {
        let unused = std::fs::metadata(&meta)
            .and_then(|m| m.modified())
            .is_ok_and(|used| now.duration_since(used).unwrap_or_default() >= keep);
        if unused {
            let blob = meta.with_extension("blob");
            let removed = std::fs::remove_file(&meta).and_then(|()| remove(&blob));
            swept.note(blob, removed.map(|()| true));
        }
    }
    // Blobs whose meta is gone (a write cut short, or just deleted above).
    for path in rest {
        let orphan =
            path.extension().is_some_and(|e| e == "blob") && !path.with_extension("json").exists();
        let leftover = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"));
        if (orphan || leftover) && path.exists() {
            swept.note(path.clone(), remove(&path).map(|()| true));
        }
    }
    swept
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The paths in the cache, sorted; none if there is no cache yet.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir(cache))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}
