//! Materializing trees: copying scanned sources into a build directory, and
//! making store entries read-only (and writable again, to delete them).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::FileType;

use super::at::{self, Visit};
use super::{EntryKind, Tree, TreeError};
use crate::fsx::IoContext;

/// Copies exactly the entries of `tree` (as scanned under `context`) to `dest`,
/// writable, keeping executable bits and symlinks.
///
/// Directories are made first (the tree lists parents before children), then
/// files and symlinks in parallel.
pub fn copy_tree(tree: &Tree, context: &Path, dest: &Path) -> Result<(), TreeError> {
    std::fs::create_dir_all(dest).map_err(TreeError::write(dest))?;
    for entry in &tree.entries {
        if entry.kind == EntryKind::Dir {
            let to = dest.join(&entry.path);
            match std::fs::create_dir(&to) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(TreeError::Write {
                        path: to,
                        source: e,
                    });
                }
                _ => {}
            }
        }
    }
    tree.entries.par_iter().try_for_each(|entry| {
        let to = dest.join(&entry.path);
        match &entry.kind {
            EntryKind::Dir => Ok(()),
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &to).map_err(TreeError::write(to))
            }
            EntryKind::File {
                executable,
                content,
                ..
            } => {
                let from = context.join(&entry.path);
                std::fs::copy(&from, &to).at(&from)?;
                // The key was computed from the file as scanned; a file edited
                // since must not be built (and stored) under that key.
                let mut copied = blake3::Hasher::new();
                copied.update_mmap(&to).map_err(TreeError::write(&to))?;
                if copied.finalize().as_bytes() != content {
                    return Err(TreeError::Changed { path: from });
                }
                // The source may be a read-only store entry: the copy must be writable.
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                    .map_err(TreeError::write(to))
            }
        }
    })
}

/// Removes write permission from everything under `dir` (store entries are
/// read-only), and the reverse for deleting them.
///
/// Read-only: files become 0444 (0555 if executable), directories 0555,
/// and everything belongs to this process's effective uid and gid (when
/// kiln runs as root, a build's files belong to the sandbox's unprivileged
/// id until they are committed: that id must not be able to `chmod` them
/// back).
/// Writable: the owner's write bit is added back (and `rwx` on directories,
/// before they are read: a build script may have left one `chmod 000`).
/// Symlinks are left alone (`chmod` would follow them out of the tree). The
/// walk is by descriptor ([`at`](super::at)), so depth is no limit.
pub fn set_readonly(dir: &Path, readonly: bool) -> Result<(), TreeError> {
    let dir_mode = |mode: u32| if readonly { 0o555 } else { mode | 0o700 };
    let file_mode = |mode: u32| match (readonly, mode & 0o111 != 0) {
        (true, true) => 0o555,
        (true, false) => 0o444,
        (false, _) => mode | 0o200,
    };
    let root_mode = std::fs::symlink_metadata(dir).at(dir)?.permissions().mode() & 0o7777;
    if !readonly {
        // Before the walk reads it.
        set_mode(dir, root_mode, dir_mode(root_mode))?;
    }
    at::walk(dir, &mut |v| {
        let failed = |rel: &[u8]| TreeError::write(at::display(dir, rel));
        match v {
            Visit::Dir {
                parent,
                name,
                rel,
                stat,
            } if !readonly => {
                let mode = at::mode_of(stat);
                if dir_mode(mode) != mode {
                    at::chmod_at(parent, name, dir_mode(mode)).map_err(failed(rel))?;
                }
            }
            Visit::Dir {
                parent,
                name,
                rel,
                stat,
            } => at::chown_at(parent, name, stat, at::own_ids()).map_err(failed(rel))?,
            Visit::Leaf {
                parent,
                name,
                rel,
                stat,
            } => {
                if readonly {
                    at::chown_at(parent, name, stat, at::own_ids()).map_err(failed(rel))?;
                }
                let mode = at::mode_of(stat);
                let is_file = rustix::fs::FileType::from_raw_mode(stat.st_mode).is_file();
                if is_file && file_mode(mode) != mode {
                    at::chmod_at(parent, name, file_mode(mode)).map_err(failed(rel))?;
                }
            }
            // Directories last, once their children are done: a read-only
            // directory then never stands in the walk's way.
            Visit::Left { parent, name, rel } if readonly => {
                at::chmod_at(parent, name, 0o555).map_err(failed(rel))?;
            }
            _ => {}
        }
        Ok(true)
    })?;
    if readonly {
        let (uid, gid) = at::own_ids();
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(TreeError::write(dir))?;
        set_mode(dir, root_mode, dir_mode(root_mode))?;
    }
    Ok(())
}

fn set_mode(path: &Path, old: u32, new: u32) -> Result<(), TreeError> {
    if old == new {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))
        .map_err(TreeError::write(path))
}

/// What under `dir` is not as [`set_readonly`] left it, as (path relative to
/// `dir`, what is wrong): a mode other than 0444/0555 for a file or 0555 for
/// a directory (a setuid bit, a write bit), or an owner other than this
/// process's effective ids. The output hash covers content and the
/// executable bit only: this is how `kiln store verify` sees the rest.
pub fn not_read_only(dir: &Path) -> Result<Vec<(String, String)>, TreeError> {
    let owner = at::own_ids();
    let check = |rel: &[u8], kind: FileType, mode: u32, ids: (u32, u32)| {
        let expected: &[u32] = match kind {
            FileType::Directory => &[0o555],
            FileType::RegularFile => &[0o444, 0o555],
            _ => &[mode],
        };
        let mode_ok = expected.contains(&mode);
        let path = || {
            let rel = String::from_utf8_lossy(rel);
            if rel.is_empty() {
                ".".into()
            } else {
                rel.into_owned()
            }
        };
        match (mode_ok, ids == owner) {
            (true, true) => None,
            (false, _) => Some((path(), format!("mode {mode:04o}"))),
            (true, false) => Some((path(), format!("owner {}:{}", ids.0, ids.1))),
        }
    };
    let meta = std::fs::symlink_metadata(dir).at(dir)?;
    let root_ids = (meta.uid(), meta.gid());
    let mut found: Vec<_> = check(b"", FileType::Directory, meta.mode() & 0o7777, root_ids)
        .into_iter()
        .collect();
    at::walk(dir, &mut |v| {
        if let Visit::Dir { rel, stat, .. } | Visit::Leaf { rel, stat, .. } = v {
            let kind = FileType::from_raw_mode(stat.st_mode);
            found.extend(check(
                rel,
                kind,
                at::mode_of(stat),
                (stat.st_uid, stat.st_gid),
            ));
        }
        Ok(true)
    })?;
    Ok(found)
}

/// Gives everything under `dir`, and `dir`, to `ids` (uid, gid), symlinks
/// themselves rather than their targets; by descriptor, so depth is no
/// limit. `dir` goes last: a tree whose top has the new owner was given
/// whole.
pub fn give_tree(dir: &Path, ids: (u32, u32)) -> Result<(), TreeError> {
    at::walk(dir, &mut |v| {
        if let Visit::Dir {
            parent,
            name,
            rel,
            stat,
        }
        | Visit::Leaf {
            parent,
            name,
            rel,
            stat,
        } = v
        {
            let failed = TreeError::write(at::display(dir, rel));
            at::chown_at(parent, name, stat, ids).map_err(failed)?;
        }
        Ok(true)
    })?;
    std::os::unix::fs::lchown(dir, Some(ids.0), Some(ids.1)).map_err(TreeError::write(dir))
}
