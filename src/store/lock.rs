//! Per-key build locks: `flock` on `locks/<key>.lock`.
//!
//! flock locks belong to an open file description, so they exclude other
//! processes and other threads of this process alike (each opens the file
//! itself), and the kernel drops them when the holder dies: a `kill -9`ed
//! build never leaves a key locked.

use std::fs::{File, TryLockError};

use super::StoreError;
use super::layout::{IoContext, Layout};
use crate::hash::Key;

/// Held while building a key; dropping it releases the lock.
#[derive(Debug)]
pub struct KeyLock {
    key: Key,
    // Closing the file releases the lock: that is all Drop needs to do.
    file: File,
}

/// A shared hold on a committed entry: while any process holds one, gc
/// (which takes the key's lock exclusively, without waiting) leaves the
/// entry alone. Builds hold one on every entry they use until they end.
#[derive(Debug)]
pub struct Hold {
    _file: File,
}

impl KeyLock {
    /// Blocks until this caller holds `key`'s lock.
    pub(super) fn acquire(layout: &Layout, key: &Key) -> Result<KeyLock, StoreError> {
        let path = layout.lock_file(&key.short());
        let file = open(&path)?;
        file.lock().at(&path)?;
        Ok(KeyLock { key: *key, file })
    }

    /// Blocks until no one builds `key`, then holds it shared.
    pub(super) fn hold(layout: &Layout, key: &Key) -> Result<Hold, StoreError> {
        let path = layout.lock_file(&key.short());
        let file = open(&path)?;
        file.lock_shared().at(&path)?;
        Ok(Hold { _file: file })
    }

    /// The build is committed: keep the entry held, let other readers in.
    pub fn downgrade(self) -> Hold {
        // flock converts in place; should it fail, the exclusive lock is
        // kept, which only makes other readers wait for this process.
        let _ = self.file.lock_shared();
        Hold { _file: self.file }
    }

    pub(super) fn key(&self) -> &Key {
        &self.key
    }
}

/// A held lock for gc, by the key's short form (all that file names carry).
#[derive(Debug)]
pub(super) struct ShortLock {
    _file: File,
}

/// The lock of `short`, unless someone else holds it right now.
pub(super) fn try_lock(layout: &Layout, short: &str) -> Result<Option<ShortLock>, StoreError> {
    let path = layout.lock_file(short);
    let file = open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(ShortLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
    }
}

fn open(path: &std::path::Path) -> Result<File, StoreError> {
    // Never truncated: the file's content is irrelevant, only its lock.
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}
