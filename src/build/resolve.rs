//! Finding keys without building: what `kiln explain` and `kiln store path`
//! need. A stage's key is known once every stage it uses is in the store.

use std::collections::BTreeMap;

use crate::eval::Plan;
use crate::hash::Key;
use crate::store::{Entry, Store, StoreError};

/// A stage whose key could be computed from the store.
#[derive(Debug)]
pub struct Resolved {
    pub key: Key,
    pub manifest: BTreeMap<String, String>,
    /// The committed entry, if this key was built.
    pub entry: Option<Entry>,
}

/// Per planned stage (plan order): its key and entry, or `None` when a stage
/// it uses is not in the store (so its key cannot be known yet).
pub fn resolve(plan: &Plan<'_>, store: &Store) -> Result<Vec<Option<Resolved>>, StoreError> {
    let mut out: Vec<Option<Resolved>> = Vec::with_capacity(plan.stages.len());
    for planned in &plan.stages {
        let deps: Option<Vec<_>> = (planned.deps.iter())
            .map(|&d| {
                let entry = out[d].as_ref()?.entry.as_ref()?;
                Some((plan.stages[d].name(), entry.meta.output_hash))
            })
            .collect();
        let resolved = match deps {
            Some(deps) => {
                let (key, manifest) = planned.inputs.key(&deps);
                let entry = store.lookup(&key)?;
                Some(Resolved {
                    key,
                    manifest,
                    entry,
                })
            }
            None => None,
        };
        out.push(resolved);
    }
    Ok(out)
}
