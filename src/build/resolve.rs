//! Finding keys without building: what `kiln explain` and `kiln store path`
//! need. A node's key is known once every node it needs is in the store,
//! or remembered as left in the remote cache by a build (a realisation).

use std::collections::BTreeMap;

use super::keys::{self, Produced};
use crate::eval::{Plan, Work};
use crate::hash::Key;
use crate::image::stored::{self, Part};
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
/// survey does) what neither the store holds nor remembers. Asks the
/// cache (network IO); remembers nothing.
pub fn resolve_with(
    plan: &Plan<'_>,
    store: &Store,
    cache: Option<&crate::cache::Remote>,
) -> Result<Vec<Option<Resolved>>, StoreError> {
    let mut out: Vec<Option<Resolved>> = Vec::with_capacity(plan.nodes.len());
    let mut produced: Vec<Option<Produced>> = Vec::with_capacity(plan.nodes.len());
    for (i, planned) in plan.nodes.iter().enumerate() {
        let resolved = match keys::key(plan, i, |d| produced[d], true) {
            Some((key, manifest)) => Some(Resolved {
                entry: store.lookup(&key)?,
                key,
                manifest,
            }),
            None => None,
        };
        let entry = resolved.as_ref().and_then(|r| r.entry.as_ref());
        // Not here, but left in the cache by a build that remembered what
        // it built to (`known/`): the keys after it are what that build used.
        if entry.is_none()
            && let Some(r) = &resolved
            // One kiln cannot read is as none, as in a build's survey.
            && let Ok(Some(known)) = store.known(&r.key)
        {
            produced.push(Some(Produced {
                hash: known.output_hash,
                config: known.config,
            }));
            out.push(resolved);
            continue;
        }
        // Bases are never cached; an image's record must name its config.
        if entry.is_none()
            && let Some(r) = &resolved
            && let Some(cache) = cache.filter(|_| !matches!(planned.work, Work::Import(_)))
            && let Ok(Some(record)) = cache.record(&r.key)
            && (record.config.is_some() || !planned.work.is_image())
        {
            produced.push(Some(Produced {
                hash: record.output_hash,
                config: record.config,
            }));
            out.push(resolved);
            continue;
        }
        produced.push(entry.and_then(|entry| {
            // An image entry kiln cannot read counts as not built.
            let config = match planned.work.is_image() {
                true => Some(
                    stored::read(entry.path.as_path(), Part::Record)
                        .ok()?
                        .config_digest(),
                ),
                false => None,
            };
            Some(Produced {
                hash: entry.meta.output_hash,
                config,
            })
        }));
        out.push(resolved);
    }
    Ok(out)
}
