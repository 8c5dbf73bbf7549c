//! An entry's meta (`meta/<key>.json`): what kiln records about a committed
//! entry, how a hit reads it (without its inputs) and marks it used. IO.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::StoreError;
use super::layout::Layout;
use crate::fsx::IoContext;
use crate::hash::{Key, OutputHash};

/// What kiln records about a committed entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub key: Key,
    pub name: String,
    pub output_hash: OutputHash,
    /// Every input that went into `key`, label → value (see eval::Inputs).
    pub inputs: BTreeMap<String, String>,
    /// Unix seconds when the build started, and how long it took.
    pub started: u64,
    pub duration_ms: u64,
    pub kiln_version: String,
}

/// A meta without its inputs: what a cache hit reads (serde skips the
/// inputs map without building it; `explain` reads it with [`Store::meta`]).
#[derive(serde::Deserialize)]
pub(super) struct MetaHead {
    key: Key,
    name: String,
    output_hash: OutputHash,
    started: u64,
    duration_ms: u64,
    kiln_version: String,
}

impl From<MetaHead> for Meta {
    fn from(head: MetaHead) -> Meta {
        let MetaHead {
            key,
            name,
            output_hash,
            started,
            duration_ms,
            kiln_version,
        } = head;
        Meta {
            key,
            name,
            output_hash,
            inputs: BTreeMap::new(),
            started,
            duration_ms,
            kiln_version,
        }
    }
}

/// The meta in `file`, and whether its last-use mark is older than
/// [`USE_MARK_EVERY`] (so a hit should renew it); `None` if it is missing
/// or does not parse.
pub(super) fn read_meta<M: serde::de::DeserializeOwned>(
    file: &Path,
) -> Result<Option<(M, bool)>, StoreError> {
    match std::fs::File::open(file) {
        Ok(f) => read_open(f, file),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(file)?,
    }
}

fn read_open<M: serde::de::DeserializeOwned>(
    mut f: std::fs::File,
    file: &Path,
) -> Result<Option<(M, bool)>, StoreError> {
    use std::io::Read;
    let stat = f.metadata().at(file)?;
    let modified = stat.modified().at(file)?;
    let stale = modified.elapsed().map_or(true, |age| age > USE_MARK_EVERY);
    // Sized from the stat: one read, and no seek to learn the size again. A
    // meta is written once, atomically; one that read short does not parse,
    // and a meta that does not parse is a miss.
    let mut bytes = vec![0; usize::try_from(stat.len()).unwrap_or(0)];
    let mut n = 0;
    while n < bytes.len() {
        match f.read(&mut bytes[n..]).at(file)? {
            0 => break,
            read => n += read,
        }
    }
    bytes.truncate(n);
    Ok(serde_json::from_slice(&bytes)
        .ok()
        .map(|meta| (meta, stale)))
}

/// The store's `meta/` and `store/` directories, held open so that a hit
/// names its files relative to them: a no-op build of 1,000 stages walked
/// the five components of the store's path 2,000 times.
#[derive(Debug)]
pub(super) struct Dirs {
    meta: OwnedFd,
    entries: OwnedFd,
}

impl Dirs {
    pub fn open(layout: &Layout) -> Result<Dirs, StoreError> {
        let open = |dir: PathBuf| {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            rustix::fs::open(&dir, flags, Mode::empty())
                .map_err(io::Error::from)
                .at(&dir)
        };
        Ok(Dirs {
            meta: open(layout.meta_dir())?,
            entries: open(layout.store_dir())?,
        })
    }

    /// What [`read_meta`] reads of `meta/<short>.json` (`file` is its path,
    /// for messages).
    pub fn read_head(
        &self,
        short: &str,
        file: &Path,
    ) -> Result<Option<(MetaHead, bool)>, StoreError> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.meta, format!("{short}.json"), flags, Mode::empty()) {
            Ok(fd) => read_open(fd.into(), file),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(io::Error::from(e)).at(file)?,
        }
    }

    /// Whether `store/<short>-<name>` is a directory.
    pub fn has_entry(&self, short: &str, name: &str) -> bool {
        let entry = format!("{short}-{name}");
        rustix::fs::statat(&self.entries, entry, AtFlags::empty())
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }
}

/// How often a hit renews an entry's last-use mark: gc ages entries by
/// days, so an hour-old mark is as good as a new one, and a no-op build of
/// many stages does not write to every meta.
const USE_MARK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Records a use of an entry: its meta's mtime is what gc ages.
pub(super) fn touch(meta_file: &Path) -> Result<(), StoreError> {
    let file = std::fs::File::options()
        .write(true)
        .open(meta_file)
        .at(meta_file)?;
    file.set_modified(SystemTime::now()).at(meta_file)?;
    Ok(())
}
