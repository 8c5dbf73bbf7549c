//! Per-key build locks: `flock` on `locks/<key>.lock`.
//!
//! flock locks belong to an open file description, so they exclude other
//! processes and other threads of this process alike (each opens the file
//! itself), and the kernel drops them when the holder dies: a `kill -9`ed
//! build never leaves a key locked.
//!
//! - The build lock ([`KeyLock`]) is exclusive, taken by the one builder of
//!   a key after a miss and released as soon as the entry is committed (or
//!   the build fails). A hit takes no per-key lock: gc learns which entries
//!   are in use from the temporary roots (`roots.rs`).
//! - gc takes a key's build lock only with `try_lock`: a key being built is
//!   skipped, never waited for.
//!
//! Why no deadlock: the only blocking waits are a builder waiting for a
//! key's build lock, whose holder is building that key and waits for no
//! lock until it releases it (a build takes no other lock while it runs,
//! and each thread holds at most one build lock); and the gc lock of
//! `roots.rs`, held for one append or for one gc, neither of which waits
//! for a build lock. Every wait therefore ends, whatever else the waiter
//! holds: no cycle can form. (Issue 9 item 6 was such a cycle: each build
//! kept a shared lock on what it had built while waiting for the exclusive
//! lock of what the other had built.)

use std::fs::{File, TryLockError};
use std::path::Path;

use super::StoreError;
use super::layout::Layout;
use crate::fsx::IoContext;
use crate::hash::Key;

/// Held while building a key; dropping it releases the lock.
#[derive(Debug)]
pub struct KeyLock {
    key: Key,
    // Closing the file releases the lock: that is all Drop needs to do.
    _file: File,
}

impl KeyLock {
    /// Blocks until this caller holds `key`'s build lock: at most until
    /// whoever builds the key now has finished.
    pub(super) fn acquire(layout: &Layout, key: &Key) -> Result<KeyLock, StoreError> {
        let path = layout.lock_file(&key.short());
        let file = open(&path)?;
        file.lock().at(&path)?;
        Ok(KeyLock {
            key: *key,
            _file: file,
        })
    }

    pub(super) fn key(&self) -> &Key {
        &self.key
    }
}

/// A key's build lock, held exclusively by gc.
#[derive(Debug)]
pub(super) struct ShortLock {
    _build: File,
}

/// The build lock of `short` (all that file names carry), unless someone
/// builds the key right now.
pub(super) fn try_lock(layout: &Layout, short: &str) -> Result<Option<ShortLock>, StoreError> {
    let build = try_exclusive(&layout.lock_file(short))?;
    Ok(build.map(|build| ShortLock { _build: build }))
}

/// `path` locked exclusively, or `None` if someone else has it locked.
pub(super) fn try_exclusive(path: &Path) -> Result<Option<File>, StoreError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

pub(super) fn open(path: &Path) -> Result<File, StoreError> {
    // Never truncated: the file's content is irrelevant, only its lock.
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)?;
    Ok(file)
}
