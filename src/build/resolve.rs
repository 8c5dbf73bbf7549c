//! Finding keys without building: what `kiln explain` and `kiln store path`
//! need. A stage's key is known once every stage it uses is in the store.

use std::collections::BTreeMap;

use crate::eval::{Inputs, Plan, PlannedRoot, PlannedStage};
use crate::hash::Key;
use crate::image::StageOutput;
use crate::spec::Spec;
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
pub fn resolve(
    spec: &Spec,
    plan: &Plan<'_>,
    store: &Store,
) -> Result<Vec<Option<Resolved>>, StoreError> {
    let mut out: Vec<Option<Resolved>> = Vec::with_capacity(plan.stages.len());
    for planned in &plan.stages {
        let deps: Option<Vec<_>> = (planned.deps.iter())
            .map(|&d| {
                let entry = out[d].as_ref()?.entry.as_ref()?;
                Some((plan.stages[d].name(), entry.meta.output_hash))
            })
            .collect();
        let inputs = root_input(spec, plan, store, planned, &out);
        let resolved = match (deps, inputs) {
            (Some(deps), Some(inputs)) => {
                let (key, manifest) = inputs.key(&deps);
                let entry = store.lookup(&key)?;
                Some(Resolved {
                    key,
                    manifest,
                    entry,
                })
            }
            _ => None,
        };
        out.push(resolved);
    }
    Ok(out)
}

/// The stage's inputs with its root image's digest filled in, as the build
/// does; `None` when the stages that image is made of are not all built.
fn root_input(
    spec: &Spec,
    plan: &Plan<'_>,
    store: &Store,
    planned: &PlannedStage<'_>,
    resolved: &[Option<Resolved>],
) -> Option<Inputs> {
    let PlannedRoot::Image(name) = &planned.root else {
        return Some(planned.inputs.clone());
    };
    let outputs = (planned.root_deps.iter())
        .map(|&d| {
            let entry = resolved[d].as_ref()?.entry.as_ref()?;
            let output = StageOutput {
                path: entry.path.as_path().to_path_buf(),
                hash: entry.meta.output_hash,
            };
            Some((plan.stages[d].name().clone(), output))
        })
        .collect::<Option<_>>()?;
    let image = super::image_root::assemble(spec, store, name, &outputs).ok()?;
    Some(super::image_root::keyed(&planned.inputs, name, &image))
}
