//! `kiln explain NODE`: whether a stage or image is cached, and if not,
//! which of its inputs changed since it was last built here (from the
//! store's metadata, or a remote cache's record once the store has
//! collected it). Reads the store and the cache; builds nothing.

use std::collections::BTreeMap;

use super::args::LayerArgs;
use super::origin::{Defined, defined};
use super::{CliError, Global, load_spec, open_store, plan};
use crate::build;

/// `kiln explain NODE`: whether a stage or image is cached, and if not,
/// which of its inputs changed since it was last built here.
pub fn explain(g: &Global, name: &str, layers: &LayerArgs) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    let store = open_store(g)?;
    let layers = super::layer_settings(layers)?;
    let plan = plan(g, &spec, &store, &[name.to_owned()], layers)?;
    let cache = super::cache::remote(g)?;
    let access = g.registry_access();
    let resolved = build::resolve_with(&plan, &store, cache.as_ref().map(|c| (c, &access)))?;
    let idx = (plan.nodes.iter())
        .position(|p| p.name().as_str() == name)
        .expect("kiln bug: target not planned");
    let kind = plan.nodes[idx].work.kind();
    if let Some(at) = defined(&spec, name).filter(Defined::imported) {
        crate::outln!("{kind} `{name}` is defined in {at}")?;
    }
    let Some(now) = &resolved[idx] else {
        let missing: Vec<_> = (plan.nodes[idx].waits_on().into_iter())
            .filter(|&d| resolved[d].as_ref().is_none_or(|r| r.entry.is_none()))
            .map(|d| format!("`{}`", plan.nodes[d].name()))
            .collect();
        crate::outln!(
            "{kind} `{name}` cannot be keyed yet: it needs {}, not built with its current inputs",
            missing.join(", ")
        )?;
        return Ok(());
    };
    if now.entry.is_some() {
        crate::outln!("{kind} `{name}` is cached: key {}", now.key)?;
        return Ok(());
    }
    // What the cache says is only a hint here: an entry it cannot give is
    // the same as none.
    let remote = |key: &crate::hash::Key| cache.as_ref().and_then(|c| c.record(key).ok().flatten());
    if remote(&now.key).is_some() {
        crate::outln!(
            "{kind} `{name}` is not in the store, but the cache has it (key {}): the next build pulls it",
            now.key
        )?;
        return Ok(());
    }
    let target = plan.nodes[idx].name();
    let previous = store.get_ref(&spec.context, target)?;
    // The third value: the inputs are a cache record's, whatever its
    // writer put there (shown without control characters).
    let old = match previous {
        Some(key) => match store.meta(&key)? {
            Some(meta) => Some((meta.key, meta.inputs, false)),
            // Collected here since; the cache may still have what it was.
            None => remote(&key).map(|r| (r.key, r.inputs, true)),
        },
        None => None,
    };
    let Some((old_key, old_inputs, untrusted)) = old else {
        crate::outln!(
            "{kind} `{name}` has never been built here (key {})",
            now.key
        )?;
        return Ok(());
    };
    crate::outln!(
        "{kind} `{name}` is not cached: key {} was {}",
        now.key,
        old_key
    )?;
    print_diff(&old_inputs, &now.manifest, untrusted)
}

/// The inputs that changed from `old` to `new`; with `untrusted` (`old`
/// from a cache record), no control character of `old` is printed.
fn print_diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    untrusted: bool,
) -> Result<(), CliError> {
    let shown = |text: &str| match untrusted {
        true => super::out::printable(text).into_owned(),
        false => text.to_owned(),
    };
    for (label, value) in new {
        match old.get(label) {
            Some(was) if was != value => {
                crate::outln!("  changed {label}: {} → {value}", shown(was))?;
            }
            None => crate::outln!("  added   {label}: {value}")?,
            _ => {}
        }
    }
    for (label, was) in old.iter().filter(|(l, _)| !new.contains_key(*l)) {
        crate::outln!("  removed {}: {}", shown(label), shown(was))?;
    }
    Ok(())
}
