//! The sha256 blob store that imported blobs land in, shared by every base
//! image (and readable by export, which reuses base layers verbatim).
//!
//! ```text
//! <blobs_dir>/
//! ├── sha256/<hex>          a verified blob, read-only; exists ⇔ complete
//! ├── imports/<hex>.json    import index: config digest → archive stamp + layers
//! └── tmp/                  blobs being written, renamed into sha256/
//! ```
//!
//! A blob's mtime is its last use (see `maintenance.rs` for gc).

use std::fs::Permissions;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::error::BaseError;
use super::image::{CopyFailed, copy};
use crate::fsx::IoContext;
use crate::hash::Digest;
use crate::hash::Sha256Writer;

pub(crate) struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub(crate) fn open(root: &Path) -> Result<BlobStore, BaseError> {
        for sub in ["sha256", "imports", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        Ok(BlobStore {
            root: root.to_owned(),
        })
    }

    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn imports_dir(&self) -> PathBuf {
        self.root.join("imports")
    }

    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Copies `r` (read from `from`) into a temporary file in the store,
    /// hashing as it writes; a failed read names `from`, a failed write
    /// (a full disk) the temporary file.
    pub(crate) fn write(
        &self,
        r: impl Read,
        from: &Path,
    ) -> Result<(TempPath, Digest, u64), BaseError> {
        let tmp_dir = self.tmp_dir();
        let file = tempfile::NamedTempFile::new_in(&tmp_dir).at(&tmp_dir)?;
        let to = file.path().to_owned();
        let mut w = Sha256Writer::new(file);
        copy(r, &mut w).map_err(|e| match e {
            CopyFailed::Read(e) => BaseError::io(from)(e),
            CopyFailed::Write(e) => BaseError::io(&to)(e),
        })?;
        let (file, digest, size) = w.finish();
        Ok((file.into_temp_path(), digest, size))
    }

    /// Moves a verified temporary file to `sha256/<hex>`; a blob already there
    /// wins (same digest, same bytes), so concurrent imports are harmless.
    pub(crate) fn commit(&self, tmp: &Path, digest: &Digest) -> Result<PathBuf, BaseError> {
        let dest = self.path(digest);
        if dest.is_file() {
            super::maintenance::touch(&dest);
            return Ok(dest);
        }
        let moved = std::fs::set_permissions(tmp, Permissions::from_mode(0o444))
            .and_then(|()| std::fs::rename(tmp, &dest));
        match moved {
            Ok(()) => Ok(dest),
            // Another import (or another layer sharing this blob) got there first.
            Err(_) if dest.is_file() => Ok(dest),
            Err(e) => Err(BaseError::io(dest)(e)),
        }
    }
}
