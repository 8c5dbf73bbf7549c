//! The content-addressed store: where every built stage output lives.
//!
//! CONTRACT (owned by the store helper; signatures fixed, bodies to write).
//!
//! ```text
//! $KILN_HOME/                 (default ~/.cache/kiln, or --store DIR)
//! └── v1/
//!     ├── store/<key>-<name>/     a stage output, read-only; exists ⇔ committed
//!     ├── meta/<key>-<name>.json  Meta; its mtime is the entry's last use
//!     ├── logs/<key>-<name>.log   the build log
//!     ├── locks/<key>.lock        flock: one builder per key, gc skips held keys
//!     ├── refs/<context-id>/<stage>  last key built for a stage of a project (explain)
//!     ├── layers/                 export's compressed-layer cache
//!     ├── stat-cache              tree::StatCache
//!     └── tmp/                    build dirs, renamed into store/ on success
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::hash::{Key, OutputHash};
use crate::spec::Name;

/// The path of a committed store entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(PathBuf);

impl StorePath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

/// What kiln records about a committed entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub key: Key,
    pub name: String,
    pub output_hash: OutputHash,
    /// Every input that went into `key`, label → value (see eval::Inputs).
    pub inputs: BTreeMap<String, String>,
    /// Unix seconds when the build started, and how long it took.
    pub started: u64,
    pub duration_ms: u64,
    pub kiln_version: String,
}

/// A committed entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: StorePath,
    pub meta: Meta,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Store I/O failed at `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Store metadata `{path}` is corrupt")]
    CorruptMeta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
}

pub struct Store {}

/// Held while building a key; dropping it releases the lock.
pub struct KeyLock {}

/// A build in progress: a temporary directory that becomes a store entry on
/// `commit` and disappears if dropped uncommitted.
pub struct Pending {}

impl Store {
    /// `--store DIR`, else `$KILN_HOME`, else `~/.cache/kiln`.
    pub fn default_root() -> PathBuf {
        todo!()
    }

    /// Opens (creating) the store layout under `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let _ = root;
        todo!()
    }

    /// The committed entry for `key`, if any; marks it used now.
    pub fn lookup(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        let _ = key;
        todo!()
    }

    /// Blocks until this process holds `key`'s build lock.
    pub fn lock(&self, key: &Key) -> Result<KeyLock, StoreError> {
        let _ = key;
        todo!()
    }

    /// A fresh build directory for `key` (caller holds its lock); removes
    /// leftovers of an earlier, interrupted build of the same key.
    pub fn begin(&self, key: &Key, name: &Name, _lock: &KeyLock) -> Result<Pending, StoreError> {
        let _ = (key, name);
        todo!()
    }

    pub fn log_path(&self, key: &Key, name: &Name) -> PathBuf {
        let _ = (key, name);
        todo!()
    }

    pub fn stat_cache_path(&self) -> PathBuf {
        todo!()
    }

    pub fn layer_cache_dir(&self) -> PathBuf {
        todo!()
    }

    /// Remembers that `stage` of the project at `context` last built as `key`.
    pub fn set_ref(&self, context: &Path, stage: &Name, key: &Key) -> Result<(), StoreError> {
        let _ = (context, stage, key);
        todo!()
    }

    pub fn get_ref(&self, context: &Path, stage: &Name) -> Result<Option<Key>, StoreError> {
        let _ = (context, stage);
        todo!()
    }

    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        todo!()
    }

    /// Re-hashes every entry; returns those whose output no longer matches.
    pub fn verify(&self) -> Result<Vec<(Entry, OutputHash)>, StoreError> {
        todo!()
    }

    /// Deletes entries unused for `keep_days` days, skipping locked keys.
    pub fn gc(&self, keep_days: u64) -> Result<Vec<Entry>, StoreError> {
        let _ = keep_days;
        todo!()
    }
}

impl Pending {
    /// The private writable copy of the sources: the stage's working directory.
    pub fn work_dir(&self) -> &Path {
        todo!()
    }

    /// `$out`.
    pub fn out_dir(&self) -> &Path {
        todo!()
    }

    /// A fresh, empty directory for `$TMPDIR`.
    pub fn tmp_dir(&self) -> &Path {
        todo!()
    }

    /// Hashes `out`, makes it read-only, writes its `Meta` and renames it into
    /// place: the entry exists only once complete.
    pub fn commit(
        self,
        inputs: BTreeMap<String, String>,
        started: u64,
        duration_ms: u64,
    ) -> Result<Entry, StoreError> {
        let _ = (inputs, started, duration_ms);
        todo!()
    }
}
