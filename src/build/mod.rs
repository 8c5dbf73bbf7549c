//! Build: runs a [`Plan`]'s nodes into the store, in parallel, cached.
//!
//! Every node (stage, fetch, base import, image) starts as soon as what it
//! needs is done (a rayon pool of `--jobs` threads). Its key is finished
//! from its dependencies' outputs ([`keys`]); a key already in the store is
//! not built again (by this process or any other: the store's per-key lock
//! makes a second builder wait and then find the entry). A stage runs its
//! scripts ([`stage`]); a base is imported and an image assembled into an
//! entry export reads as is ([`image`]). A failing node does not stop
//! independent ones unless `--fail-fast`; its dependents are skipped.

mod executor;
mod fetch;
mod find;
mod image;
mod keys;
mod node;
mod progress;
mod rebuild;
mod resolve;
pub mod sandbox;
mod schedule;
mod stage;
mod survey;

use std::time::Duration;

pub use executor::{DEFAULT_PATH, Deadline, Executor, Job, JobCache, JobRoot, Local, RunFailure};
pub use node::{Failure, StageFailure};
pub use rebuild::{Checked, Rebuilt, rebuild};
pub use resolve::{Resolved, resolve, resolve_with};
pub use schedule::{run, run_with};

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
    /// How registries are reached (bases pulled from one).
    pub registry: crate::registry::Access,
    /// The remote cache stages are pulled from (and pushed to), if any.
    pub cache: Option<crate::cache::Remote>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Built,
    Cached,
    /// Taken from the remote cache instead of being built.
    Pulled,
    /// In the remote cache and not downloaded: nothing built here needed
    /// its files, only what it built to. For a base: not pulled, its pin
    /// gave what the nodes after it are keyed by.
    Remote,
    Failed,
    /// Not run: a dependency failed, or `--fail-fast` stopped the build.
    Skipped,
    /// Its cache entry could not be used and what it needs is not here:
    /// built in the build's next round (never in a report).
    #[serde(skip)]
    Deferred,
}

impl Status {
    /// Whether a later round's outcome replaces this one.
    pub(crate) fn superseded(self) -> bool {
        matches!(self, Status::Remote | Status::Skipped | Status::Deferred)
    }
}

#[derive(Debug)]
pub struct NodeReport {
    pub name: Name,
    /// `stage`, `fetch`, `base` or `image`.
    pub kind: &'static str,
    pub key: Option<Key>,
    pub status: Status,
    pub output: Option<(StorePath, OutputHash)>,
    /// For a base or an image: what the store holds of it.
    pub image: Option<std::sync::Arc<crate::image::Assembled>>,
    /// A shared hold on the output: gc leaves it alone while the report lives.
    pub hold: Option<crate::store::Hold>,
    pub failure: Option<Failure>,
}

#[derive(Debug)]
pub struct BuildReport {
    /// In plan order: dependencies before dependents.
    pub nodes: Vec<NodeReport>,
    pub elapsed: Duration,
}

impl BuildReport {
    pub fn node(&self, name: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|s| s.name.as_str() == name)
    }

    pub fn output(&self, name: &str) -> Option<&StorePath> {
        self.node(name)?.output.as_ref().map(|(path, _)| path)
    }

    pub fn succeeded(&self) -> bool {
        self.nodes.iter().all(|s| {
            matches!(
                s.status,
                Status::Built | Status::Cached | Status::Pulled | Status::Remote
            )
        })
    }

    pub fn count(&self, status: Status) -> usize {
        self.nodes.iter().filter(|s| s.status == status).count()
    }
}
