//! A build in progress: `tmp/<key>-<name>.<pid>/{src,out,tmp,root}`, and its
//! commit into `store/`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::layout::{Layout, read_names, remove_tree, short_key_of};
use super::{Entry, KeyLock, Meta, StoreError, StorePath};
use crate::fsx::{IoContext, write_atomic};
use crate::hash::{Key, OutputHash};
use crate::spec::Name;

/// A build in progress: a temporary directory that becomes a store entry on
/// `commit` and disappears if dropped uncommitted.
#[derive(Debug)]
pub struct Pending {
    layout: Layout,
    key: Key,
    name: Name,
    dir: PathBuf,
    work: PathBuf,
    out: PathBuf,
    tmp: PathBuf,
    root: PathBuf,
}

impl Pending {
    pub(super) fn begin(
        layout: &Layout,
        key: &Key,
        name: &Name,
        lock: &KeyLock,
    ) -> Result<Pending, StoreError> {
        assert_eq!(
            lock.key(),
            key,
            "kiln bug: begin called with another key's lock"
        );
        let short = key.short();
        remove_leftovers(layout, &short)?;
        let dir = layout.build_dir(&short, name.as_str());
        let pending = Pending {
            layout: layout.clone(),
            key: *key,
            name: name.clone(),
            work: dir.join("src"),
            out: dir.join("out"),
            tmp: dir.join("tmp"),
            root: dir.join("root"),
            dir,
        };
        // `create_dir`, not `_all`: a leftover that could not be removed
        // (same pid, long ago) must never become this build's output.
        // Private to the store's owner: what a script leaves in `out` or
        // `tmp` (a setuid program of the sandbox's id) must be out of every
        // other user's reach, even in a store they can traverse.
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&pending.dir)
            .at(&pending.dir)?;
        // From here on, dropping `pending` cleans up whatever was created.
        for sub in [&pending.work, &pending.out, &pending.tmp, &pending.root] {
            std::fs::create_dir(sub).at(sub)?;
        }
        Ok(pending)
    }

    /// The private writable copy of the sources: the stage's working directory.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// `$out`.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// A fresh, empty directory for `$TMPDIR`.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// An empty directory the sandbox mounts the build's root on (in its
    /// own mount namespace: it stays empty here).
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// A fresh, empty directory of this build's own, removed with it: a
    /// `cache` the build may not share (`sharing="private"` while busy,
    /// or `kiln build --rebuild`, which starts from empty caches).
    pub fn scratch_cache(&self, n: usize) -> Result<PathBuf, StoreError> {
        let dir = self.dir.join(format!("cache-{n}"));
        std::fs::create_dir(&dir).at(&dir)?;
        Ok(dir)
    }

    /// Moves `out` beside the build directories, as
    /// `tmp/<key>-<name>.<suffix>` (replacing one there), and gives its
    /// path: an output kept for the user to look at, never committed, which
    /// the key's next build or `kiln store gc` removes.
    pub fn keep_out(&self, suffix: &str) -> Result<PathBuf, StoreError> {
        let short = self.key.short();
        let name = format!("{short}-{}.{suffix}", self.name);
        let kept = self.layout.tmp_dir().join(name);
        remove_tree(&kept, &kept)?;
        // Out of the private build directory, it must be as harmless as a
        // committed entry: the store owner's, read-only, no setuid program
        // of the sandbox's id for another user to run.
        crate::tree::set_readonly(&self.out, true)?;
        // Moving a directory rewrites its `..`: writable until it is moved.
        set_mode(&self.out, 0o755)?;
        std::fs::rename(&self.out, &kept).at(&self.out)?;
        set_mode(&kept, 0o555)?;
        Ok(kept)
    }

    /// Hashes `out`, makes it read-only, writes its `Meta` and renames it into
    /// place: the entry exists only once complete.
    pub fn commit(
        self,
        inputs: BTreeMap<String, String>,
        started: u64,
        duration_ms: u64,
    ) -> Result<Entry, StoreError> {
        let output_hash = crate::tree::scan_dir(&self.out)?.hash();
        self.commit_hashed(output_hash, inputs, started, duration_ms)
    }

    /// Commits `out` only if it hashes to `expected` (a tree from elsewhere
    /// that says what it is); else `Ok(Err(actual))` and nothing is stored.
    pub fn commit_verified(
        self,
        expected: &OutputHash,
        inputs: BTreeMap<String, String>,
        started: u64,
        duration_ms: u64,
    ) -> Result<Result<Entry, OutputHash>, StoreError> {
        let actual = crate::tree::scan_dir(&self.out)?.hash();
        if actual != *expected {
            return Ok(Err(actual));
        }
        self.commit_hashed(actual, inputs, started, duration_ms)
            .map(Ok)
    }

    fn commit_hashed(
        self,
        output_hash: OutputHash,
        inputs: BTreeMap<String, String>,
        started: u64,
        duration_ms: u64,
    ) -> Result<Entry, StoreError> {
        crate::tree::set_readonly(&self.out, true)?;
        // Moving a directory to another parent rewrites its `..`, which needs
        // write permission on it: the top stays writable until it is in place.
        set_mode(&self.out, 0o755)?;

        let meta = Meta {
            key: self.key,
            name: self.name.to_string(),
            output_hash,
            inputs,
            started,
            duration_ms,
            kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let short = self.key.short();
        let json = serde_json::to_vec_pretty(&meta).expect("kiln bug: Meta always serializes");
        write_atomic(&self.layout.meta_file(&short), &json)?;

        let dest = self.layout.entry_dir(&short, self.name.as_str());
        // We hold the key's lock, so an entry already here is one whose meta
        // was unreadable (lookup missed it) or a caller that skipped lookup:
        // either way the new output replaces it.
        remove_tree(&dest, &self.dir.join("replaced"))?;
        std::fs::rename(&self.out, &dest).at(&self.out)?;
        set_mode(&dest, 0o555)?;
        // Dropping `self` removes what is left of the build directory.
        Ok(Entry {
            path: StorePath(dest),
            meta,
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Best effort: a failure here leaves a stale build directory, which
        // the key's next `begin`, or gc, removes.
        let _ = remove_tree(&self.dir, &self.dir);
    }
}

/// Removes build directories of `short` left by a build that was killed (the
/// caller holds the key's lock, so no live build owns them). Best effort: a
/// leftover that cannot be removed must not stop the key from ever building
/// again; gc reports it.
fn remove_leftovers(layout: &Layout, short: &str) -> Result<(), StoreError> {
    let tmp = layout.tmp_dir();
    for name in read_names(&tmp)? {
        if short_key_of(&name) == Some(short) {
            let dir = tmp.join(name);
            let _ = remove_tree(&dir, &dir);
        }
    }
    Ok(())
}

fn set_mode(dir: &Path, mode: u32) -> Result<(), StoreError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).at(dir)?;
    Ok(())
}
