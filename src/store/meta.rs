//! An entry's meta (`meta/<key>.json`): what kiln records about a committed
//! entry, how a hit reads it (without its inputs) and marks it used. IO.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::time::SystemTime;

use super::StoreError;
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

/// The meta at `file`; `None` if it is missing or does not parse.
/// The meta in `file`, and whether its last-use mark is older than
/// [`USE_MARK_EVERY`] (so a hit should renew it).
pub(super) fn read_meta<M: serde::de::DeserializeOwned>(
    file: &Path,
) -> Result<Option<(M, bool)>, StoreError> {
    use std::io::Read;
    let io = |source| StoreError::Io {
        path: file.to_owned(),
        source,
    };
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let stat = f.metadata().map_err(io)?;
    let stale = (stat.modified().map_err(io)?.elapsed()).map_or(true, |age| age > USE_MARK_EVERY);
    // Sized from the stat: one read, and no seek to learn the size again. A
    // meta is written once, atomically; one that read short does not parse,
    // and a meta that does not parse is a miss.
    let mut bytes = vec![0; usize::try_from(stat.len()).unwrap_or(0)];
    let mut n = 0;
    while n < bytes.len() {
        match f.read(&mut bytes[n..]).map_err(io)? {
            0 => break,
            read => n += read,
        }
    }
    bytes.truncate(n);
    Ok(serde_json::from_slice(&bytes)
        .ok()
        .map(|meta| (meta, stale)))
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
