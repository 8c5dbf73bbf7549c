//! Materializing trees: copying scanned sources into a build directory, and
//! making store entries read-only (and writable again, to delete them).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rayon::prelude::*;

use super::{EntryKind, Tree, TreeError};

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
                std::fs::copy(&from, &to).map_err(|source| TreeError::Io {
                    path: from.clone(),
                    source,
                })?;
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
/// Read-only: files become 0444 (0555 if executable), directories 0555.
/// Writable: the owner's write bit is added back. Symlinks are left alone
/// (`chmod` would follow them out of the tree).
pub fn set_readonly(dir: &Path, readonly: bool) -> Result<(), TreeError> {
    if !readonly {
        return unlock(dir);
    }
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .follow_links(false)
        .build();
    let mut dirs = Vec::new();
    for item in walk {
        let entry = item.map_err(|err| match err.io_error() {
            Some(io) => TreeError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(io.kind(), io.to_string()),
            },
            None => TreeError::Ignore {
                path: dir.to_path_buf(),
                source: err,
            },
        })?;
        let file_type = entry
            .file_type()
            .expect("kiln bug: only stdin has no file type");
        if file_type.is_dir() {
            dirs.push(entry.into_path());
        } else if !file_type.is_symlink() {
            chmod(entry.path(), readonly, false)?;
        }
    }
    // Directories last: a read-only directory still lets its children be chmod-ed,
    // but doing them after the files keeps the walk from ever depending on it.
    for d in &dirs {
        chmod(d, readonly, true)?;
    }
    Ok(())
}

/// Makes everything under `path` deletable. Each directory gets `u+rwx`
/// before it is read: a build script may have left one unreadable
/// (`chmod 000`), and a walk that read first could never get back in.
fn unlock(path: &Path) -> Result<(), TreeError> {
    let meta = std::fs::symlink_metadata(path).map_err(TreeError::io(path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_symlink() {
        return Ok(());
    }
    if !meta.is_dir() {
        return set_mode(path, mode | 0o200);
    }
    set_mode(path, mode | 0o700)?;
    for child in std::fs::read_dir(path).map_err(TreeError::io(path))? {
        unlock(&child.map_err(TreeError::io(path))?.path())?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), TreeError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(TreeError::io(path))
}

fn chmod(path: &Path, readonly: bool, is_dir: bool) -> Result<(), TreeError> {
    let meta = std::fs::symlink_metadata(path).map_err(TreeError::io(path))?;
    let mode = meta.permissions().mode() & 0o7777;
    let new = match (readonly, is_dir || mode & 0o111 != 0) {
        (true, true) => 0o555,
        (true, false) => 0o444,
        (false, _) => mode | 0o200,
    };
    if new == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))
        .map_err(TreeError::write(path))
}
