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

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::ExportError;
use super::layer::Packed;

fn dir(cache: &Path) -> PathBuf {
    cache.join("v1")
}

pub(crate) fn blob_path(cache: &Path, key: &blake3::Hash) -> PathBuf {
    dir(cache).join(format!("{}.blob", key.to_hex()))
}

fn meta_path(cache: &Path, key: &blake3::Hash) -> PathBuf {
    dir(cache).join(format!("{}.json", key.to_hex()))
}

/// The cached layer for `key`, if whole. Anything unreadable is a miss: the
/// layer is packed again and the entry replaced.
pub(crate) fn lookup(cache: &Path, key: &blake3::Hash) -> Option<Packed> {
    let meta = std::fs::read(meta_path(cache, key)).ok()?;
    let packed: Packed = serde_json::from_slice(&meta).ok()?;
    let blob = std::fs::metadata(blob_path(cache, key)).ok()?;
    (blob.len() == packed.size).then_some(packed)
}

/// Runs `pack` into a temporary file and commits it as `key`'s entry.
pub(crate) fn insert(
    cache: &Path,
    key: &blake3::Hash,
    pack: impl FnOnce(&mut dyn Write) -> Result<Packed, ExportError>,
) -> Result<Packed, ExportError> {
    let dir = dir(cache);
    std::fs::create_dir_all(&dir).map_err(ExportError::io(&dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(ExportError::io(&dir))?;
    let packed = {
        // 1 MiB: an uncompressed layer arrives in the tar's 8 KiB pieces.
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
        let packed = pack(&mut out)?;
        out.flush().map_err(ExportError::io(tmp.path()))?;
        packed
    };
    let blob = blob_path(cache, key);
    tmp.persist(&blob).map_err(|e| ExportError::Io {
        path: blob,
        source: e.error,
    })?;

    let meta = meta_path(cache, key);
    let json = serde_json::to_vec(&packed).expect("kiln bug: Packed serializes");
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(ExportError::io(&dir))?;
    tmp.write_all(&json).map_err(ExportError::io(tmp.path()))?;
    tmp.persist(&meta).map_err(|e| ExportError::Io {
        path: meta,
        source: e.error,
    })?;
    Ok(packed)
}
