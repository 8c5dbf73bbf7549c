//! Finding keys without building: what `kiln explain` and `kiln store path`
//! need. A node's key is known once every node it needs is in the store,
//! remembered as left in the remote cache by a build (a realisation), or,
//! given the cache, in its records: found as a build's survey finds them
//! (`find.rs`).

use std::collections::BTreeMap;

use super::find::{Found, find};
use super::keys::{self, Produced};
use crate::eval::Plan;
use crate::hash::Key;
use crate::store::{Entry, Store, StoreError};

/// A node whose key could be computed from the store.
#[derive(Debug)]
pub struct Resolved {
    pub key: Key,
    pub manifest: BTreeMap<String, String>,
    /// The committed entry, if this key was built.
    pub entry: Option<Entry>,
}

/// Per planned node (plan order): its key and entry, or `None` when a node
/// it needs is neither in the store nor remembered (so its key cannot be
/// known yet).
pub fn resolve(plan: &Plan<'_>, store: &Store) -> Result<Vec<Option<Resolved>>, StoreError> {
    resolve_with(plan, store, None)
}

/// [`resolve`], also keying through the records of `cache` (as a build's
/// survey does) what neither the store holds nor remembers, and bases
/// through their pins (reaching their registries with the `Access`).
/// Network IO; remembers nothing.
pub fn resolve_with(
    plan: &Plan<'_>,
    store: &Store,
    cache: Option<(&crate::cache::Remote, &crate::registry::Access)>,
) -> Result<Vec<Option<Resolved>>, StoreError> {
    let mut out: Vec<Option<Resolved>> = Vec::with_capacity(plan.nodes.len());
    let mut produced: Vec<Option<Produced>> = Vec::with_capacity(plan.nodes.len());
    for (i, planned) in plan.nodes.iter().enumerate() {
        let Some((key, manifest)) = keys::key(plan, i, |d| produced[d], true) else {
            produced.push(None);
            out.push(None);
            continue;
        };
        let found = find(store, cache, planned, &key, store.lookup(&key)?);
        produced.push(found.produced());
        let entry = match found {
            Found::Here(entry, _) => Some(entry),
            // A cache that cannot be asked is as one without the record.
            Found::Remembered(_) | Found::Recorded(_) | Found::Nowhere(_) => None,
        };
        out.push(Some(Resolved {
            key,
            manifest,
            entry,
        }));
    }
    Ok(out)
}
