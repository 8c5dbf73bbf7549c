//! Hashing one file's bytes with blake3.
//!
//! Small files are read in one call; big ones are memory-mapped and hashed on
//! several threads (what `b3sum` does), since a single big file would
//! otherwise keep one core busy while the others wait.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rayon::prelude::*;

use super::statcache::FileStat;
use super::{StatCache, TreeError};
use crate::fsx::IoContext;

/// From this size on, mmap and a multi-threaded hash beat a plain read.
const BIG_FILE: u64 = 128 * 1024;

/// What a scan learns about one regular file.
pub(super) struct FileContent {
    pub executable: bool,
    pub size: u64,
    pub content: [u8; 32],
}

/// Below this many files a scan runs on the calling thread: a no-op build of
/// a small project starts no thread pool.
const PARALLEL_FROM: usize = 64;

/// Stats and hashes `files` in parallel, skipping the reads `cache` can
/// answer; `cache` comes with the instant the scan started (see
/// [`StatCache`] on racy entries).
pub(super) fn hash_files<'a>(
    files: &[&'a Path],
    cache: Option<(&StatCache, i64)>,
) -> Result<Vec<FileContent>, TreeError> {
    // On a warm run the stats are nearly all the work: spread them too,
    // unless there are so few that starting threads costs more.
    let stat = |path: &&'a Path| -> Result<(&'a Path, FileStat, bool), TreeError> {
        let path: &'a Path = path;
        let meta = std::fs::symlink_metadata(path).at(path)?;
        if !meta.is_file() {
            // Replaced since the walk saw a file there.
            return Err(TreeError::Special {
                path: path.to_path_buf(),
            });
        }
        let executable = meta.permissions().mode() & 0o111 != 0;
        Ok((path, FileStat::of(&meta), executable))
    };
    let stats: Vec<(&Path, FileStat, bool)> = match files.len() < PARALLEL_FROM {
        true => files.iter().map(stat).collect::<Result<_, _>>()?,
        false => files.par_iter().map(stat).collect::<Result<_, _>>()?,
    };
    let known = match cache {
        Some((cache, _)) => {
            let keys: Vec<_> = stats.iter().map(|&(p, s, _)| (p, s)).collect();
            cache.lookup(&keys)
        }
        None => vec![None; stats.len()],
    };
    let content =
        |(&(path, stat, executable), known): (&(&Path, FileStat, bool), Option<[u8; 32]>)| {
            let (size, content, fresh) = match known {
                Some(content) => (stat.size, content, false),
                None => hash_file(path, stat.size).map(|(size, c)| (size, c, true))?,
            };
            Ok::<_, TreeError>((
                FileContent {
                    executable,
                    size,
                    content,
                },
                fresh,
            ))
        };
    let contents: Vec<(FileContent, bool)> = match stats.len() < PARALLEL_FROM {
        true => stats
            .iter()
            .zip(known)
            .map(content)
            .collect::<Result<_, _>>()?,
        false => (stats.par_iter().zip(known))
            .map(content)
            .collect::<Result<_, _>>()?,
    };
    if let Some((cache, scan_start)) = cache {
        // A size other than the stat's means the file changed while read.
        let fresh: Vec<_> = (stats.iter().zip(&contents))
            .filter(|((_, stat, _), (c, fresh))| *fresh && stat.size == c.size)
            .map(|(&(path, stat, _), (c, _))| (path, stat, c.content))
            .collect();
        cache.record(&fresh, scan_start);
    }
    Ok(contents.into_iter().map(|(c, _)| c).collect())
}

/// Stats and hashes the file `name` of the directory `parent`: for a file
/// whose path is too long to open (`path` is only for messages).
pub(super) fn hash_at(
    parent: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    path: &Path,
) -> Result<FileContent, TreeError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parent, name, flags, Mode::empty())
        .map_err(|e| TreeError::io(path)(e.into()))?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().at(path)?;
    if !meta.is_file() {
        return Err(TreeError::Special {
            path: path.to_path_buf(),
        });
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file).at(path)?;
    Ok(FileContent {
        executable: meta.permissions().mode() & 0o111 != 0,
        size: hasher.count(),
        content: *hasher.finalize().as_bytes(),
    })
}

/// The size and blake3 of the file at `path`; `size_hint` (from `stat`) only
/// picks the strategy, the size returned is what was actually read.
fn hash_file(path: &Path, size_hint: u64) -> Result<(u64, [u8; 32]), TreeError> {
    let mut hasher = blake3::Hasher::new();
    if size_hint >= BIG_FILE {
        hasher.update_mmap_rayon(path).at(path)?;
    } else {
        let data = std::fs::read(path).at(path)?;
        hasher.update(&data);
    }
    Ok((hasher.count(), *hasher.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_files_hash_like_b3sum() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0, 100, BIG_FILE as usize + 1, 3 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).expect("write");
            let (size, hash) = hash_file(&path, len as u64).expect("hash");
            assert_eq!(size, len as u64);
            assert_eq!(&hash, blake3::hash(&data).as_bytes());
        }
    }
}
