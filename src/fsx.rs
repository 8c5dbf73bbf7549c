//! Filesystem helpers shared by every module that writes: a file or a
//! directory replaced all at once, and the path attached to an IO error.
//! Does IO.
//!
//! [`PathError`] is an IO error with its path; each module's error enum
//! turns it into its own `Io { path, source }` variant (`From`), so
//! `.at(path)?` reads the same everywhere ([`IoContext`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An IO error and the path it happened at.
#[derive(Debug, thiserror::Error)]
#[error("I/O failed at `{}`", path.display())]
pub struct PathError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Attaches a path to an IO error.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, PathError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, PathError> {
        self.map_err(|source| PathError {
            path: path.as_ref().to_owned(),
            source,
        })
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A file that replaces `path` all at once: written as a temp file
/// (`.tmp-*`), then synced and renamed over `path` by [`commit`]. Readers
/// see the old file or the new one, never a prefix; one dropped before its
/// commit is deleted.
///
/// [`commit`]: AtomicFile::commit
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// A temp file beside `path`, in the directory it will be renamed into.
    pub fn create(path: &Path) -> Result<Self, PathError> {
        Self::create_in(path, parent_of(path), ".tmp-")
    }

    /// A temp file in `tmp_dir`, which must be on `path`'s filesystem, its
    /// name starting with `prefix` (what a gc knows leftovers by).
    pub fn create_in(path: &Path, tmp_dir: &Path, prefix: &str) -> Result<Self, PathError> {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(tmp_dir)
            .at(tmp_dir)?;
        Ok(AtomicFile {
            tmp,
            path: path.to_owned(),
        })
    }

    /// The temp file, to write through a buffer or set its mode (a temp
    /// file is created 0600).
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Where the bytes are until the commit, for errors while writing.
    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the bytes to disk, then renames the file over `path`: after a
    /// crash `path` holds the old file or the whole new one.
    pub fn commit(self) -> Result<(), PathError> {
        self.tmp.as_file().sync_all().at(self.tmp.path())?;
        self.commit_unsynced()
    }

    /// Renames the file over `path` without syncing it first: for large
    /// outputs (a layer, an exported archive) where a sync would cost about
    /// as much as the write. Readers still never see a prefix; after a
    /// crash `path` may hold a file whose bytes never reached the disk.
    pub fn commit_unsynced(self) -> Result<(), PathError> {
        // Over an existing file, swap the two and let the drop delete the
        // old one: ext4 (auto_da_alloc) starts writing back a file renamed
        // over another, the very cost an unsynced commit means to skip
        // (it made re-exporting an archive half again as slow).
        let existing = std::fs::symlink_metadata(&self.path);
        if existing.is_ok_and(|m| !m.is_dir()) {
            let cwd = rustix::fs::CWD;
            let swap = rustix::fs::RenameFlags::EXCHANGE;
            if rustix::fs::renameat_with(cwd, self.tmp.path(), cwd, &self.path, swap).is_ok() {
                return Ok(());
            }
        }
        self.tmp.persist(&self.path).map_err(|e| PathError {
            path: self.path,
            source: e.error,
        })?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes `bytes` to `path` all at once or not at all (an [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PathError> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).at(file.tmp_path())?;
    file.commit()
}

/// Makes `dir` all at once: `fill` writes a temp directory beside it
/// (`.kiln-<what>-*`), which takes `dir`'s place in one rename: swapped
/// with an existing `dir` (which is then deleted), or renamed to a free
/// name. `dir` is never half written, never missing once made, and keeps
/// nothing of what it held before; writers racing for one `dir` each
/// leave a whole one (the last).
pub fn replace_dir<E: From<PathError>>(
    dir: &Path,
    what: &str,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent).at(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".kiln-{what}-"))
        .tempdir_in(parent)
        .at(parent)?;
    fill(tmp.path())?;
    let failed = |e: Errno| PathError {
        path: dir.to_owned(),
        source: e.into(),
    };
    loop {
        // `tmp` then holds what `dir` held, deleted when it drops.
        match renameat_with(CWD, tmp.path(), CWD, dir, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(Errno::NOENT) => {}
            // A filesystem without the exchange: aside, then in.
            Err(Errno::INVAL) => return replace_in_two(dir, what, tmp),
            Err(e) => return Err(failed(e).into()),
        }
        match renameat_with(CWD, tmp.path(), CWD, dir, RenameFlags::NOREPLACE) {
            Ok(()) => {
                // The rename took the directory: nothing left to delete.
                let _ = tmp.keep();
                return Ok(());
            }
            // Another writer's came first: swap with it.
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(failed(e).into()),
        }
    }
}

/// [`replace_dir`]'s last step in two renames: `dir` moved aside (and
/// deleted), `tmp` renamed in.
fn replace_in_two<E: From<PathError>>(
    dir: &Path,
    what: &str,
    tmp: tempfile::TempDir,
) -> Result<(), E> {
    let parent = parent_of(dir);
    let old = tempfile::Builder::new()
        .prefix(&format!(".kiln-{what}-old-"))
        .tempdir_in(parent)
        .at(parent)?;
    if dir.exists() {
        std::fs::rename(dir, old.path().join("old")).at(dir)?;
    }
    std::fs::rename(tmp.path(), dir).at(dir)?;
    let _ = tmp.keep();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_atomic_file_leaves_the_old_one_and_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, "old").expect("write");
        let mut f = AtomicFile::create(&path).expect("create");
        f.write_all(b"new").expect("write");
        drop(f);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
        write_atomic(&path, b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

    #[test]
    fn an_unsynced_commit_replaces_a_file_or_symlink_but_never_a_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let commit = |path: &Path| {
            let mut f = AtomicFile::create(path).expect("create");
            f.write_all(b"new").expect("write");
            f.commit_unsynced()
        };
        let file = dir.path().join("f");
        std::fs::write(&file, "old").expect("write");
        commit(&file).expect("over a file");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "new");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        commit(&link).expect("over a symlink");
        assert!(std::fs::symlink_metadata(&link).expect("stat").is_file());
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("kept"), "").expect("write");
        assert!(commit(&sub).is_err(), "a directory is not replaced");
        assert!(sub.join("kept").exists());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["d", "f", "l"], "no temp file left");
    }

    #[test]
    fn replace_dir_keeps_nothing_of_the_old_dir_and_the_old_dir_on_failure() {
        let top = tempfile::tempdir().expect("temp dir");
        let dir = top.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("stale"), "").expect("write");
        let failed: Result<(), PathError> = replace_dir(&dir, "t", |tmp| {
            std::fs::write(tmp.join("half"), "").at(tmp)?;
            Err(io::Error::other("full disk")).at(tmp)
        });
        assert!(failed.is_err());
        assert!(dir.join("stale").exists());
        replace_dir::<PathError>(&dir, "t", |tmp| std::fs::write(tmp.join("new"), "").at(tmp))
            .expect("replace");
        assert!(dir.join("new").exists() && !dir.join("stale").exists());
        let names: Vec<_> = std::fs::read_dir(top.path()).expect("list").collect();
        assert_eq!(names.len(), 1, "no temp dir left: {names:?}");
    }
}
