//! File trees: walking, hashing and copying them.
//!
//! Used for a stage's declared sources (input side: `.gitignore`/`.kilnignore`
//! respected, stat cache consulted) and for a stage's output (output side: every
//! entry, no ignore rules). A tree's hash covers each entry's relative path,
//! type, executable bit, content and symlink target; never mtimes, owners or
//! the absolute location, so the same tree hashes the same anywhere.
//!
//! CONTRACT (owned by the tree helper; signatures fixed, bodies to write).

use std::path::{Path, PathBuf};

use crate::hash::OutputHash;
use crate::spec::SrcPath;

/// What one entry of a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        executable: bool,
        size: u64,
        content: [u8; 32],
    },
    Symlink {
        target: String,
    },
}

/// One entry, its path relative to the tree root, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

/// A scanned tree: entries sorted by path (byte order), parents before children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("Failed to read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is neither a file, a directory nor a symlink")]
    Special { path: PathBuf },
}

impl Tree {
    /// blake3 over the canonical, length-prefixed encoding of every entry.
    pub fn hash(&self) -> OutputHash {
        todo!()
    }

    /// `(path, "<kind> <hash or target>")` per entry: what `kiln explain` diffs.
    pub fn manifest(&self) -> impl Iterator<Item = (String, String)> + '_ {
        std::iter::empty::<(String, String)>().chain(self.entries.iter().map(|_| todo!()))
    }
}

/// A persistent stat cache: (path, size, mtime, inode, ctime) → content hash.
/// Entries whose mtime is not older than the cache's own write time are
/// re-hashed (racy, as git does).
pub struct StatCache {}

impl StatCache {
    /// Loads the cache file (missing or corrupt: an empty cache).
    pub fn load(file: PathBuf) -> StatCache {
        let _ = file;
        todo!()
    }

    /// Writes the cache back (atomically) if anything changed.
    pub fn save(&self) -> Result<(), TreeError> {
        todo!()
    }
}

/// The tree of the declared sources `srcs` under `context`, as they will be
/// copied into a build directory; each src keeps its relative path. Files are
/// hashed in parallel; unchanged files come from `cache` without being read.
pub fn scan_sources(
    context: &Path,
    srcs: &[SrcPath],
    cache: &StatCache,
) -> Result<Tree, TreeError> {
    let _ = (context, srcs, cache);
    todo!()
}

/// The tree under `dir`, every entry, no ignore rules, no cache.
pub fn scan_dir(dir: &Path) -> Result<Tree, TreeError> {
    let _ = dir;
    todo!()
}

/// Copies exactly the entries of `tree` (as scanned under `context`) to `dest`,
/// writable, keeping executable bits and symlinks.
pub fn copy_tree(tree: &Tree, context: &Path, dest: &Path) -> Result<(), TreeError> {
    let _ = (tree, context, dest);
    todo!()
}

/// Removes write permission from everything under `dir` (store entries are
/// read-only), and the reverse for deleting them.
pub fn set_readonly(dir: &Path, readonly: bool) -> Result<(), TreeError> {
    let _ = (dir, readonly);
    todo!()
}
