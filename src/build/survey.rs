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

use super::find::{Found, find};
use super::keys::{self, Produced};
use super::node::Ctx;
use crate::hash::Key;

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
        let planned = &ctx.plan.nodes[i];
        // A store error reads as no entry: the build meets it again and
        // reports it.
        let entry = ctx.store.lookup(&key).ok().flatten();
        let found = find(ctx.store, ctx.cache, planned, &key, entry);
        match &found {
            Found::Here(..) => here[i] = found.produced().is_some(),
            // Only saves asking the cache again: failing to write it fails
            // nothing.
            Found::Recorded(realisation) => _ = ctx.store.remember(realisation),
            Found::Nowhere(Some(e)) => {
                let name = planned.name();
                ctx.progress
                    .warn(&format!("cache: {e}; building `{name}` here"));
            }
            Found::Remembered(_) | Found::Nowhere(None) => {}
        }
        known[i] = found.produced();
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
