//! Whole-store operations: list, verify, and garbage collection.
//!
//! gc never deletes under a builder or a user: it reads every live
//! process's roots under the gc lock and keeps it until it is done (see
//! `roots.rs`), deletes a key only while it holds the key's build lock
//! (taken with `try_lock`, so a key being built is skipped, not waited
//! for), and deletes an entry's directory before its meta, because the
//! directory is the commit point. What gc
//! cannot delete (a directory someone mounted something on, a disk error)
//! is reported in [`Swept::failed`], and gc goes on with the rest.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use super::layout::{Layout, read_names, remove_file, remove_tree, short_key_of};
use super::lock::try_lock;
use super::roots;
use super::{Entry, StoreError, StorePath, read_meta};
use crate::fsx::IoContext;
use crate::hash::OutputHash;

/// Every committed entry, sorted by name then key.
pub(super) fn list(layout: &Layout) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    for file in read_names(&layout.meta_dir())? {
        let Some(short) = meta_key_of(&file) else {
            continue;
        };
        if let Some(entry) = entry_of(layout, short)? {
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| (&a.meta.name, a.meta.key).cmp(&(&b.meta.name, b.meta.key)));
    Ok(entries)
}

/// Entries whose output no longer hashes to what their meta recorded.
pub(super) fn verify(layout: &Layout) -> Result<Vec<(Entry, Modified)>, StoreError> {
    let checked: Result<Vec<_>, StoreError> = list(layout)?
        .into_par_iter()
        .map(|entry| {
            let found = crate::tree::scan_dir(entry.path.as_path())?.hash();
            if found != entry.meta.output_hash {
                return Ok(Some((entry, Modified::Content(found))));
            }
            let loose = crate::tree::not_read_only(entry.path.as_path())?;
            Ok(loose
                .into_iter()
                .next()
                .map(|(path, what)| (entry, Modified::Metadata { path, what })))
        })
        .collect();
    Ok(checked?.into_iter().flatten().collect())
}

/// Deletes entries unused for `keep` and the garbage of interrupted builds.
/// Only a store it cannot list is an error; each thing it cannot delete is
/// in the result's `failed`.
pub(super) fn collect(
    layout: &Layout,
    keep: Duration,
    own_roots: Option<&Path>,
) -> Result<Swept, StoreError> {
    let now = SystemTime::now();
    let mut swept = Swept::default();
    // Held until every entry is dealt with: no root is added meanwhile.
    let _gc = roots::lock_for_gc(layout)?;
    let roots = roots::live(layout, own_roots)?;
    for file in read_names(&layout.meta_dir())? {
        let Some(short) = meta_key_of(&file) else {
            continue;
        };
        if roots.contains(short) {
            continue;
        }
        if let Err(e) = collect_key(layout, short, keep, now, &mut swept) {
            swept.fail(layout.meta_file(short), e);
        }
    }
    remove_orphans(layout, &mut swept)?;
    remove_stale_builds(layout, &mut swept)?;
    remove_unused_files(&layout.spec_cache_dir(), keep, now, &mut swept);
    remove_unused_files(&layout.known_dir(), keep, now, &mut swept);
    Ok(swept)
}

/// Files of `dir` (cached specs, realisations, a write's leftover temp
/// file) unused for `keep`. Needs no lock: a spec deleted under a reader is
/// only parsed again, a realisation only asked of the cache again.
fn remove_unused_files(dir: &Path, keep: Duration, now: SystemTime, swept: &mut Swept) {
    let names = match read_names(dir) {
        Ok(names) => names,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return;
        }
        Err(e) => return swept.fail(dir.to_owned(), e),
    };
    for name in names {
        let file = dir.join(name);
        let unused = std::fs::symlink_metadata(&file)
            .and_then(|m| m.modified())
            .map(|used| now.duration_since(used).unwrap_or_default() >= keep)
            .at(&file)
            .map_err(StoreError::from);
        let removed = unused.and_then(|old| match old {
            true => remove_file(&file).map(|()| true),
            false => Ok(false),
        });
        swept.note(file, removed);
    }
}

/// The entry of `short` if unused for `keep` (or its meta, if it is garbage).
fn collect_key(
    layout: &Layout,
    short: &str,
    keep: Duration,
    now: SystemTime,
    swept: &mut Swept,
) -> Result<(), StoreError> {
    let Some(_lock) = try_lock(layout, short)? else {
        return Ok(());
    };
    let meta_file = layout.meta_file(short);
    match entry_of(layout, short)? {
        Some(entry) => {
            let used = std::fs::metadata(&meta_file)
                .and_then(|m| m.modified())
                .at(&meta_file)?;
            if now.duration_since(used).unwrap_or_default() >= keep {
                delete_entry(layout, &entry)?;
                swept.entries.push(entry);
            }
        }
        // A meta without an entry (a commit cut short) or one that does
        // not parse: garbage.
        None => remove_file(&meta_file)?,
    }
    Ok(())
}

/// The entry whose meta is `meta/<short>.json`, if committed and readable.
fn entry_of(layout: &Layout, short: &str) -> Result<Option<Entry>, StoreError> {
    let Some((meta, _)) = read_meta::<super::Meta>(&layout.meta_file(short))? else {
        return Ok(None);
    };
    let path = layout.entry_dir(short, &meta.name);
    Ok(path.is_dir().then_some(Entry {
        path: StorePath(path),
        meta,
    }))
}

fn delete_entry(layout: &Layout, entry: &Entry) -> Result<(), StoreError> {
    let short = entry.meta.key.short();
    remove_tree(entry.path.as_path(), &trash_dir(layout, &short))?;
    remove_file(&layout.meta_file(&short))?;
    remove_file(&layout.log_file(&short, &entry.meta.name))
}

/// Entry directories with no meta (theirs was corrupt and gc removed it).
fn remove_orphans(layout: &Layout, swept: &mut Swept) -> Result<(), StoreError> {
    let store = layout.store_dir();
    for name in read_names(&store)? {
        let Some(short) = short_key_of(&name) else {
            continue;
        };
        let dir = store.join(&name);
        let removed = try_lock(layout, short).and_then(|lock| match lock {
            Some(_lock) if !layout.meta_file(short).exists() => {
                remove_tree(&dir, &trash_dir(layout, short)).map(|()| true)
            }
            _ => Ok(false),
        });
        swept.note(dir, removed);
    }
    Ok(())
}

/// Build directories (and gc's trash) whose key is not locked: their
/// builder died, or a gc was cut short.
fn remove_stale_builds(layout: &Layout, swept: &mut Swept) -> Result<(), StoreError> {
    let tmp = layout.tmp_dir();
    for name in read_names(&tmp)? {
        let Some(short) = short_key_of(&name) else {
            continue;
        };
        let dir = tmp.join(&name);
        let removed = try_lock(layout, short).and_then(|lock| match lock {
            Some(_lock) => remove_tree(&dir, &dir).map(|()| true),
            None => Ok(false),
        });
        swept.note(dir, removed);
    }
    Ok(())
}

/// Where a deleted entry is moved before it is removed; named after its key
/// so that, if gc is cut short, the key's next build or gc removes it, and
/// unique, so that trash a failed deletion left never blocks the next one.
fn trash_dir(layout: &Layout, short: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    layout
        .tmp_dir()
        .join(format!("{short}-gc.{}.{n}", std::process::id()))
}

/// `<short>` of a meta file name `<short>.json`; other names (an atomic
/// write's temp file) are skipped.
fn meta_key_of(file: &str) -> Option<&str> {
    let short = short_key_of(file)?;
    (Path::new(file).extension()? == "json" && file.len() == 37).then_some(short)
}

/// How a committed entry differs from what kiln wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modified {
    /// Its content hashes to this, not to its recorded output hash.
    Content(OutputHash),
    /// Same content, but `path` (relative to the entry) is no longer
    /// read-only and the store owner's: `what` says how.
    Metadata { path: String, what: String },
}

impl std::fmt::Display for Modified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Modified::Content(found) => write!(f, "content hashes to {found}"),
            Modified::Metadata { path, what } => write!(f, "`{path}` has {what}"),
        }
    }
}

/// What a gc deleted, and what it could not: it goes on past each failure.
#[derive(Debug, Default)]
pub struct Swept {
    /// Stage entries deleted.
    pub entries: Vec<Entry>,
    /// Everything else deleted: leftovers of interrupted builds and imports,
    /// cached blobs, layers and root filesystems.
    pub removed: Vec<PathBuf>,
    /// What could not be deleted, and why.
    pub failed: Vec<(PathBuf, Box<dyn std::error::Error + Send + Sync>)>,
}

impl Swept {
    pub fn fail(
        &mut self,
        path: PathBuf,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) {
        self.failed.push((path, cause.into()));
    }

    /// Records the outcome of deleting `path` (`Ok(false)`: left alone).
    pub fn note<E>(&mut self, path: PathBuf, removed: Result<bool, E>)
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match removed {
            Ok(true) => self.removed.push(path),
            Ok(false) => {}
            Err(e) => self.fail(path, e),
        }
    }

    /// Adds what another part of the store's gc did.
    pub fn absorb(&mut self, other: Swept) {
        self.entries.extend(other.entries);
        self.removed.extend(other.removed);
        self.failed.extend(other.failed);
    }
}

/// `n` days.
pub fn days(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n.saturating_mul(24 * 60 * 60))
}
