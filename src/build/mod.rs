//! Build: runs a [`Plan`]'s stages into the store, in parallel, cached.
//!
//! Each stage starts as soon as the stages it uses are done (a rayon pool of
//! `--jobs` threads). Its key is finished from its dependencies' output
//! hashes; a key already in the store is not built again (by this process or
//! any other: the store's per-key lock makes a second builder wait and then
//! find the entry). A failing stage does not stop independent ones unless
//! `--fail-fast`; its dependents are skipped.

mod executor;
mod fetch;
mod image_root;
mod progress;
mod resolve;
pub mod sandbox;
mod schedule;
mod stage;

use std::time::Duration;

pub use executor::{DEFAULT_PATH, Deadline, Executor, Job, JobRoot, Local, RunFailure};
pub use resolve::{Resolved, resolve};
pub use schedule::{run, run_with};
pub use stage::StageFailure;

use crate::hash::{Key, OutputHash};
use crate::spec::Name;
use crate::store::StorePath;

pub struct BuildOptions {
    pub jobs: usize,
    pub fail_fast: bool,
    /// Spinners on stderr (it is a terminal); otherwise plain lines.
    pub live: bool,
    /// Nothing on stderr but failures.
    pub quiet: bool,
    /// How long a stage without its own `timeout` may run.
    pub timeout: Option<std::time::Duration>,
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

#[derive(Debug)]
pub struct StageReport {
    pub name: Name,
    pub key: Option<Key>,
    pub status: Status,
    pub output: Option<(StorePath, OutputHash)>,
    /// The image the stage ran in (a base, or an image of the spec), when not
    /// the host: where its programs' runtime libraries are found.
    pub root: Option<std::sync::Arc<crate::base::ImportedImage>>,
    /// The directories of its host tools, which a `from host` stage sees
    /// besides the host's system directories ([`sandbox::host_paths`]).
    pub tool_dirs: Vec<std::path::PathBuf>,
    /// A shared hold on the output: gc leaves it alone while the report lives.
    pub hold: Option<crate::store::Hold>,
    pub failure: Option<StageFailure>,
}

#[derive(Debug)]
pub struct BuildReport {
    /// In plan order: dependencies before dependents.
    pub stages: Vec<StageReport>,
    pub elapsed: Duration,
}

impl BuildReport {
    pub fn output(&self, name: &str) -> Option<&StorePath> {
        let s = self.stages.iter().find(|s| s.name.as_str() == name)?;
        s.output.as_ref().map(|(path, _)| path)
    }

    pub fn succeeded(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s.status, Status::Built | Status::Cached))
    }

    pub fn count(&self, status: Status) -> usize {
        self.stages.iter().filter(|s| s.status == status).count()
    }
}
