//! Eval: a [`Spec`] → a [`Plan`]: the stages a build needs, in dependency
//! order, each with its inputs gathered and hashed.
//!
//! A stage's [`Key`] is blake3 over its [`Inputs`] plus the *output* hashes of
//! the stages it uses, which are only known once those are built (or found in
//! the store): that is what gives early cutoff. So eval gathers everything
//! else, and the build step finishes each key as its dependencies complete.

use std::collections::BTreeMap;

use crate::hash::{Key, OutputHash};
use crate::spec::{Name, Spec, Stage};
use crate::tree::Tree;

/// The stages to build, dependencies before dependents.
#[derive(Debug)]
pub struct Plan<'s> {
    pub stages: Vec<PlannedStage<'s>>,
}

/// One stage, ready to be keyed once its dependencies' outputs are known.
#[derive(Debug)]
pub struct PlannedStage<'s> {
    pub stage: &'s Stage,
    /// Indices into `Plan::stages` of the stages this one uses.
    pub deps: Vec<usize>,
    /// The declared sources as scanned: what gets copied into the build dir.
    pub sources: Tree,
    /// Host tools, resolved on PATH: name → absolute path.
    pub tools: BTreeMap<String, std::path::PathBuf>,
    pub inputs: Inputs,
}

/// Everything but dependency outputs that goes into a key, label → value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs(pub BTreeMap<String, String>);

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EvalError {}

impl Inputs {
    /// The final key and the full manifest (inputs plus `use:NAME` entries).
    pub fn key(&self, deps: &[(&Name, OutputHash)]) -> (Key, BTreeMap<String, String>) {
        let _ = deps;
        todo!()
    }
}

/// Plans `targets` (all stages when empty) and everything they use.
pub fn plan<'s>(spec: &'s Spec, targets: &[Name], cache: &crate::tree::StatCache) -> Result<Plan<'s>, EvalError> {
    let _ = (spec, targets, cache);
    todo!()
}
