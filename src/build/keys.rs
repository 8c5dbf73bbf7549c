//! A node's key, finished from what the nodes it needs produced (early
//! cutoff: their outputs, not their keys). Pure; shared by the build and by
//! `kiln explain`, which must compute the same keys without building.

use std::collections::BTreeMap;

use crate::eval::{Plan, Work};
use crate::hash::{Digest, Key, OutputHash};

/// What a finished node offers the nodes that need it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Produced {
    /// `None` for a base not pulled or imported, known by its pin only: a
    /// stage run in it is keyed by its config, an image made from it by
    /// its key, neither by this.
    pub hash: Option<OutputHash>,
    /// For an image or base: its config digest, what a stage running in it
    /// sees (layer contents and settings), whatever else its entry records.
    pub config: Option<Digest>,
}

/// The key of node `i`, and with `shown` its full labelled inputs (what a
/// commit records for `kiln explain`; a cache hit does not need them);
/// `None` when a node it needs has produced nothing (not built, or failed).
pub(crate) fn key(
    plan: &Plan<'_>,
    i: usize,
    produced: impl Fn(usize) -> Option<Produced>,
    shown: bool,
) -> Option<(Key, BTreeMap<String, String>)> {
    let planned = &plan.nodes[i];
    let mut inputs = planned.inputs.clone();
    let deps = (planned.deps.iter())
        .map(|&d| Some((plan.nodes[d].name(), produced(d)?.hash?)))
        .collect::<Option<Vec<_>>>()?;
    if let Some(root) = planned.root {
        let root_out = produced(root)?;
        let identity = match (planned.work, plan.nodes[root].work) {
            // A stage sees only the root's files and config.
            (Work::Run(_), _) => root_out.config.map(|d| d.to_string())?,
            // An image also inherits what the parent's entry says about them
            // (its layers' blobs). A base's entry is a function of its key (a
            // registry's manifest digest, an archive's content, pins every
            // byte): that, known without pulling or importing it.
            (_, Work::Import(_)) => plan.nodes[root].inputs.key_only(&[]).to_string(),
            _ => root_out.hash?.to_string(),
        };
        let from = inputs.root().unwrap_or_default();
        inputs.set_root(format!("{from} {identity}"));
    }
    for &r in &planned.closure_roots {
        inputs.set_closure_root(plan.nodes[r].name(), produced(r)?.config?);
    }
    Some(match shown {
        true => inputs.key(&deps),
        false => (inputs.key_only(&deps), BTreeMap::new()),
    })
}
