//! Blobs this process wrote and hashed itself: while it runs, their digest
//! need not be checked again before they are read (an export re-hashed a
//! layer it had packed a moment before: a third of a cold export's serial
//! time). A file is known by its inode, size and modification time, so a
//! file replaced or written to since (by anyone) is checked as any other.
//! No IO: callers pass the metadata of a file they hold open.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Mutex, PoisonError};

use super::Digest;

/// A file and the version of its bytes, as `stat` shows them: device,
/// inode, size and modification time in nanoseconds. Not the change time:
/// renaming or linking a blob changes it, not its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

static FRESH: Mutex<Option<HashMap<FileId, Digest>>> = Mutex::new(None);

/// Records that the file `meta` describes was written by this process and
/// hashes to `digest`.
pub fn remember(meta: &Metadata, digest: Digest) {
    let mut fresh = FRESH.lock().unwrap_or_else(PoisonError::into_inner);
    fresh
        .get_or_insert_with(HashMap::new)
        .insert(FileId::of(meta), digest);
}

/// Whether the file `meta` describes is one [`remember`] recorded with
/// `digest`, unchanged since.
pub fn is_fresh(meta: &Metadata, digest: &Digest) -> bool {
    let fresh = FRESH.lock().unwrap_or_else(PoisonError::into_inner);
    fresh
        .as_ref()
        .and_then(|f| f.get(&FileId::of(meta)))
        .is_some_and(|d| d == digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_file_is_fresh_with_its_digest_until_it_is_written_to() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("blob");
        std::fs::write(&path, b"layer").expect("write");
        let meta = std::fs::metadata(&path).expect("stat");
        let digest = Digest::of(b"layer");
        assert!(!is_fresh(&meta, &digest), "not remembered yet");
        remember(&meta, digest);
        assert!(is_fresh(&std::fs::metadata(&path).expect("stat"), &digest));
        assert!(!is_fresh(&meta, &Digest::of(b"other")), "another digest");
        // Appended to (a new size and time), or replaced (a new inode).
        std::thread::sleep(std::time::Duration::from_millis(10));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"!").expect("append");
        assert!(!is_fresh(&std::fs::metadata(&path).expect("stat"), &digest));
        let other = dir.path().join("other");
        std::fs::write(&other, b"layer").expect("write");
        std::fs::rename(&other, &path).expect("replace");
        assert!(!is_fresh(&std::fs::metadata(&path).expect("stat"), &digest));
    }
}
