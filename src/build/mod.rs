//! Build: runs a [`Plan`]'s stages into the store, in parallel, cached.

use std::time::Duration;

use crate::eval::Plan;
use crate::hash::Key;
use crate::spec::{Name, Spec};
use crate::store::{Store, StorePath};

pub struct BuildOptions {
    pub jobs: usize,
    pub fail_fast: bool,
    /// Show live progress on stderr.
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Built,
    Cached,
    Failed,
    /// Not run: a dependency failed, or `--fail-fast` stopped the build.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct StageReport {
    pub name: Name,
    pub key: Option<Key>,
    pub status: Status,
    pub output: Option<StorePath>,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub stages: Vec<StageReport>,
    pub elapsed: Duration,
}

impl BuildReport {
    pub fn output(&self, name: &str) -> Option<&StorePath> {
        let s = self.stages.iter().find(|s| s.name.as_str() == name)?;
        s.output.as_ref()
    }

    pub fn succeeded(&self) -> bool {
        self.stages.iter().all(|s| matches!(s.status, Status::Built | Status::Cached))
    }
}

/// Builds every stage of `plan` not already in `store`.
pub fn run(spec: &Spec, plan: &Plan<'_>, store: &Store, opts: &BuildOptions) -> BuildReport {
    let _ = (spec, plan, store, opts);
    todo!()
}
