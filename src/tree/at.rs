//! Walking a tree by directory descriptors (`openat` and friends), never by
//! full path, so that a tree deeper than `PATH_MAX` (a stage can make one in
//! `$out` with `cd d; mkdir d` in a loop) is walked, hashed, made read-only
//! and deleted like any other (issue 9 item 8).
//!
//! Only one directory is open at a time: the walk reads a directory's names,
//! goes down by `openat(dir, name, O_NOFOLLOW)` and back up by `..`,
//! checking (device, inode) each way, so depth costs no descriptors and a
//! directory swapped for another mid-walk is an error, not a detour. Does
//! filesystem IO.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};

use super::TreeError;
use crate::fsx::IoContext;

/// One step of [`walk`]. `rel` is the entry's path under the root, `/`-separated.
pub(super) enum Visit<'a> {
    /// A directory, before its children: return `false` to skip them.
    Dir {
        parent: BorrowedFd<'a>,
        name: &'a OsStr,
        rel: &'a [u8],
        stat: &'a Stat,
    },
    /// Anything but a directory (symlinks are never followed).
    Leaf {
        parent: BorrowedFd<'a>,
        name: &'a OsStr,
        rel: &'a [u8],
        stat: &'a Stat,
    },
    /// A directory after its children, seen from its parent again.
    Left {
        parent: BorrowedFd<'a>,
        name: &'a OsStr,
        rel: &'a [u8],
    },
}

/// A directory being walked: the names not visited yet, and who it is.
struct Level {
    name: OsString,
    pending: Vec<OsString>,
    id: (u64, u64),
    /// Length of `rel` above this directory (where to cut when leaving it).
    rel_above: usize,
}

/// `root/rel` for messages: the path kiln could not use, however long.
pub(super) fn display(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Calls `visit` for every entry under `root` (not `root` itself), parents
/// before children; in no particular order among siblings.
pub(super) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(Visit<'_>) -> Result<bool, TreeError>,
) -> Result<(), TreeError> {
    let err = |rel: &[u8]| TreeError::io(display(root, rel));
    let mut cur = rfs::open(root, dir_flags(), Mode::empty()).map_err(|e| err(b"")(e.into()))?;
    let mut stack = vec![Level {
        name: OsString::new(),
        pending: names(&cur).map_err(err(b""))?,
        id: id(&rfs::fstat(&cur).map_err(|e| err(b"")(e.into()))?),
        rel_above: 0,
    }];
    let mut rel: Vec<u8> = Vec::new();
    loop {
        let top = stack
            .last_mut()
            .expect("kiln bug: the walk's stack holds the root");
        let Some(name) = top.pending.pop() else {
            let done = stack
                .pop()
                .expect("kiln bug: popped a level that was there");
            let Some(parent) = stack.last() else {
                return Ok(());
            };
            let up = rfs::openat(&cur, "..", dir_flags(), Mode::empty())
                .map_err(|e| err(&rel)(e.into()))?;
            check_same(&up, parent.id).map_err(err(&rel))?;
            cur = up;
            let left = rel.clone();
            rel.truncate(done.rel_above);
            visit(Visit::Left {
                parent: cur.as_fd(),
                name: &done.name,
                rel: &left,
            })?;
            continue;
        };
        let rel_above = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let stat =
            rfs::statat(&cur, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| err(&rel)(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            visit(Visit::Leaf {
                parent: cur.as_fd(),
                name: &name,
                rel: &rel,
                stat: &stat,
            })?;
            rel.truncate(rel_above);
            continue;
        }
        let descend = visit(Visit::Dir {
            parent: cur.as_fd(),
            name: &name,
            rel: &rel,
            stat: &stat,
        })?;
        if !descend {
            rel.truncate(rel_above);
            continue;
        }
        let down = rfs::openat(&cur, &name, dir_flags(), Mode::empty())
            .map_err(|e| err(&rel)(e.into()))?;
        check_same(&down, id(&stat)).map_err(err(&rel))?;
        let pending = names(&down).map_err(err(&rel))?;
        cur = down;
        stack.push(Level {
            name,
            pending,
            id: id(&stat),
            rel_above,
        });
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn id(stat: &Stat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

/// The directory just opened must be the one the walk meant.
fn check_same(fd: &OwnedFd, expected: (u64, u64)) -> io::Result<()> {
    if id(&rfs::fstat(fd)?) == expected {
        return Ok(());
    }
    Err(io::Error::other(
        "the directory was moved while kiln walked it",
    ))
}

/// The names in the directory `fd` (without `.` and `..`).
fn names(fd: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for entry in rfs::Dir::read_from(fd)? {
        let bytes = entry?.file_name().to_bytes().to_vec();
        if bytes != b"." && bytes != b".." {
            out.push(OsString::from_vec(bytes));
        }
    }
    Ok(out)
}

/// The permission bits of `stat`.
pub(super) fn mode_of(stat: &Stat) -> u32 {
    stat.st_mode & 0o7777
}

/// `chmod` of `name` in `parent` (never following a symlink: callers only
/// pass files and directories).
pub(super) fn chmod_at(parent: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    Ok(rfs::chmodat(
        parent,
        name,
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// Gives `name` (never followed, if a symlink) to `ids` (uid, gid), if
/// `stat` says it belongs to someone else.
pub(super) fn chown_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    stat: &Stat,
    (uid, gid): (u32, u32),
) -> io::Result<()> {
    if stat.st_uid == uid && stat.st_gid == gid {
        return Ok(());
    }
    Ok(rfs::chownat(
        parent,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// The effective uid and gid of this process: the store's owner.
pub(super) fn own_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// The bytes the tree under `root` takes on disk (as `du` counts them:
/// allocated blocks, `root` itself and every directory included), never
/// following a symlink, at any depth.
pub fn disk_usage(root: &Path) -> Result<u64, TreeError> {
    let top = std::fs::symlink_metadata(root).at(root)?;
    let mut total = std::os::unix::fs::MetadataExt::blocks(&top) * 512;
    walk(root, &mut |v| {
        if let Visit::Dir { stat, .. } | Visit::Leaf { stat, .. } = v {
            total += u64::try_from(stat.st_blocks).unwrap_or(0) * 512;
        }
        Ok(true)
    })?;
    Ok(total)
}

/// Deletes `path` and everything under it, whatever its depth and however
/// read-only a build left it (each directory gets `u+rwx` before it is
/// read). A missing `path` is an error of kind `NotFound`.
pub fn remove_tree(path: &Path) -> Result<(), TreeError> {
    let meta = std::fs::symlink_metadata(path).at(path)?;
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(TreeError::write(path));
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o700 != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700))
            .map_err(TreeError::write(path))?;
    }
    walk(path, &mut |v| {
        let gone = |rel: &[u8]| TreeError::write(display(path, rel));
        match v {
            Visit::Dir {
                parent,
                name,
                rel,
                stat,
            } => {
                let mode = mode_of(stat);
                if mode & 0o700 != 0o700 {
                    chmod_at(parent, name, mode | 0o700).map_err(gone(rel))?;
                }
                Ok(true)
            }
            Visit::Leaf {
                parent, name, rel, ..
            } => {
                rfs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| gone(rel)(e.into()))?;
                Ok(true)
            }
            Visit::Left { parent, name, rel } => {
                rfs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| gone(rel)(e.into()))?;
                Ok(true)
            }
        }
    })?;
    std::fs::remove_dir(path).map_err(TreeError::write(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` nested `d` directories under `root`, made by descriptor (a
    /// full path would pass PATH_MAX), the deepest holding a read-only file
    /// in a read-only directory.
    pub(crate) fn deep_tree(root: &Path, depth: usize) {
        let mut cur = rfs::open(root, dir_flags(), Mode::empty()).unwrap();
        for _ in 0..depth {
            rfs::mkdirat(&cur, "d", Mode::from_raw_mode(0o755)).unwrap();
            cur = rfs::openat(&cur, "d", dir_flags(), Mode::empty()).unwrap();
        }
        let file = rfs::openat(
            &cur,
            "f",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o444),
        )
        .unwrap();
        rustix::io::write(&file, b"deep").unwrap();
        rfs::fchmod(&cur, Mode::from_raw_mode(0o555)).unwrap();
    }

    #[test]
    fn a_tree_deeper_than_path_max_is_walked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir(&root).unwrap();
        deep_tree(&root, 2500);
        let (mut dirs, mut leaves, mut left) = (0, 0, 0);
        walk(&root, &mut |v| {
            match v {
                Visit::Dir { .. } => dirs += 1,
                Visit::Leaf { rel, .. } => {
                    leaves += 1;
                    assert_eq!(rel.len(), 2500 * 2 + 1);
                }
                Visit::Left { .. } => left += 1,
            }
            Ok(true)
        })
        .unwrap();
        assert_eq!((dirs, leaves, left), (2500, 1, 2500));
        remove_tree(&root).unwrap();
        assert!(!root.exists());
    }
}
