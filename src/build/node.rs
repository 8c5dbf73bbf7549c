//! Building one node of the plan: finish its key, reuse the store entry or
//! produce it (run a stage, fetch, import a base, assemble an image) under
//! the key's lock, and commit it.

use std::collections::BTreeMap;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::Status;
use super::executor::{Executor, RunFailure};
use super::progress::Progress;
use crate::eval::{Plan, PlannedNode};
use crate::hash::{Key, OutputHash};
use crate::image::stored::{self, Part};
use crate::image::{Assembled, ExportError};
use crate::spec::Spec;
use crate::store::{Entry, Hold, Pending, Store, StorePath};

pub(super) struct Ctx<'a, 's> {
    pub spec: &'a Spec,
    pub plan: &'a Plan<'s>,
    pub store: &'a Store,
    pub executor: &'a dyn Executor,
    pub progress: &'a Progress,
    /// For stages without a `timeout` of their own.
    pub timeout: Option<std::time::Duration>,
    pub registry: &'a crate::registry::Access,
    pub cache: Option<&'a crate::cache::Remote>,
}

impl<'a, 's> Ctx<'a, 's> {
    /// What building `plan` with `opts` shares, the remote cache included.
    pub fn new(
        spec: &'a Spec,
        plan: &'a Plan<'s>,
        store: &'a Store,
        executor: &'a dyn Executor,
        progress: &'a Progress,
        opts: &'a super::BuildOptions,
    ) -> Self {
        Ctx {
            spec,
            plan,
            store,
            executor,
            progress,
            timeout: opts.timeout,
            registry: &opts.registry,
            cache: opts.cache.as_ref(),
        }
    }
}

/// What a finished node left for the nodes that need it.
#[derive(Debug, Clone)]
pub(super) struct Finished {
    pub path: StorePath,
    pub hash: OutputHash,
    /// An image or base node's record (without its file list).
    pub image: Option<Arc<Assembled>>,
}

/// A node's store entry, as [`find_or_build`] got it.
pub(super) struct Found {
    pub status: Status,
    pub entry: Entry,
    /// Keeps the entry from gc while this process may still read it.
    pub hold: Hold,
    /// An image or base node's record, when it was read already (for the
    /// push of what was just built); `None` leaves it to be read by who
    /// needs it ([`record`]).
    pub image: Option<Arc<Assembled>>,
}

impl Found {
    /// `entry`, its record not read yet.
    pub fn new(status: Status, entry: Entry, hold: Hold) -> Self {
        Found {
            status,
            entry,
            hold,
            image: None,
        }
    }
}

/// The finished nodes a node waits on, by plan index.
pub(super) type Done = BTreeMap<usize, Finished>;

pub(super) struct Outcome {
    pub key: Option<Key>,
    pub status: Status,
    pub finished: Option<Finished>,
    /// Keeps the output from gc while this process may still read it.
    pub hold: Option<Hold>,
    pub failure: Option<Failure>,
}

impl Outcome {
    fn without_files(key: Option<Key>, status: Status) -> Self {
        Outcome {
            key,
            status,
            finished: None,
            hold: None,
            failure: None,
        }
    }

    pub fn skipped() -> Self {
        Outcome::without_files(None, Status::Skipped)
    }

    /// Left in the remote cache (see `survey.rs`).
    pub fn remote(key: Option<Key>) -> Self {
        Outcome::without_files(key, Status::Remote)
    }

    /// To build in the next round, with what it needs (see `schedule.rs`).
    pub fn deferred(key: Key) -> Self {
        Outcome::without_files(Some(key), Status::Deferred)
    }

    /// Failed in an earlier round, whose outcome says why.
    pub fn failed_before() -> Self {
        Outcome::without_files(None, Status::Failed)
    }
}

/// Why a node did not build.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Failure {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Stage(#[from] StageFailure),
    /// An image or base that could not be made; its own diagnostic points
    /// into kiln.kdl (a missing entrypoint, a copy of nothing, a bad base).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] ExportError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pull(#[from] PullFailure),
}

/// A registry base that could not be pulled: the registry's answer, at the
/// reference in kiln.kdl.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("Base `{base}` could not be pulled")]
#[diagnostic(code(kiln::build::pull))]
pub struct PullFailure {
    pub base: crate::spec::Name,
    #[source_code]
    pub src: std::sync::Arc<miette::NamedSource<String>>,
    #[label("pulled from here")]
    pub span: miette::SourceSpan,
    #[related]
    pub cause: Vec<crate::registry::RegistryError>,
}

impl Failure {
    /// A mistake in kiln.kdl rather than a failed script or machine: exit 2.
    pub fn is_spec_error(&self) -> bool {
        matches!(self, Failure::Image(e) if e.is_spec_error())
    }
}

/// A stage that did not build: why, with its `run` line when a script failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("Stage `{stage}` failed")]
#[diagnostic(code(kiln::build::stage_failed))]
pub struct StageFailure {
    pub stage: String,
    #[help]
    pub help: String,
    /// The last lines of the log, shown before the diagnostic.
    pub log_tail: String,
    #[source]
    pub cause: Box<dyn std::error::Error + Send + Sync>,
    #[source_code]
    pub src: Arc<NamedSource<String>>,
    #[label("{label}")]
    pub span: Option<SourceSpan>,
    pub label: String,
}

/// Why producing an entry failed, before it is told as a [`Failure`].
#[derive(Debug, thiserror::Error)]
pub(super) enum NodeError {
    #[error(transparent)]
    Run(RunFailure),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error("Failed to open the build log")]
    Log(#[source] std::io::Error),
    #[error(transparent)]
    Fetch(#[from] super::fetch::FetchError),
    #[error(transparent)]
    Base(#[from] crate::base::BaseError),
    #[error(transparent)]
    Image(#[from] ExportError),
    #[error(transparent)]
    Pull(#[from] crate::registry::RegistryError),
    /// Not pulled, and what it needs was left in the cache: deferred.
    #[error("what it needs is not in the store")]
    Elsewhere,
}

/// The store entry for `key`: found, pulled, or produced now under the
/// key's lock (if `producible`: what it needs is here), and pushed to the
/// cache when it was produced and the cache takes pushes.
pub(super) fn find_or_build(
    ctx: &Ctx<'_, '_>,
    planned: &PlannedNode<'_>,
    key: &Key,
    manifest: impl FnOnce() -> BTreeMap<String, String>,
    producible: bool,
    produce: impl FnOnce(&Pending) -> Result<(), NodeError>,
) -> Result<Found, NodeError> {
    // Held from before the lookup until the command ends, so gc cannot take
    // the entry away from under this build or the export that follows it.
    // A hold never makes anyone wait (see `store::lock`), so keeping it while
    // waiting for the build lock below cannot deadlock.
    let hold = ctx.store.hold(key)?;
    if let Some(entry) = ctx.store.lookup(key)? {
        return Ok(Found::new(Status::Cached, entry, hold));
    }
    let lock = ctx.store.lock(key)?;
    // Another process may have built it while we waited for the lock.
    if let Some(entry) = ctx.store.lookup(key)? {
        return Ok(Found::new(Status::Cached, entry, hold));
    }
    let name = planned.name();
    // Not bases: their bytes come from where they are pinned to.
    let shared = ctx
        .cache
        .filter(|_| !matches!(planned.work, crate::eval::Work::Import(_)));
    let inputs = manifest();
    if let Some(cache) = shared
        && let Some(entry) = pull(ctx, cache, key, name, &lock, &inputs)?
    {
        return Ok(Found::new(Status::Pulled, entry, hold));
    }
    if !producible {
        return Err(NodeError::Elsewhere);
    }
    let running = ctx.progress.start(name.as_str());
    let clock = Instant::now();
    let result = ctx
        .store
        .begin(key, name, &lock)
        .map_err(NodeError::from)
        .and_then(|pending| {
            produce(&pending)?;
            let ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
            Ok(pending.commit(inputs.clone(), unix_now(), ms)?)
        });
    let status = match result.is_ok() {
        true => Status::Built,
        false => Status::Failed,
    };
    ctx.progress
        .finish(running, name.as_str(), status, clock.elapsed());
    // Released now, not at the end of the command: only the hold stays.
    drop(lock);
    let entry = result?;
    // Read once, for the push (an image's config digest, without which
    // later keys could not be found from the cache's record) and for the
    // nodes after it. One that cannot be read fails the node unpushed.
    let image = record(planned, &entry)?;
    if let Some(cache) = shared.filter(|c| c.pushes())
        && let Err(e) = push(cache, key, &entry, image.as_deref(), inputs)
    {
        ctx.progress
            .warn(&format!("`{name}` was not pushed to the cache: {e}"));
    }
    Ok(Found {
        status: Status::Built,
        entry,
        hold,
        image,
    })
}

/// An image or base node's record (without its file list), read from its
/// `entry`; `None` for a stage or a fetch.
pub(super) fn record(
    planned: &PlannedNode<'_>,
    entry: &Entry,
) -> Result<Option<Arc<Assembled>>, NodeError> {
    Ok(match planned.work.is_image() {
        true => Some(Arc::new(stored::read(entry.path.as_path(), Part::Record)?)),
        false => None,
    })
}

/// Pushes what was just built to the cache, with an image's config digest
/// (`image`: its record).
fn push(
    cache: &crate::cache::Remote,
    key: &Key,
    entry: &Entry,
    image: Option<&Assembled>,
    inputs: BTreeMap<String, String>,
) -> Result<(), crate::cache::CacheError> {
    let config = image.map(Assembled::config_digest);
    cache.push(key, (entry, config), inputs, &std::env::temp_dir())
}

/// The entry for `key` from the remote cache, committed, if the cache has
/// one kiln may use; a warning (and `None`: build it here) for one it
/// cannot use.
fn pull(
    ctx: &Ctx<'_, '_>,
    cache: &crate::cache::Remote,
    key: &Key,
    name: &crate::spec::Name,
    lock: &crate::store::KeyLock,
    inputs: &BTreeMap<String, String>,
) -> Result<Option<Entry>, NodeError> {
    let clock = Instant::now();
    let pending = ctx.store.begin(key, name, lock)?;
    let record = match cache.pull(key, &pending) {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(e) => {
            ctx.progress
                .warn(&format!("cache: {e}; building `{name}` here"));
            return Ok(None);
        }
    };
    let ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    // The inputs kiln worked out itself (the key is their hash), not the
    // record's: what `explain` reads of this entry later is then true.
    let committed = pending.commit_verified(&record.output_hash, inputs.clone(), unix_now(), ms)?;
    match committed {
        Ok(entry) => {
            ctx.progress
                .done(name.as_str(), Status::Pulled, clock.elapsed());
            Ok(Some(entry))
        }
        Err(actual) => {
            ctx.progress.warn(&format!(
                "cache entry for `{name}` ({key}) does not match its recorded output hash \
                 {} (its files hash to {actual}); building it here",
                record.output_hash
            ));
            Ok(None)
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
