//! Which nodes a build needs the files of, when some are not in the store:
//! Bazel's builds without the bytes, Nix's substitution of only what is
//! needed. A node the remote cache has is downloaded only if it is wanted
//! (`Plan::wanted`) or a node that needs it must be built here; the others
//! are known by what their cache records say they built to, which is all
//! the keys after them are made of.
//!
//! A forward pass finds every key it can: from the store's entries, from
//! realisations the store remembers, else from the cache's records (one
//! request per node, remembered as a realisation). A backward pass, from
//! what is wanted, marks what must be here. Network IO (the cache) and
//! small store writes.

use std::collections::BTreeSet;

use super::keys::{self, Produced};
use super::node::Ctx;
use crate::eval::Work;
use crate::hash::Key;
use crate::image::stored::{self, Part};
use crate::store::Realisation;

/// What the survey found, per planned node.
pub(super) struct Survey {
    /// Its key, where the nodes it needs are known.
    pub keys: Vec<Option<Key>>,
    /// What it built to, where known without building it.
    pub known: Vec<Option<Produced>>,
    /// Known, not in the store, and not needed here: it stays in the cache.
    pub remote: Vec<bool>,
}

/// Surveys the plan. `local(i)`: what node `i` produced, if the build has
/// already found it in the store. `forced`: nodes to build here whatever the
/// cache has (an entry that could not be used after all).
pub(super) fn survey(
    ctx: &Ctx<'_, '_>,
    local: impl Fn(usize) -> Option<Produced>,
    forced: &BTreeSet<usize>,
) -> Survey {
    let n = ctx.plan.nodes.len();
    let mut keys = vec![None; n];
    let mut known: Vec<Option<Produced>> = vec![None; n];
    let mut here = vec![false; n];
    for i in 0..n {
        if let Some(produced) = local(i) {
            (known[i], here[i]) = (Some(produced), true);
            continue;
        }
        let Some((key, _)) = keys::key(ctx.plan, i, |d| known[d], false) else {
            continue;
        };
        keys[i] = Some(key);
        match find(ctx, i, &key) {
            Found::Here(produced) => (known[i], here[i]) = (Some(produced), true),
            Found::Known(produced) => known[i] = Some(produced),
            Found::Nowhere => {}
        }
    }
    // Backward, dependents before dependencies: a node built here needs
    // every node it waits on here.
    let mut needed = vec![false; n];
    for &w in &ctx.plan.wanted {
        needed[w] = true;
    }
    for j in (0..n).rev() {
        let built_here = !here[j] && (known[j].is_none() || forced.contains(&j));
        if needed[j] && built_here {
            for d in ctx.plan.nodes[j].waits_on() {
                needed[d] = true;
            }
        }
    }
    let remote = (0..n)
        .map(|i| known[i].is_some() && !here[i] && !needed[i])
        .collect();
    Survey {
        keys,
        known,
        remote,
    }
}

enum Found {
    Here(Produced),
    Known(Produced),
    Nowhere,
}

/// Where node `i`'s output under `key` is: in the store, remembered, in the
/// cache, or nowhere (it must be built). A store error reads as nowhere:
/// the build then meets it again and reports it.
fn find(ctx: &Ctx<'_, '_>, i: usize, key: &Key) -> Found {
    let is_image = ctx.plan.nodes[i].work.is_image();
    if let Ok(Some(entry)) = ctx.store.lookup(key) {
        let config = match is_image {
            true => match stored::read(entry.path.as_path(), Part::Record) {
                Ok(image) => Some(image.config_digest()),
                Err(_) => return Found::Nowhere,
            },
            false => None,
        };
        return Found::Here(Produced {
            hash: entry.meta.output_hash,
            config,
        });
    }
    let produced = |r: Realisation| Produced {
        hash: r.output_hash,
        config: r.config,
    };
    if let Ok(Some(known)) = ctx.store.known(key) {
        return Found::Known(produced(known));
    }
    // Bases are never cached: their bytes come from where they are pinned.
    let cache = ctx
        .cache
        .filter(|_| !matches!(ctx.plan.nodes[i].work, Work::Import(_)));
    let record = match cache.map(|c| c.record(key)) {
        Some(Ok(Some(record))) => record,
        Some(Err(e)) => {
            let name = ctx.plan.nodes[i].name();
            ctx.progress
                .warn(&format!("cache: {e}; building `{name}` here"));
            return Found::Nowhere;
        }
        None | Some(Ok(None)) => return Found::Nowhere,
    };
    // An image's record must say what later keys are made of.
    if is_image && record.config.is_none() {
        return Found::Nowhere;
    }
    let known = Realisation {
        key: *key,
        output_hash: record.output_hash,
        config: record.config,
    };
    // Only saves asking the cache again: failing to write it fails nothing.
    let _ = ctx.store.remember(&known);
    Found::Known(produced(known))
}
