//! Per-key locks: `flock` on two files per key, one for building and one
//! for holding.
//!
//! flock locks belong to an open file description, so they exclude other
//! processes and other threads of this process alike (each opens the file
//! itself), and the kernel drops them when the holder dies: a `kill -9`ed
//! build never leaves a key locked.
//!
//! - `locks/<key>.lock`, the build lock ([`KeyLock`]): exclusive, taken by
//!   the one builder of a key and released as soon as the entry is
//!   committed (or the build fails).
//! - `locks/<key>.hold`, the hold ([`Hold`]): shared, taken by every process
//!   that uses the key's entry, for as long as it may read it.
//! - gc takes both exclusively, and only with `try_lock`: a key being built
//!   or held is skipped, never waited for.
//!
//! Why two files: a process holds entries for its whole command, so holds
//! must never make anyone wait, or two builds deadlock (issue 9 item 6: each
//! kept a shared lock on what it had built while waiting for the exclusive
//! lock of what the other had built). With the split, the only blocking
//! waits are: a builder waiting for a key's build lock, whose holder is
//! building that key and waits for no lock at all until it releases it
//! (a build takes no other lock while it runs, and each thread holds at
//! most one build lock); and a hold waiting while gc deletes that key, and
//! gc waits for nothing. Every wait therefore ends, whatever else the
//! waiter holds: no cycle can form.

use std::fs::{File, TryLockError};
use std::path::Path;

use super::StoreError;
use super::layout::{IoContext, Layout};
use crate::hash::Key;

/// Held while building a key; dropping it releases the lock.
#[derive(Debug)]
pub struct KeyLock {
    key: Key,
    // Closing the file releases the lock: that is all Drop needs to do.
    _file: File,
}

/// A shared hold on a key's entry: while any process holds one, gc leaves
/// the entry alone. Builds hold every entry they use until they end.
#[derive(Debug)]
pub struct Hold {
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

    /// Holds `key` shared; waits only while gc is deleting its entry.
    pub(super) fn hold(layout: &Layout, key: &Key) -> Result<Hold, StoreError> {
        let path = layout.hold_file(&key.short());
        let file = open(&path)?;
        file.lock_shared().at(&path)?;
        Ok(Hold { _file: file })
    }

    pub(super) fn key(&self) -> &Key {
        &self.key
    }
}

/// Both locks of a key, held exclusively by gc.
#[derive(Debug)]
pub(super) struct ShortLock {
    _build: File,
    _hold: File,
}

/// Both locks of `short` (all that file names carry), unless someone builds
/// or holds the key right now.
pub(super) fn try_lock(layout: &Layout, short: &str) -> Result<Option<ShortLock>, StoreError> {
    let Some(build) = try_exclusive(&layout.lock_file(short))? else {
        return Ok(None);
    };
    let Some(hold) = try_exclusive(&layout.hold_file(short))? else {
        return Ok(None);
    };
    Ok(Some(ShortLock {
        _build: build,
        _hold: hold,
    }))
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
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}
