//! The stat cache: a file's content hash, remembered by its `stat`.
//!
//! A no-op `kiln build` must not read every source file again, so each hashed
//! file is remembered by (absolute path → size, mtime, ctime, inode, content
//! hash). A file whose `stat` still matches is not read. One cache file serves
//! every project of a user (paths are absolute); entries not used for
//! [`KEEP_DAYS`] days are dropped when the file is next written.
//!
//! Racy entries, as git calls them: file timestamps come from a coarse clock,
//! so a file written twice within one tick keeps its mtime. An entry is only
//! stored when the file's mtime is older than the scan's start by
//! [`RACY_MARGIN_NS`]; a file modified more recently is hashed again on every
//! scan until it is old enough. (git instead compares with the index file's
//! mtime; comparing with the scan's start is the same rule, measured from the
//! moment the `stat` was taken.)
//!
//! On disk (one file, rewritten whole, atomically by temp file + rename, so
//! concurrent kiln processes never see a torn file; the last writer wins):
//!
//! ```text
//! "kiln-statcache-v1"                  17 bytes: format and version
//! count                                u64 LE
//! count × entry:
//!     path length u32 LE, path bytes
//!     size u64, mtime ns i64, ctime ns i64, inode u64   (LE)
//!     last used, days since 1970 u32 LE
//!     content blake3                   32 bytes
//! blake3 of all the bytes above        32 bytes (a torn or corrupt file loads empty)
//! ```

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::TreeError;

const MAGIC: &[u8] = b"kiln-statcache-v1";
/// Wide enough for filesystems with one- or two-second timestamps.
const RACY_MARGIN_NS: i64 = 2_000_000_000;
const KEEP_DAYS: u32 = 30;
const ENTRY_FIXED: usize = 4 + 8 * 4 + 4 + 32;

/// What must be unchanged for a file's cached hash to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl FileStat {
    pub fn of(meta: &Metadata) -> FileStat {
        FileStat {
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    stat: FileStat,
    /// Days since 1970 when this entry was last hit or stored.
    day: u32,
    content: [u8; 32],
}

#[derive(Default)]
struct State {
    entries: HashMap<Box<[u8]>, Cached>,
    dirty: bool,
}

/// A persistent stat cache: (path, size, mtime, inode, ctime) → content hash.
/// Files modified less than two seconds before a scan began are re-hashed
/// (racy, as git does; see the module doc). Shared by the threads of a scan,
/// and by concurrent scans.
pub struct StatCache {
    file: PathBuf,
    state: Mutex<State>,
    /// Files whose contents were read: what a warm scan must keep at zero.
    hashed: AtomicU64,
}

impl StatCache {
    /// Loads the cache file (missing or corrupt: an empty cache).
    pub fn load(file: PathBuf) -> StatCache {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        let state = Mutex::new(State {
            entries,
            dirty: false,
        });
        StatCache {
            file,
            state,
            hashed: AtomicU64::new(0),
        }
    }

    /// Writes the cache back (atomically) if anything changed.
    pub fn save(&self) -> Result<(), TreeError> {
        let mut state = self.lock();
        if !state.dirty {
            return Ok(());
        }
        let today = today();
        state
            .entries
            .retain(|_, c| c.day.saturating_add(KEEP_DAYS) >= today);
        let bytes = encode(&state.entries);
        if let Some(dir) = self.file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(TreeError::write(dir))?;
        }
        crate::fsx::write_atomic(&self.file, &bytes).map_err(|e| TreeError::Write {
            path: e.path,
            source: e.source,
        })?;
        state.dirty = false;
        Ok(())
    }

    /// The cached content hash of each file whose stat still matches.
    pub(super) fn lookup(&self, files: &[(&Path, FileStat)]) -> Vec<Option<[u8; 32]>> {
        let today = today();
        let mut state = self.lock();
        let State { entries, dirty } = &mut *state;
        let hit = |(path, stat): &(&Path, FileStat)| {
            let cached = entries.get_mut(path.as_os_str().as_bytes())?;
            if cached.stat != *stat {
                return None;
            }
            if cached.day < today {
                // Refreshed at most once a day, so a no-op run rarely writes.
                cached.day = today;
                *dirty = true;
            }
            Some(cached.content)
        };
        files.iter().map(hit).collect()
    }

    /// Remembers freshly hashed files, except racy ones (see the module doc).
    pub(super) fn record(&self, hashed: &[(&Path, FileStat, [u8; 32])], scan_start_ns: i64) {
        if hashed.is_empty() {
            return;
        }
        self.hashed
            .fetch_add(hashed.len() as u64, Ordering::Relaxed);
        let day = today();
        let mut state = self.lock();
        for (path, stat, content) in hashed {
            let key = path.as_os_str().as_bytes();
            if stat.mtime_ns >= scan_start_ns - RACY_MARGIN_NS {
                state.dirty |= state.entries.remove(key).is_some();
                continue;
            }
            let cached = Cached {
                stat: *stat,
                day,
                content: *content,
            };
            state.entries.insert(key.into(), cached);
            state.dirty = true;
        }
    }

    /// How many files this cache's scans had to read.
    #[cfg(test)]
    pub(super) fn files_hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave a half-updated entry: each is one insert.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Nanoseconds since 1970, the unit of [`FileStat`]'s times.
pub(super) fn now_ns() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn today() -> u32 {
    (now_ns() / 1_000_000_000 / 86_400) as u32
}

fn encode(entries: &HashMap<Box<[u8]>, Cached>) -> Vec<u8> {
    let size: usize = entries.keys().map(|k| k.len() + ENTRY_FIXED).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + size + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, c) in entries {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&c.stat.size.to_le_bytes());
        out.extend_from_slice(&c.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&c.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&c.stat.ino.to_le_bytes());
        out.extend_from_slice(&c.day.to_le_bytes());
        out.extend_from_slice(&c.content);
    }
    let check = blake3::hash(&out);
    out.extend_from_slice(check.as_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<HashMap<Box<[u8]>, Cached>> {
    let (body, check) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != check {
        return None;
    }
    let mut r = Reader(body.strip_prefix(MAGIC)?);
    let count = r.u64()?;
    // Each entry takes at least ENTRY_FIXED bytes: a lying count cannot over-allocate.
    let mut entries =
        HashMap::with_capacity(usize::try_from(count).ok()?.min(body.len() / ENTRY_FIXED));
    for _ in 0..count {
        let len = r.u32()? as usize;
        let path: Box<[u8]> = r.take(len)?.into();
        let stat = FileStat {
            size: r.u64()?,
            mtime_ns: r.i64()?,
            ctime_ns: r.i64()?,
            ino: r.u64()?,
        };
        let day = r.u32()?;
        let content = r.take(32)?.try_into().ok()?;
        entries.insert(path, Cached { stat, day, content });
    }
    r.0.is_empty().then_some(entries)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_NS: i64 = 3_600_000_000_000;

    fn stat(mtime_ns: i64) -> FileStat {
        FileStat {
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 7,
        }
    }

    #[test]
    fn a_matching_stat_hits_and_any_change_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = StatCache::load(dir.path().join("cache"));
        let (path, now) = (Path::new("/p/a"), now_ns());
        let old = stat(now - HOUR_NS);
        cache.record(&[(path, old, [1; 32])], now);
        assert_eq!(cache.lookup(&[(path, old)]), [Some([1; 32])]);
        let changed = [
            FileStat { size: 4, ..old },
            FileStat {
                mtime_ns: old.mtime_ns + 1,
                ..old
            },
            FileStat {
                ctime_ns: old.ctime_ns + 1,
                ..old
            },
            FileStat { ino: 8, ..old },
        ];
        for s in changed {
            assert_eq!(cache.lookup(&[(path, s)]), [None], "{s:?}");
        }
        assert_eq!(cache.lookup(&[(Path::new("/p/b"), old)]), [None]);
    }

    #[test]
    fn racy_entries_are_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = StatCache::load(dir.path().join("cache"));
        let (path, now) = (Path::new("/p/a"), now_ns());
        // Modified just before the scan: a second write in the same clock
        // tick would keep this stat, so the hash cannot be trusted later.
        let racy = stat(now - 1_000_000);
        cache.record(&[(path, racy, [1; 32])], now);
        assert_eq!(cache.lookup(&[(path, racy)]), [None]);
    }

    #[test]
    fn entries_survive_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sub/cache");
        let cache = StatCache::load(file.clone());
        let old = stat(now_ns() - HOUR_NS);
        cache.record(&[(Path::new("/p/a"), old, [9; 32])], now_ns());
        cache.save().expect("save");
        let loaded = StatCache::load(file);
        assert_eq!(loaded.lookup(&[(Path::new("/p/a"), old)]), [Some([9; 32])]);
    }

    #[test]
    fn a_corrupt_or_truncated_file_loads_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cache");
        let cache = StatCache::load(file.clone());
        let old = stat(now_ns() - HOUR_NS);
        cache.record(&[(Path::new("/p/a"), old, [9; 32])], now_ns());
        cache.save().expect("save");
        let bytes = std::fs::read(&file).expect("read");
        for bad in [&bytes[..bytes.len() - 1], &bytes[1..], b"".as_slice()] {
            std::fs::write(&file, bad).expect("write");
            let loaded = StatCache::load(file.clone());
            assert_eq!(loaded.lookup(&[(Path::new("/p/a"), old)]), [None]);
        }
    }

    #[test]
    fn an_unchanged_cache_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cache");
        StatCache::load(file.clone()).save().expect("save");
        assert!(!file.exists());
    }
}
