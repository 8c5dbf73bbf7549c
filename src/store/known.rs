//! What the remote cache said keys built to, for entries this store does
//! not hold (`known/<key>.json`, Nix's realisations). A node pulled from
//! the cache only for its key, never downloaded, is remembered here, so the
//! keys of the nodes after it are computed later without asking the cache
//! again (offline too). Small files written atomically; gc drops those
//! unused for as long as it drops entries. IO.

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::layout::Layout;
use crate::fsx::IoContext;
use crate::hash::{Digest, Key, OutputHash};

/// A key's output, as a cache entry's record gave it, or, for a base kiln
/// has not pulled, as its pin says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Realisation {
    pub key: Key,
    /// `None` for a base known only by its config: its output hash is
    /// known once it is pulled.
    pub output_hash: Option<OutputHash>,
    /// For an image or base: its config digest, which the keys after it use.
    pub config: Option<Digest>,
}

/// The realisation of `key`, if one was remembered (a corrupt file reads as
/// none: the cache is asked again).
pub(super) fn read(layout: &Layout, key: &Key) -> Result<Option<Realisation>, StoreError> {
    let file = layout.known_file(&key.short());
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { path: file, source }),
    };
    let known = serde_json::from_slice::<Realisation>(&bytes).ok();
    Ok(known.filter(|r| r.key == *key))
}

pub(super) fn write(layout: &Layout, known: &Realisation) -> Result<(), StoreError> {
    let file = layout.known_file(&known.key.short());
    let dir = layout.known_dir();
    std::fs::create_dir_all(&dir).at(&dir)?;
    let json = serde_json::to_vec(known).expect("kiln bug: a realisation always serializes");
    Ok(crate::fsx::write_atomic(&file, &json)?)
}
