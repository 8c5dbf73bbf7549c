//! The content-addressed store: where every built stage output lives, with
//! the caches kiln keeps beside them.
//!
//! A stage is built in a private temporary directory under `tmp/`, hashed,
//! made read-only and renamed into `store/`: the rename is the commit point,
//! so a crash or a `kill -9` never leaves a half entry. A build lock per key
//! makes two kiln processes (or two threads) sharing a store build a key once:
//! the loser waits, then finds the winner's entry with [`Store::lookup`].
//! How the locks avoid deadlock is in `lock.rs`. A cache hit takes no
//! per-key lock and lists no directory: it adds the key to this process's
//! temporary roots (once per key, `roots.rs`), then reads the meta and
//! checks the entry's directory.
//!
//! ```text
//! $KILN_HOME/                 (default $XDG_CACHE_HOME/kiln or ~/.cache/kiln, or --store DIR)
//! └── v2/
//!     ├── store/<key>-<name>/     a stage output, read-only; exists ⇔ committed
//!     ├── meta/<key>.json         Meta (holds the name: lookup is O(1));
//!     │                           its mtime is the entry's last use
//!     ├── logs/<key>-<name>.log   the build log
//!     ├── locks/<key>.lock        flock: the one builder of a key (lock.rs)
//!     ├── locks/gc.lock           flock: shared to add a root, exclusive in gc
//!     ├── locks/store.lock        flock: shared by every open Store (caches)
//!     ├── roots/<pid>-<n>         the short keys an open Store uses, one a
//!                                 line; flock: held while it is open (roots.rs)
//!     ├── refs/<context-id>.refs  `name key` lines: the last key each node of a
//!                                 project was built as (explain; refs.rs)
//!     ├── layers/v1/<key>.{blob,json}  export's compressed-layer cache
//!     │                           (export::cache; the .json's mtime is last use)
//!     ├── blobs/sha256/<hex>      imported base image blobs (base::import);
//!     │                           mtime is last use
//!     ├── blobs/imports/*.json    what an archive imported to (base::index)
//!     ├── rootfs/<config-hex>/    unpacked image root filesystems (base::rootfs);
//!     │                           mtime is last use
//!     ├── rootfs/<config-hex>.tree  its tree hash when unpacked (verify)
//!     ├── caches/<hash>/{cache.json,data/}  the directories of `cache` lines,
//!     │                           outside every key and output (caches.rs)
//!     ├── stat-cache              tree::StatCache
//!     ├── cache/spec/<key>.json   validated specs (spec::load_cached);
//!     │                           mtime is last use
//!     ├── known/<key>.json        what the remote cache said a key built
//!     │                           to, for entries not held here (known.rs);
//!     │                           mtime is last use
//!     └── tmp/<key>-<name>.<pid>/{src,out,tmp,root}
//!                                 build dirs; `out` is renamed into store/
//! ```
//!
//! `<key>` in file names is [`Key::short`] (128 bits); the full key is in the
//! meta, and `<context-id>` is 16 hex digits of blake3 over the canonical
//! context path. A meta is written before its entry is renamed into place, so a
//! committed entry always has one; a meta without an entry is garbage that
//! [`Store::gc`] removes. Lock files are never deleted: removing a lock file
//! someone else has open would let two builders hold "the" lock at once.
//!
//! What `kiln store gc --keep-days N` collects (each failure is reported and
//! gc goes on; it never waits for a lock):
//! - entries not used (looked up or built) for N days, unless a running
//!   kiln process builds the key or has it among its roots ([`Store::gc`]);
//!   their metas and logs;
//! - the leftovers of interrupted builds and of a gc cut short under `tmp/`,
//!   unless their key is being built;
//! - `cache` directories not used for N days (all of them with
//!   `--caches`), each unless a build holds it (`caches.rs`);
//! - cached specs and realisations not used for N days (a spec read as it
//!   is deleted is only parsed again, a realisation asked of the cache
//!   again);
//! - blobs, import records, root filesystems and cached layers not used for
//!   N days, and the leftovers of interrupted imports, unpacks and layer
//!   writes (`base::collect`, `export::collect_layer_cache`): only while no
//!   other kiln process has the store open ([`Store::lock_caches`]), since
//!   any of them may be using any of these; otherwise gc keeps them all
//!   and says so. A base used again after its blobs were collected is simply
//!   imported again from its archive.
//!
//! `kiln store verify` re-hashes every entry ([`Store::verify`]), blob,
//! cached layer and unpacked root filesystem, and reports each mismatch.
//!
//! This module does filesystem IO only; hashing trees is `tree`'s.

mod caches;
mod gc;
mod known;
mod layout;
mod lock;
mod meta;
mod pending;
mod refs;
mod roots;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::hash::Key;
use crate::spec::Name;

use crate::fsx::IoContext;
use layout::Layout;

pub use caches::{CacheInfo, CacheLease, CacheRecord};
pub use gc::{Modified, Swept, days};
pub use known::Realisation;
pub use lock::KeyLock;
pub use meta::Meta;
use meta::{read_meta, touch};
pub use pending::Pending;
pub use roots::Hold;

/// The path of a committed store entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(PathBuf);

impl StorePath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

/// A committed entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: StorePath,
    /// From [`Store::lookup`], without its inputs (see [`Store::meta`]).
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

impl From<crate::fsx::PathError> for StoreError {
    fn from(e: crate::fsx::PathError) -> Self {
        StoreError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// An open store: the `v2/` layout under a root directory.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    dirs: std::sync::Arc<meta::Dirs>,
    /// Shared on `locks/store.lock` while this store is open: the caches
    /// (blobs, root filesystems, layers) are in use (see [`Store::lock_caches`]).
    user: std::sync::Arc<std::fs::File>,
    /// The entries this store has used: gc keeps them while it is open.
    roots: std::sync::Arc<roots::Roots>,
    /// The refs of the project being built, read once, written once.
    refs: std::sync::Arc<refs::Refs>,
}

/// The caches of a store locked for gc: no other kiln process has the store
/// open. Dropping it makes this process an ordinary user again.
#[derive(Debug)]
pub struct CachesLock {
    user: std::sync::Arc<std::fs::File>,
}

impl Drop for CachesLock {
    fn drop(&mut self) {
        // Back to shared (converted in place); should it fail, this process
        // only stops counting as a user, which it is about to stop being.
        let _ = self.user.lock_shared();
    }
}

/// Something the store holds that is not what kiln recorded it to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// What is wrong, e.g. `sha256 is sha256:…, not sha256:…`.
    pub problem: String,
}

impl Store {
    /// `$KILN_HOME`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`
    /// (`--store DIR`, when given, is the CLI's to prefer).
    pub fn default_root() -> PathBuf {
        layout::root_from_env(|var| std::env::var_os(var), std::env::home_dir())
    }

    /// Opens (creating) the store layout under `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let layout = Layout::new(root);
        layout.create()?;
        let path = layout.store_lock();
        let user = lock::open(&path)?;
        // Waits only while a gc collects the caches, and gc waits for no one.
        user.lock_shared().at(&path)?;
        Ok(Store {
            roots: std::sync::Arc::new(roots::Roots::new(&layout)),
            refs: std::sync::Arc::new(refs::Refs::new(&layout)),
            dirs: std::sync::Arc::new(meta::Dirs::open(&layout)?),
            layout,
            user: std::sync::Arc::new(user),
        })
    }

    /// Locks the caches for gc, unless another kiln process has this store
    /// open (it may be using any blob, root filesystem or layer: gc then
    /// leaves the caches alone rather than wait). Never blocks.
    pub fn lock_caches(&self) -> Result<Option<CachesLock>, StoreError> {
        // flock converts this process's shared lock in place.
        match self.user.try_lock() {
            Ok(()) => Ok(Some(CachesLock {
                user: self.user.clone(),
            })),
            Err(std::fs::TryLockError::WouldBlock) => {
                let _ = self.user.lock_shared();
                Ok(None)
            }
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
                path: self.layout.store_lock(),
                source,
            }),
        }
    }

    /// The committed entry for `key`, if any; marks it used now. The key
    /// becomes a root of this store first, so gc keeps what this finds (or
    /// what this process builds after a miss) while the store is open.
    ///
    /// An entry exists iff its directory does and its meta parses: a corrupt
    /// meta reads as a miss, so the key is rebuilt and the entry replaced.
    pub fn lookup(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        self.roots.add(key)?;
        let short = key.short();
        let meta_file = self.layout.meta_file(&short);
        let Some((head, stale)) = self.dirs.read_head(&short, &meta_file)? else {
            return Ok(None);
        };
        let meta = Meta::from(head);
        if meta.key != *key {
            // Two keys sharing 128 bits: never seen, but not this entry.
            return Ok(None);
        }
        if !self.dirs.has_entry(&short, &meta.name) {
            return Ok(None);
        }
        let path = self.layout.entry_dir(&short, &meta.name);
        // Only gc reads the mark: a store kiln may read but not write (shared,
        // read-only) still serves cached entries.
        if stale {
            let _ = touch(&meta_file);
        }
        Ok(Some(Entry {
            path: StorePath(path),
            meta,
        }))
    }

    /// Pins this store's roots for a pass of many lookups (a no-op build):
    /// no gc runs until the pin is dropped, and the keys looked up meanwhile
    /// are recorded in one write. Waits only while a gc deletes.
    pub fn pin_roots(&self) -> Result<roots::Pin<'_>, StoreError> {
        self.roots.pin()
    }

    /// What the remote cache said `key` built to, if this store remembers
    /// it (see `known.rs`); marks it used now.
    pub fn known(&self, key: &Key) -> Result<Option<Realisation>, StoreError> {
        let found = known::read(&self.layout, key)?;
        if found.is_some() {
            // Only gc reads the mark; a store kiln cannot write still serves.
            let _ = touch(&self.layout.known_file(&key.short()));
        }
        Ok(found)
    }

    /// Remembers what `key` built to, as the remote cache's record says.
    pub fn remember(&self, known: &Realisation) -> Result<(), StoreError> {
        known::write(&self.layout, known)
    }

    /// The whole meta of `key`'s entry, its inputs included (a lookup
    /// leaves them out): what `kiln explain` compares.
    pub fn meta(&self, key: &Key) -> Result<Option<Meta>, StoreError> {
        let file = self.layout.meta_file(&key.short());
        Ok(read_meta::<Meta>(&file)?
            .map(|(meta, _)| meta)
            .filter(|m| m.key == *key))
    }

    /// Blocks until this process holds `key`'s build lock.
    pub fn lock(&self, key: &Key) -> Result<KeyLock, StoreError> {
        KeyLock::acquire(&self.layout, key)
    }

    /// Makes `key` a root of this store (as [`Store::lookup`] does): gc
    /// will not delete its entry, nor collect the caches, while the store
    /// or the returned hold lives (a hold outlives the store it came
    /// from). Takes no per-key lock; waits only while a gc deletes entries.
    pub fn hold(&self, key: &Key) -> Result<Hold, StoreError> {
        self.roots.add(key)?;
        Ok(Hold::new(&self.roots, &self.user))
    }

    /// A fresh build directory for `key` (caller holds its lock); removes
    /// leftovers of an earlier, interrupted build of the same key.
    pub fn begin(&self, key: &Key, name: &Name, lock: &KeyLock) -> Result<Pending, StoreError> {
        Pending::begin(&self.layout, key, name, lock)
    }

    pub fn log_path(&self, key: &Key, name: &Name) -> PathBuf {
        self.layout.log_file(&key.short(), name.as_str())
    }

    /// The log of `kiln build --rebuild` running `key` again: beside the
    /// build directories (`tmp/<key>-<name>.rebuild.log`), never over the
    /// log of the build that made the entry; removed like the rebuilt
    /// output it may come with (the key's next build, or gc).
    pub fn rebuild_log_path(&self, key: &Key, name: &Name) -> PathBuf {
        let file = format!("{}-{name}.rebuild.log", key.short());
        self.layout.tmp_dir().join(file)
    }

    /// Where `spec::load_cached` keeps validated specs for the store at
    /// `root`: a function of the root, not of an open store, because the
    /// spec is loaded before the store is opened (and `kiln check` opens none).
    pub fn spec_cache_dir(root: &Path) -> PathBuf {
        Layout::new(root).spec_cache_dir()
    }

    pub fn stat_cache_path(&self) -> PathBuf {
        self.layout.stat_cache()
    }

    pub fn layer_cache_dir(&self) -> PathBuf {
        self.layout.layers_dir()
    }

    /// Where imported base images keep their blobs.
    pub fn blobs_dir(&self) -> PathBuf {
        self.layout.root().join("blobs")
    }

    /// Where image root filesystems are unpacked for stages to run in.
    pub fn rootfs_dir(&self) -> PathBuf {
        self.layout.root().join("rootfs")
    }

    /// Remembers that `stage` of the project at `context` last built as
    /// `key`; written by [`Store::save_refs`].
    pub fn set_ref(&self, context: &Path, stage: &Name, key: &Key) -> Result<(), StoreError> {
        self.refs.set(context, stage, key)
    }

    /// The key `stage` of the project at `context` last built as, if known.
    pub fn get_ref(&self, context: &Path, stage: &Name) -> Result<Option<Key>, StoreError> {
        self.refs.get(context, stage)
    }

    /// Writes the refs this store has set, if any changed: once, at the end
    /// of a build.
    pub fn save_refs(&self) -> Result<(), StoreError> {
        self.refs.save()
    }

    /// Every committed entry, sorted by name then key.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        gc::list(&self.layout)
    }

    /// Re-hashes every entry; returns those whose output no longer matches,
    /// with the hash found.
    pub fn verify(&self) -> Result<Vec<(Entry, Modified)>, StoreError> {
        gc::verify(&self.layout)
    }

    /// Deletes entries unused for `keep_days` days, skipping keys being
    /// built and the roots of every other open store, and the leftovers of
    /// interrupted builds. This store's own roots do not count: gc runs as
    /// a command of its own. What it cannot delete is in the result's
    /// `failed`; only a store it cannot list is an error.
    pub fn gc(&self, keep_days: u64) -> Result<Swept, StoreError> {
        let own = self.roots.own_file();
        gc::collect(&self.layout, days(keep_days), own.as_deref())
    }
}
