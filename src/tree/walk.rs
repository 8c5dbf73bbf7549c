//! Finding a tree's entries on disk, then hashing its files in parallel.
//!
//! Sources ([`scan_sources`]) follow the ignore rules a user expects from git,
//! and nothing from the user's machine: `.gitignore` and `.kilnignore` files
//! in the context (`.kilnignore` wins), no git repository needed, no global
//! gitignore, no `.git/info/exclude`. The ignore files of the directories
//! between the context and a nested src apply to it too, as they would for
//! `src "."`. A `.git` found while walking is never a source. Hidden files are
//! sources; symlinks are recorded, never followed. A src named explicitly is
//! always included, even if a rule would ignore it.
//!
//! Outputs ([`scan_dir`]) are taken whole: every entry, no rules, no cache.
//! So is the image directory a base is imported from ([`scan_whole`]): its
//! importer reads past any rule; but through the stat cache, as it is
//! keyed when planning, on every build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use rustix::fs::FileType;

use super::at::{self, Visit};
use super::content::{FileContent, hash_at, hash_files};
use super::statcache::now_ns;
use super::{Entry, EntryKind, StatCache, Tree, TreeError};
use crate::fsx::IoContext;
use crate::spec::SrcPath;

const IGNORE_FILES: [&str; 2] = [".gitignore", ".kilnignore"];

/// An entry found on disk, before its content is hashed.
struct Found {
    rel: String,
    abs: PathBuf,
    kind: FoundKind,
}

enum FoundKind {
    Dir,
    File,
    /// A file already hashed through its directory (too deep for a path).
    Hashed(FileContent),
    Symlink {
        target: String,
    },
}

/// The tree of the declared sources `srcs` under `context`, as they will be
/// copied into a build directory; each src keeps its relative path. Files are
/// hashed in parallel; unchanged files come from `cache` without being read.
///
/// A nested src brings its parent directories as entries (`src "a/b/c.txt"`
/// gives `a`, `a/b` and `a/b/c.txt`), so [`copy_tree`](super::copy_tree)
/// recreates the layout. `src "."` is the whole context (not itself an entry).
pub fn scan_sources(
    context: &Path,
    srcs: &[SrcPath],
    cache: &StatCache,
) -> Result<Tree, TreeError> {
    // Taken before any stat: a file modified after this instant is racy.
    let scan_start = now_ns();
    let mut found = Vec::new();
    for src in srcs {
        find_src(context, src, &mut found)?;
    }
    found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    found.dedup_by(|a, b| a.rel == b.rel);
    hash_found(found, Some((cache, scan_start)))
}

/// The content hash of one file anywhere (a host tool), through `cache`:
/// an unchanged file is not read again. `path` is resolved first, so a
/// symlink is keyed by what it points to.
pub fn hash_one(path: &Path, cache: &StatCache) -> Result<[u8; 32], TreeError> {
    let scan_start = now_ns();
    let real = fs_err::canonicalize(path).map_err(TreeError::io(path))?;
    let contents = super::content::hash_files(&[real.as_path()], Some((cache, scan_start)))?;
    Ok(contents[0].content)
}

/// The paths `scan_sources` would take for `srcs`, on disk, without hashing
/// anything: what an image's `add` may copy (the same ignore rules apply).
pub fn source_paths(context: &Path, srcs: &[SrcPath]) -> Result<Vec<PathBuf>, TreeError> {
    let mut found = Vec::new();
    for src in srcs {
        find_src(context, src, &mut found)?;
    }
    Ok(found.into_iter().map(|f| f.abs).collect())
}

/// The tree under `dir`, every entry (no ignore rules: what a reader of the
/// whole directory reads), its files through `cache` as sources' are;
/// symlinks recorded, never followed. `dir` itself is the root, not an
/// entry, and is taken as given (resolve it first to follow a link to it).
pub fn scan_whole(dir: &Path, cache: &StatCache) -> Result<Tree, TreeError> {
    let scan_start = now_ns();
    let mut found = Vec::new();
    walk(dir, dir, None, &mut found)?;
    found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    hash_found(found, Some((cache, scan_start)))
}

/// The tree under `dir`, every entry, no ignore rules, no cache. `dir` itself
/// is the root, not an entry. Walked by descriptor ([`at`](super::at)): an
/// output deeper than `PATH_MAX` hashes like any other (its deep files are
/// read through their directory, the rest in parallel by path).
pub fn scan_dir(dir: &Path) -> Result<Tree, TreeError> {
    let mut found = Vec::new();
    at::walk(dir, &mut |v| {
        let (parent, name, rel, stat) = match v {
            Visit::Dir { rel, .. } => {
                found.push(Found {
                    rel: utf8(dir, rel)?,
                    abs: at::display(dir, rel),
                    kind: FoundKind::Dir,
                });
                return Ok(true);
            }
            Visit::Left { .. } => return Ok(true),
            Visit::Leaf {
                parent,
                name,
                rel,
                stat,
            } => (parent, name, rel, stat),
        };
        let abs = at::display(dir, rel);
        let kind = match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())
                    .map_err(|e| TreeError::io(&abs)(e.into()))?;
                let target = target
                    .into_string()
                    .map_err(|_| TreeError::NonUtf8 { path: abs.clone() })?;
                FoundKind::Symlink { target }
            }
            // A path the kernel takes as is: hashed later, in parallel.
            FileType::RegularFile if abs.as_os_str().len() < libc::PATH_MAX as usize => {
                FoundKind::File
            }
            FileType::RegularFile => FoundKind::Hashed(hash_at(parent, name, &abs)?),
            _ => return Err(TreeError::Special { path: abs }),
        };
        found.push(Found {
            rel: utf8(dir, rel)?,
            abs,
            kind,
        });
        Ok(true)
    })?;
    found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    hash_found(found, None)
}

fn utf8(root: &Path, rel: &[u8]) -> Result<String, TreeError> {
    String::from_utf8(rel.to_vec()).map_err(|_| TreeError::NonUtf8 {
        path: at::display(root, rel),
    })
}

/// Finds one src: its parent directories, then itself and what is under it.
fn find_src(context: &Path, src: &SrcPath, found: &mut Vec<Found>) -> Result<(), TreeError> {
    let abs = src.on_disk(context);
    let mut rules = Vec::new();
    if src.as_str() != "." {
        let mut dir = context.to_path_buf();
        rules.extend(ignore_rules(&dir)?);
        let parents: Vec<&str> = src.as_str().split('/').collect();
        for (i, name) in parents[..parents.len() - 1].iter().enumerate() {
            dir.push(name);
            let meta = std::fs::symlink_metadata(&dir).at(&dir)?;
            if !meta.is_dir() {
                return Err(TreeError::NotADir { path: dir });
            }
            found.push(Found {
                rel: parents[..=i].join("/"),
                abs: dir.clone(),
                kind: FoundKind::Dir,
            });
            rules.extend(ignore_rules(&dir)?);
        }
    }
    let meta = std::fs::symlink_metadata(&abs).at(&abs)?;
    if meta.is_dir() {
        walk(context, &abs, Some(rules), found)
    } else {
        found.push(found_entry(src.as_str().to_owned(), abs, meta.file_type())?);
        Ok(())
    }
}

/// The rules of `dir`'s own `.gitignore` and `.kilnignore` (later files win).
fn ignore_rules(dir: &Path) -> Result<Option<Gitignore>, TreeError> {
    let mut builder = GitignoreBuilder::new(dir);
    let mut any = false;
    for name in IGNORE_FILES {
        let file = dir.join(name);
        if file.is_file() {
            any = true;
            if let Some(err) = builder.add(&file) {
                return Err(TreeError::Ignore {
                    path: file,
                    source: err,
                });
            }
        }
    }
    if !any {
        return Ok(None);
    }
    builder
        .build()
        .map(Some)
        .map_err(|source| TreeError::Ignore {
            path: dir.to_path_buf(),
            source,
        })
}

/// Walks `root` (inside `context`); `rules` is `None` for an output (take
/// everything), or the ignore rules of the directories above `root`.
fn walk(
    context: &Path,
    root: &Path,
    rules: Option<Vec<Gitignore>>,
    found: &mut Vec<Found>,
) -> Result<(), TreeError> {
    let mut builder = ignore::WalkBuilder::new(root);
    builder.standard_filters(false).follow_links(false);
    if let Some(rules) = rules {
        builder
            .git_ignore(true)
            .require_git(false)
            .add_custom_ignore_filename(".kilnignore");
        let above = RulesAbove {
            rules,
            root: root.to_path_buf(),
            inside: Mutex::default(),
        };
        builder.filter_entry(move |e| {
            e.depth() == 0 || (e.file_name() != ".git" && !above.ignores(e))
        });
    }
    for item in builder.build() {
        let entry = item.map_err(|err| walk_error(root, err))?;
        let rel = entry
            .path()
            .strip_prefix(context)
            .expect("kiln bug: walked outside the walk root");
        if rel.as_os_str().is_empty() {
            continue;
        }
        let rel = rel.to_str().ok_or_else(|| TreeError::NonUtf8 {
            path: entry.path().to_path_buf(),
        })?;
        let file_type = entry
            .file_type()
            .expect("kiln bug: only stdin has no file type");
        found.push(found_entry(rel.to_owned(), entry.into_path(), file_type)?);
    }
    Ok(())
}

/// The ignore rules of the directories above a walk's root. The walker
/// applies the rules inside the walk itself; these are applied on top, with
/// git's precedence: the deepest directory with a matching rule decides, so a
/// `!pattern` inside the walk re-includes what a rule above ignores.
struct RulesAbove {
    rules: Vec<Gitignore>,
    root: PathBuf,
    /// The rules of directories inside the walk, read only when a rule above
    /// ignores something (rare), then kept.
    inside: Mutex<HashMap<PathBuf, Option<Gitignore>>>,
}

impl RulesAbove {
    fn ignores(&self, e: &ignore::DirEntry) -> bool {
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        let above = self
            .rules
            .iter()
            .rev()
            .map(|gi| gi.matched(e.path(), is_dir))
            .find(|m| !m.is_none());
        if !above.is_some_and(|m| m.is_ignore()) {
            return false;
        }
        let mut inside = self
            .inside
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for dir in e
            .path()
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.root))
        {
            // A broken ignore file is reported by the walker, which reads it too.
            let gi = inside
                .entry(dir.to_path_buf())
                .or_insert_with(|| ignore_rules(dir).ok().flatten());
            match gi.as_ref().map(|gi| gi.matched(e.path(), is_dir)) {
                Some(m) if !m.is_none() => return m.is_ignore(),
                _ => {}
            }
        }
        true
    }
}

fn walk_error(root: &Path, err: ignore::Error) -> TreeError {
    fn path_of(err: &ignore::Error) -> Option<&Path> {
        match err {
            ignore::Error::WithPath { path, .. } => Some(path),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                path_of(err)
            }
            ignore::Error::Partial(errs) => errs.iter().find_map(path_of),
            _ => None,
        }
    }
    let path = path_of(&err).unwrap_or(root).to_path_buf();
    match err.io_error() {
        Some(io) => TreeError::Io {
            path,
            source: std::io::Error::new(io.kind(), io.to_string()),
        },
        None => TreeError::Ignore { path, source: err },
    }
}

fn found_entry(
    rel: String,
    abs: PathBuf,
    file_type: std::fs::FileType,
) -> Result<Found, TreeError> {
    let kind = if file_type.is_dir() {
        FoundKind::Dir
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(&abs).at(&abs)?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| TreeError::NonUtf8 { path: abs.clone() })?;
        FoundKind::Symlink { target }
    } else if file_type.is_file() {
        // Stat-ed later, in parallel with the others.
        FoundKind::File
    } else {
        return Err(TreeError::Special { path: abs });
    };
    Ok(Found { rel, abs, kind })
}

/// Hashes the files of `found` (in parallel, see [`hash_files`]) and
/// assembles the tree.
fn hash_found(found: Vec<Found>, cache: Option<(&StatCache, i64)>) -> Result<Tree, TreeError> {
    let files: Vec<&Path> = found
        .iter()
        .filter(|f| matches!(f.kind, FoundKind::File))
        .map(|f| f.abs.as_path())
        .collect();
    let mut contents = hash_files(&files, cache)?.into_iter();
    let entries = found
        .into_iter()
        .map(|f| {
            let kind = match f.kind {
                FoundKind::Dir => EntryKind::Dir,
                FoundKind::Symlink { target } => EntryKind::Symlink { target },
                FoundKind::Hashed(c) => EntryKind::File {
                    executable: c.executable,
                    size: c.size,
                    content: c.content,
                },
                FoundKind::File => {
                    let c = contents.next().expect("kiln bug: one content per file");
                    EntryKind::File {
                        executable: c.executable,
                        size: c.size,
                        content: c.content,
                    }
                }
            };
            Entry { path: f.rel, kind }
        })
        .collect();
    Ok(Tree { entries })
}
