//! Where a node's output is without building it: in the store, remembered
//! as a realisation, or in the remote cache's records, each turned into
//! what the keys after it are made of. One answer for a build's survey
//! and for `kiln explain` / `kiln store path` (`resolve.rs`), which must
//! key nodes the same way; what each then does with it (remember a record,
//! warn about a refused cache) is theirs. Store reads and network IO (the
//! cache); writes nothing.

use super::keys::Produced;
use crate::cache::{CacheError, Remote};
use crate::eval::{PlannedNode, Work};
use crate::hash::Key;
use crate::image::stored::{self, Part};
use crate::registry::Access;
use crate::store::{Entry, Realisation, Store};

/// Where a node's output under a key is.
pub(super) enum Found {
    /// In the store. What it offers the keys after it is `None` for an
    /// image entry kiln cannot read: as good as not built.
    Here(Entry, Option<Produced>),
    /// Not here, but the store remembers what it built to.
    Remembered(Produced),
    /// Not here; the cache's record says what it built to (or, for a base,
    /// its pin says what its config is). Not remembered: that is the
    /// caller's choice.
    Recorded(Realisation),
    /// Nowhere without building it; with the cache's error if asking it
    /// failed.
    Nowhere(Option<CacheError>),
}

impl Found {
    /// What the node offers the keys after it, wherever it was found.
    pub fn produced(&self) -> Option<Produced> {
        match self {
            Found::Here(_, produced) => *produced,
            Found::Remembered(produced) => Some(*produced),
            Found::Recorded(r) => Some(produced(*r)),
            Found::Nowhere(_) => None,
        }
    }
}

/// Where `node`'s output under `key` is. `entry` is the store's entry for
/// `key`: the caller looks it up, because a failed lookup is an error to
/// `kiln explain` and, to a build's survey, no entry.
pub(super) fn find(
    store: &Store,
    cache: Option<(&Remote, &Access)>,
    node: &PlannedNode<'_>,
    key: &Key,
    entry: Option<Entry>,
) -> Found {
    let is_image = node.work.is_image();
    if let Some(entry) = entry {
        // An image entry kiln cannot read counts as not built.
        let config = match is_image {
            true => match stored::read(entry.path.as_path(), Part::Record) {
                Ok(image) => Some(image.config_digest()),
                Err(_) => return Found::Here(entry, None),
            },
            false => None,
        };
        let produced = Produced {
            hash: Some(entry.meta.output_hash),
            config,
        };
        return Found::Here(entry, Some(produced));
    }
    // Left in the cache by a build that remembered what it built to
    // (`known/`); one kiln cannot read is as none.
    if let Ok(Some(known)) = store.known(key) {
        return Found::Remembered(produced(known));
    }
    let Some((cache, access)) = cache else {
        return Found::Nowhere(None);
    };
    // Bases are never cached: their bytes come from where they are pinned,
    // and a stage run in one is keyed by its config, which the pin gives.
    if let Work::Import(base) = node.work {
        return match super::image::pinned_config(base, access) {
            Some(config) => Found::Recorded(Realisation {
                key: *key,
                output_hash: None,
                config: Some(config),
            }),
            None => Found::Nowhere(None),
        };
    }
    match cache.record(key) {
        // An image's record must say what later keys are made of.
        Ok(Some(record)) if is_image && record.config.is_none() => Found::Nowhere(None),
        Ok(Some(record)) => Found::Recorded(Realisation {
            key: *key,
            output_hash: Some(record.output_hash),
            config: record.config,
        }),
        Ok(None) => Found::Nowhere(None),
        Err(e) => Found::Nowhere(Some(e)),
    }
}

fn produced(r: Realisation) -> Produced {
    Produced {
        hash: r.output_hash,
        config: r.config,
    }
}
