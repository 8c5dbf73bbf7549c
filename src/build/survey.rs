//! Which nodes a build needs the files of, when some are not in the store:
//! Bazel's builds without the bytes, Nix's substitution of only what is
//! needed. A node the remote cache has is downloaded only if it is wanted
//! (`Plan::wanted`) or a node that needs it must be built here; the others
//! are known by what their cache records say they built to, which is all
//! the keys after them are made of.
//!
//! A forward pass finds every key it can: from the store's entries, from
//! realisations the store remembers, else from the cache's records (one
//! request per node, remembered as a realisation). It goes wave by wave,
//! the nodes of a wave looked up at once (16 requests in flight, on
//! scoped threads) once the cache has answered a first request. A
//! backward pass, from what is wanted, marks what must be here. Network IO
//! (the cache) and small store writes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let mut known: Vec<Option<Produced>> = (0..n).map(&local).collect();
    let mut here: Vec<bool> = known.iter().map(Option::is_some).collect();
    // One wave at a time, each node's lookups (a cache record is a round
    // trip or two) beside the others': a wave's keys need only the waves
    // before it.
    let waits_on: Vec<_> = ctx.plan.nodes.iter().map(|p| p.waits_on()).collect();
    // Said after the forward pass, in plan order (as when the nodes were
    // looked up one after another), not wave by wave.
    let mut warnings: Vec<(usize, String)> = Vec::new();
    for wave in waves(&waits_on, &here) {
        let look_up = |&i: &usize| {
            let (key, _) = keys::key(ctx.plan, i, |d| known[d], false)?;
            // A store error reads as no entry: the build meets it again and
            // reports it.
            let entry = ctx.store.lookup(&key).ok().flatten();
            let planned = &ctx.plan.nodes[i];
            let cache = ctx.cache.map(|cache| (cache, ctx.registry));
            Some((i, key, find(ctx.store, cache, planned, &key, entry)))
        };
        let found: Vec<(usize, Key, Found)> = match ctx.cache {
            Some(cache) => {
                // One at a time until the cache has answered once: an
                // unreachable one is then said for the first node in plan
                // order on every run, and the others never ask it.
                let mut found = Vec::new();
                let mut rest = &wave[..];
                while let [first, more @ ..] = rest
                    && !cache.settled()
                {
                    found.extend(look_up(first));
                    rest = more;
                }
                found.extend(at_once(rest, look_up));
                found
            }
            None => wave.iter().filter_map(look_up).collect(),
        };
        // Recorded in plan order within the wave: the same whatever the
        // threads did.
        for (i, key, found) in found {
            keys[i] = Some(key);
            match &found {
                Found::Here(..) => here[i] = found.produced().is_some(),
                // Only saves asking the cache again: failing to write it
                // fails nothing.
                Found::Recorded(realisation) => _ = ctx.store.remember(realisation),
                Found::Nowhere(Some(e)) => {
                    let name = ctx.plan.nodes[i].name();
                    warnings.push((i, format!("cache: {e}; building `{name}` here")));
                }
                Found::Remembered(_) | Found::Nowhere(None) => {}
            }
            known[i] = found.produced();
        }
    }
    warnings.sort_by_key(|&(i, _)| i);
    for (_, warning) in warnings {
        ctx.progress.warn(&warning);
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
            for &d in &waits_on[j] {
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

/// The nodes not yet here, by wave: each node in the wave after the last
/// of the nodes it waits on (`waits_on`, in plan order: dependencies
/// first), in plan order within a wave.
fn waves(waits_on: &[BTreeSet<usize>], here: &[bool]) -> Vec<Vec<usize>> {
    let mut wave_of = vec![0usize; here.len()];
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (i, deps) in waits_on.iter().enumerate() {
        let wave = deps.iter().map(|&d| wave_of[d] + 1).max().unwrap_or(0);
        wave_of[i] = wave;
        if here[i] {
            continue;
        }
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(i);
    }
    waves
}

/// `look_up` of every node of `nodes`, up to [`LOOKUPS_AT_ONCE`] at a time
/// (round trips, not CPU: more threads than cores), the answers in the
/// order of `nodes`. This thread is one of them, and the others are scoped:
/// all are gone when it returns (a pool's threads linger after it drops).
/// One that cannot start (a user's or a cgroup's limit on threads) leaves
/// its share to those that did, so the lookups at worst go one after
/// another, as before they went in parallel, and fail nothing.
fn at_once<T: Send>(nodes: &[usize], look_up: impl Fn(&usize) -> Option<T> + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut got = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(i) = nodes.get(k) else { break };
            got.extend(look_up(i).map(|t| (k, t)));
        }
        got
    };
    let work = &work;
    let mut got = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..LOOKUPS_AT_ONCE.min(nodes.len()))
            .map_while(|n| {
                let thread = std::thread::Builder::new().name(format!("kiln-survey-{n}"));
                thread.spawn_scoped(s, work).ok()
            })
            .collect();
        let mut got = work();
        for helper in helpers {
            got.extend(
                helper
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        got
    });
    got.sort_unstable_by_key(|&(k, _)| k);
    got.into_iter().map(|(_, t)| t).collect()
}

/// Cache lookups in flight at once: as a registry client would (BuildKit
/// and crane fetch blobs 4 to 16 at a time).
const LOOKUPS_AT_ONCE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_waits_for_the_wave_after_its_last_dependency() {
        // 0 ← 1 ← 3, 0 ← 2, 4 alone; 0 is here already.
        let deps: Vec<BTreeSet<usize>> = vec![
            BTreeSet::new(),
            BTreeSet::from([0]),
            BTreeSet::from([0]),
            BTreeSet::from([1, 2]),
            BTreeSet::new(),
        ];
        let here = [true, false, false, false, false];
        assert_eq!(waves(&deps, &here), vec![vec![4], vec![1, 2], vec![3]]);
    }

    #[test]
    fn lookups_at_once_answer_in_the_order_asked() {
        let nodes: Vec<usize> = (0..100).rev().collect();
        // Odd ones have no answer; the later ones answer first.
        let got = at_once(&nodes, |&i| {
            std::thread::sleep(std::time::Duration::from_micros(100 - i as u64));
            (i % 2 == 0).then_some(i * 10)
        });
        let want: Vec<usize> = nodes
            .iter()
            .filter(|&&i| i % 2 == 0)
            .map(|i| i * 10)
            .collect();
        assert_eq!(got, want);
    }
}
