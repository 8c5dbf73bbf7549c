//! The directories of `cache` lines (`spec::CacheDir`): what survives
//! between builds of a stage, outside every key and every output.
//!
//! ```text
//! v2/caches/<hash>/               one cache, private to the store's owner;
//!     │                           <hash>: 32 hex digits of blake3 over its
//!     │                           scope (an `id=`, or project, stage, path)
//!     ├── cache.json              CacheRecord (id, project); mtime: last use
//!     ├── busy.<pid>.<n>          one per build using it: one left behind
//!     │                           is a build killed while using it
//!     └── data/                   mounted read-write at the cache's path
//! v2/locks/<hash>.lock            flock: exclusive for a `locked` user, for
//!                                 gc and for a user that must drop it;
//!                                 shared for `shared` users
//! v2/tmp/<hash>-cache.<pid>.<n>   a cache being created or dropped
//! ```
//!
//! A cache appears at `caches/<hash>` whole or not at all: it is made in
//! `tmp/` and renamed into place. A build killed while it uses a cache
//! leaves its `busy.*` mark; the next user holding the lock alone drops
//! the cache and starts an empty one, so whatever a killed tool half wrote
//! is never read. Its lock file is named like a key's, so gc's sweep of
//! `tmp/` (`gc::remove_stale_builds`) removes a creation or drop cut short
//! under the same lock.
//!
//! Deadlock: a build takes a cache's lock while holding its key's build
//! lock and keeps it only while its scripts run, waiting for nothing else
//! meanwhile; a stage's caches are taken in one order (by hash); gc only
//! tries. So every wait for a cache ends (see `lock.rs`).
//!
//! Never follows a symlink under `data/`, which a build wrote: sizes and
//! deletions go by directory descriptor (`tree`). Does filesystem IO.

use std::fs::{File, TryLockError};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::layout::{Layout, read_names, remove_tree};
use super::{Store, StoreError, Swept, lock};
use crate::fsx::{IoContext, write_atomic};
use crate::spec::CacheSharing;

const RECORD: &str = "cache.json";
const DATA: &str = "data";
const BUSY: &str = "busy.";

/// Which cache a `cache` line means: an `id=` is the store's, shared by
/// every project; without one, the project's stage and path name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheRecord {
    /// The `id=`, or `STAGE:PATH`.
    pub id: String,
    /// The project (its context directory) of a cache without `id=`.
    pub project: Option<PathBuf>,
}

impl CacheRecord {
    /// The cache's directory name: 128 bits of blake3 over its scope.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new_derive_key("kiln cache dir v1");
        let project = self.project.as_deref().map(Path::as_os_str);
        let project = project.map_or(&[][..], |p| p.as_encoded_bytes());
        for part in [self.id.as_bytes(), project] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().to_hex()[..32].to_owned()
    }
}

/// A cache in use by this build: its directory stays, and stays this
/// build's alone (`locked`) or shared (`shared`), until dropped.
#[derive(Debug)]
pub struct CacheLease {
    data: PathBuf,
    /// Removed on release; `None` once abandoned.
    marker: Option<PathBuf>,
    /// The previous user was killed while using it: this one is empty.
    pub dropped: bool,
    // Closing it releases the lock, after the marker is gone (field order).
    _lock: File,
}

impl CacheLease {
    /// The directory to mount.
    pub fn dir(&self) -> &Path {
        &self.data
    }

    /// Releases the cache with its mark left in it, as a build killed
    /// using it would: its tools were killed mid-write (a `timeout`), so
    /// the next user drops it.
    pub fn abandon(mut self) {
        self.marker = None;
    }
}

impl Drop for CacheLease {
    fn drop(&mut self) {
        // Best effort: a mark left behind only costs the cache's contents.
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// A cache as `kiln store ls` shows it.
#[derive(Debug, Clone)]
pub struct CacheInfo {
    pub record: CacheRecord,
    pub dir: PathBuf,
    /// Bytes on disk, `du`-style.
    pub size: u64,
    pub last_used: SystemTime,
}

impl Store {
    /// The cache `record` names, created empty if new, held as `sharing`
    /// says: `locked` waits for every other user, `shared` only for a
    /// `locked` one (or gc), `private` waits for no one and is `None`
    /// when another build holds the cache.
    pub fn cache(
        &self,
        record: &CacheRecord,
        sharing: CacheSharing,
    ) -> Result<Option<CacheLease>, StoreError> {
        acquire(&self.layout, record, sharing)
    }

    /// Every cache, sorted by id.
    pub fn caches(&self) -> Result<Vec<CacheInfo>, StoreError> {
        let mut all = Vec::new();
        for hash in read_names(&self.layout.caches_dir())? {
            let dir = self.layout.caches_dir().join(&hash);
            let Ok(json) = std::fs::read(dir.join(RECORD)) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<CacheRecord>(&json) else {
                continue;
            };
            let last_used = (std::fs::metadata(dir.join(RECORD)))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let data = dir.join(DATA);
            let size = crate::tree::disk_usage(&data).unwrap_or(0);
            all.push(CacheInfo {
                record,
                dir: data,
                size,
                last_used,
            });
        }
        all.sort_by(|a, b| {
            (&a.record.id, &a.record.project).cmp(&(&b.record.id, &b.record.project))
        });
        Ok(all)
    }

    /// Deletes the caches unused for `keep` (all of them with `None`),
    /// skipping those a build holds.
    pub fn gc_caches(&self, keep: Option<Duration>) -> Swept {
        let mut swept = Swept::default();
        let layout = &self.layout;
        let names = match read_names(&layout.caches_dir()) {
            Ok(names) => names,
            Err(e) => {
                swept.fail(layout.caches_dir(), e);
                return swept;
            }
        };
        let now = SystemTime::now();
        for hash in names {
            let dir = layout.caches_dir().join(&hash);
            let removed = lock::try_exclusive(&layout.lock_file(&hash)).and_then(|held| {
                let Some(_held) = held else { return Ok(false) };
                let used = std::fs::metadata(dir.join(RECORD)).and_then(|m| m.modified());
                // No record: a cache no kiln made whole; it goes too.
                let old = match (keep, used) {
                    (None, _) | (_, Err(_)) => true,
                    (Some(keep), Ok(used)) => now.duration_since(used).unwrap_or_default() >= keep,
                };
                if old {
                    remove_tree(&dir, &trash(layout, &hash))?;
                }
                Ok(old)
            });
            swept.note(dir, removed);
        }
        swept
    }
}

fn acquire(
    layout: &Layout,
    record: &CacheRecord,
    sharing: CacheSharing,
) -> Result<Option<CacheLease>, StoreError> {
    let hash = record.hash();
    let path = layout.lock_file(&hash);
    let file = lock::open(&path)?;
    let alone = match sharing {
        CacheSharing::Locked => {
            file.lock().at(&path)?;
            true
        }
        CacheSharing::Private | CacheSharing::Shared => match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) if sharing == CacheSharing::Private => return Ok(None),
            Err(TryLockError::WouldBlock) => {
                file.lock_shared().at(&path)?;
                false
            }
            Err(TryLockError::Error(source)) => return Err(StoreError::Io { path, source }),
        },
    };
    let dir = layout.caches_dir().join(&hash);
    let dropped = alone && left_busy(&dir)?;
    if dropped {
        remove_tree(&dir, &trash(layout, &hash))?;
    }
    if sharing == CacheSharing::Shared && alone {
        // Not atomic (flock drops, then takes): a gc may slip in and delete
        // the cache, which `ensure` below then makes again.
        file.lock_shared().at(&path)?;
    }
    ensure(layout, &hash, &dir, record)?;
    let marker = dir.join(format!("{BUSY}{}.{}", std::process::id(), next()));
    File::create(&marker).at(&marker)?;
    // The record's mtime is the cache's last use (gc).
    let _ = File::options()
        .write(true)
        .open(dir.join(RECORD))
        .and_then(|f| f.set_modified(SystemTime::now()));
    Ok(Some(CacheLease {
        data: dir.join(DATA),
        marker: Some(marker),
        dropped,
        _lock: file,
    }))
}

/// Whether a build left its mark in `dir`: it was killed using the cache.
fn left_busy(dir: &Path) -> Result<bool, StoreError> {
    if !dir.is_dir() {
        return Ok(false);
    }
    Ok(read_names(dir)?.iter().any(|n| n.starts_with(BUSY)))
}

/// Makes the cache at `dir` if it is not there: whole, by a rename.
fn ensure(layout: &Layout, hash: &str, dir: &Path, record: &CacheRecord) -> Result<(), StoreError> {
    let data = dir.join(DATA);
    match std::fs::symlink_metadata(&data) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        // Not kiln's making: start again.
        Ok(_) => remove_tree(dir, &trash(layout, hash))?,
        Err(_) if dir.exists() => remove_tree(dir, &trash(layout, hash))?,
        Err(_) => {}
    }
    let temp = trash(layout, hash);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&temp)
        .at(&temp)?;
    let made = (|| {
        std::fs::create_dir(temp.join(DATA)).at(temp.join(DATA))?;
        let json = serde_json::to_vec(record).expect("kiln bug: a cache record serializes");
        write_atomic(&temp.join(RECORD), &json)?;
        std::fs::create_dir_all(layout.caches_dir()).at(layout.caches_dir())?;
        std::fs::rename(&temp, dir).at(dir)
    })();
    if made.is_err() {
        let _ = remove_tree(&temp, &temp);
        // Made meanwhile by a `shared` user: theirs is as good.
        if std::fs::symlink_metadata(&data).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
    }
    Ok(made?)
}

/// A fresh name under `tmp/` for the cache `hash`, swept by gc under its
/// lock if what is there is left behind.
fn trash(layout: &Layout, hash: &str) -> PathBuf {
    let name = format!("{hash}-cache.{}.{}", std::process::id(), next());
    layout.tmp_dir().join(name)
}

fn next() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
