//! Temporary roots: the entries a running kiln process uses, which gc must
//! keep, registered without a lock per key (Nix's temporary roots, as in
//! `LocalStore::addTempRoot`).
//!
//! Each open [`Store`](super::Store) that uses an entry appends the entry's
//! short key to one file of its own, `roots/<pid>-<n>`, which it keeps
//! locked (flock, exclusive) for as long as it is open; the kernel drops
//! the lock when the process dies, so a `kill -9`ed build's roots stop
//! counting and the next gc removes its file.
//!
//! The one lock between users and gc is `locks/gc.lock`:
//! - a user appends a root under a *shared* lock on it, and only then looks
//!   the entry up;
//! - gc takes it *exclusively* ([`lock_for_gc`]) before it reads the roots
//!   files and keeps it until it has deleted what it deletes.
//!
//! Why that is enough: a root appended before gc took the lock is in the
//! file gc reads, so gc keeps the entry; a root appended after gc let go of
//! the lock is followed by a lookup that sees gc's deletions (the entry's
//! directory is gone: a miss, rebuilt under the key's build lock); and no
//! root is appended while gc holds the lock. A roots file is created under
//! the shared lock too, so gc never lists one that is not locked yet and
//! takes it for a dead process's. The shared lock is held for one append
//! and waits only while a gc deletes; gc waits only for those appends. A
//! key is appended once per store: later hits on it take no lock at all.
//!
//! A pass that looks many keys up in a row (a no-op build answering every
//! node) [`pin`](Roots::pin)s the roots: it holds the shared lock for the
//! whole pass, so no gc runs meanwhile, and appends its keys in one write
//! before letting go; two system calls per pass instead of three per key.

use std::collections::HashSet;
use std::fs::{File, TryLockError};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::StoreError;
use super::layout::{Layout, read_names, remove_file};
use crate::fsx::IoContext;
use crate::hash::Key;

/// This store's roots: registered once per key, kept until it is dropped.
#[derive(Debug)]
pub(super) struct Roots {
    layout: Layout,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `locks/gc.lock`, opened on first use.
    gc: Option<File>,
    /// This store's roots file, created (and locked) on first use.
    file: Option<(PathBuf, File)>,
    /// The keys already in `file` (or in `pending`).
    seen: HashSet<Key>,
    /// While pinned: the shared lock is held, and the keys added since are
    /// in `pending`, written when the pin ends.
    pinned: bool,
    pending: Vec<Key>,
}

/// Proof that a key is a root of the store that made it: gc keeps the
/// key's entry while the proof, or that store, lives. It shares the
/// store's roots file, which is removed (and its lock let go) only when
/// the last of them is dropped: a command may drop the store it built
/// with and still read what the build handed it. It also keeps that
/// store's shared lock on `locks/store.lock`, so the store counts as open
/// and gc leaves the caches alone: an entry's blobs are hard links of
/// theirs, and an export copying one must not see it unlinked.
#[derive(Debug)]
pub struct Hold {
    _roots: std::sync::Arc<Roots>,
    _user: std::sync::Arc<File>,
}

impl Hold {
    pub(super) fn new(roots: &std::sync::Arc<Roots>, user: &std::sync::Arc<File>) -> Hold {
        Hold {
            _roots: roots.clone(),
            _user: user.clone(),
        }
    }
}

/// Holds the roots pinned (see [`Roots::pin`]) until dropped.
pub struct Pin<'a> {
    roots: &'a Roots,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        // Nothing to report to: a failed write leaves those keys unrooted
        // after the pass, as if gc had run before this build looked them up.
        let _ = self.roots.unpin();
    }
}

impl Roots {
    pub(super) fn new(layout: &Layout) -> Roots {
        Roots {
            layout: layout.clone(),
            state: Mutex::new(State::default()),
        }
    }

    /// Makes `key` a root of this store until it is dropped: gc keeps its
    /// entry. Call it before looking the entry up (see the module doc).
    pub(super) fn add(&self, key: &Key) -> Result<(), StoreError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.seen.contains(key) {
            return Ok(());
        }
        if state.pinned {
            state.seen.insert(*key);
            state.pending.push(*key);
            return Ok(());
        }
        let gc_path = self.layout.gc_lock();
        if state.gc.is_none() {
            state.gc = Some(super::lock::open(&gc_path)?);
        }
        let State { gc, file, seen, .. } = &mut *state;
        let gc = gc.as_ref().expect("kiln bug: the gc lock was just opened");
        // Waits only while a gc deletes entries.
        gc.lock_shared().at(&gc_path)?;
        let appended = append(&self.layout, file, key);
        gc.unlock().at(&gc_path)?;
        appended?;
        seen.insert(*key);
        Ok(())
    }

    /// This store's roots file, if it has one (its own gc skips it).
    /// Holds the shared gc lock until the returned pin is dropped: keys
    /// added meanwhile are roots at once (no gc can run) and are written in
    /// one append when the pin ends.
    pub(super) fn pin(&self) -> Result<Pin<'_>, StoreError> {
        let mut state = self.lock_state();
        if state.pinned {
            return Err(StoreError::Io {
                path: self.layout.gc_lock(),
                source: std::io::Error::other("kiln bug: the roots are pinned twice"),
            });
        }
        let gc_path = self.layout.gc_lock();
        if state.gc.is_none() {
            state.gc = Some(super::lock::open(&gc_path)?);
        }
        let gc = state
            .gc
            .as_ref()
            .expect("kiln bug: the gc lock was just opened");
        gc.lock_shared().at(&gc_path)?;
        state.pinned = true;
        Ok(Pin { roots: self })
    }

    fn unpin(&self) -> Result<(), StoreError> {
        let mut state = self.lock_state();
        let State {
            gc,
            file,
            pinned,
            pending,
            ..
        } = &mut *state;
        *pinned = false;
        let written = match pending.is_empty() {
            true => Ok(()),
            false => append_all(&self.layout, file, pending),
        };
        pending.clear();
        let gc_path = self.layout.gc_lock();
        if let Some(gc) = gc {
            gc.unlock().at(&gc_path)?;
        }
        written
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn own_file(&self) -> Option<PathBuf> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.file.as_ref().map(|(path, _)| path.clone())
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((path, _file)) = state.file.take() {
            // Best effort: the file is unlocked once closed, and the next gc
            // removes an unlocked roots file.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Appends `key` to the roots file, creating and locking it first if this
/// store has none yet. The caller holds the gc lock shared.
fn append(
    layout: &Layout,
    file: &mut Option<(PathBuf, File)>,
    key: &Key,
) -> Result<(), StoreError> {
    if file.is_none() {
        *file = Some(create(layout)?);
    }
    let (path, f) = file
        .as_mut()
        .expect("kiln bug: the roots file was just made");
    // One write of a whole line: a reader sees it whole or not at all (gc
    // reads only while it holds the gc lock, so never mid-write anyway).
    f.write_all(format!("{}\n", key.short()).as_bytes())
        .at(path)?;
    Ok(())
}

/// A new roots file of this process, locked exclusively.
/// Appends `keys` in one write.
fn append_all(
    layout: &Layout,
    file: &mut Option<(PathBuf, File)>,
    keys: &[Key],
) -> Result<(), StoreError> {
    if file.is_none() {
        *file = Some(create(layout)?);
    }
    let (path, f) = file
        .as_mut()
        .expect("kiln bug: the roots file was just made");
    let lines: String = keys.iter().map(|k| format!("{}\n", k.short())).collect();
    Ok(f.write_all(lines.as_bytes()).at(path)?)
}

fn create(layout: &Layout) -> Result<(PathBuf, File), StoreError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = layout.roots_dir();
    std::fs::create_dir_all(&dir).at(&dir)?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}", std::process::id()));
    // A file of the same name left by a dead process with this pid: its
    // lock is gone, so truncating it drops only dead roots.
    let file = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .at(&path)?;
    file.lock().at(&path)?;
    Ok((path, file))
}

/// `locks/gc.lock`, exclusively: no root is added while it is held. Blocks
/// until the appends under way (one write each) are done.
pub(super) fn lock_for_gc(layout: &Layout) -> Result<File, StoreError> {
    let path = layout.gc_lock();
    let file = super::lock::open(&path)?;
    file.lock().at(&path)?;
    Ok(file)
}

/// The short keys every live kiln process has registered, except those in
/// `skip`; removes the roots files of dead processes. The caller holds
/// [`lock_for_gc`].
pub(super) fn live(layout: &Layout, skip: Option<&Path>) -> Result<HashSet<String>, StoreError> {
    let dir = layout.roots_dir();
    let mut roots = HashSet::new();
    let names = match read_names(&dir) {
        Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(roots);
        }
        names => names?,
    };
    for name in names {
        let path = dir.join(name);
        if skip == Some(path.as_path()) {
            continue;
        }
        let file = match File::options().read(true).write(true).open(&path) {
            Ok(file) => file,
            // Its process removed it as it closed its store.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        match file.try_lock() {
            // No one holds it: its process is gone, and its roots with it.
            Ok(()) => remove_file(&path)?,
            Err(TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(&path).at(&path)?;
                roots.extend(text.lines().map(str::to_owned));
            }
            Err(TryLockError::Error(source)) => return Err(StoreError::Io { path, source }),
        }
    }
    Ok(roots)
}
