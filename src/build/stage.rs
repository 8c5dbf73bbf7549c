//! Building one stage: finish its key, reuse the store entry or run it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use miette::{NamedSource, SourceSpan};

use super::Status;
use super::executor::{Executor, Job, JobRoot, RunFailure};
use super::image_root::{self, ImageRootError};
use super::progress::Progress;
use crate::base::ImportedImage;
use crate::eval::{Plan, PlannedRoot, PlannedStage, Work};
use crate::hash::{Key, OutputHash};
use crate::image::StageOutput;
use crate::spec::{Name, Spec, Stage};
use crate::store::{Entry, Hold, Store, StorePath};

/// Lines of a failed stage's log shown on the terminal.
const LOG_TAIL_LINES: usize = 20;

pub(super) struct StageCtx<'a, 's> {
    pub spec: &'a Spec,
    pub plan: &'a Plan<'s>,
    pub store: &'a Store,
    pub executor: &'a dyn Executor,
    pub progress: &'a Progress,
    /// For stages without a `timeout` of their own.
    pub timeout: Option<std::time::Duration>,
}

/// What a stage's dependencies produced.
pub(super) struct DepOutputs {
    /// Per used stage, in `PlannedStage::deps` order.
    pub uses: Vec<(StorePath, OutputHash)>,
    /// The output of each stage its root image is made of.
    pub root: BTreeMap<Name, StageOutput>,
}

pub(super) struct Outcome {
    pub key: Option<Key>,
    pub status: Status,
    pub output: Option<(StorePath, OutputHash)>,
    /// The image the stage ran in, when not the host.
    pub root: Option<Arc<ImportedImage>>,
    /// Keeps the output from gc while this process may still read it.
    pub hold: Option<Hold>,
    pub failure: Option<StageFailure>,
}

impl Outcome {
    pub fn skipped() -> Self {
        Outcome {
            key: None,
            status: Status::Skipped,
            output: None,
            root: None,
            hold: None,
            failure: None,
        }
    }

    fn failed(key: Option<Key>, failure: StageFailure) -> Self {
        Outcome {
            key,
            status: Status::Failed,
            output: None,
            root: None,
            hold: None,
            failure: Some(failure),
        }
    }

    fn done(
        key: Key,
        status: Status,
        entry: Entry,
        root: Option<Arc<ImportedImage>>,
        hold: Hold,
    ) -> Self {
        let output = Some((entry.path, entry.meta.output_hash));
        Outcome {
            key: Some(key),
            status,
            output,
            root,
            hold: Some(hold),
            failure: None,
        }
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

pub(super) fn build_stage(ctx: &StageCtx<'_, '_>, i: usize, outputs: &DepOutputs) -> Outcome {
    let planned = &ctx.plan.stages[i];
    let dep_outputs = outputs.uses.as_slice();
    let deps: Vec<_> = (planned.deps.iter().zip(dep_outputs))
        .map(|(&d, (_, hash))| (ctx.plan.stages[d].name(), *hash))
        .collect();
    let root = match root_image(ctx, planned, &outputs.root) {
        Ok(root) => root,
        Err(e) => return root_failure(ctx, planned, e),
    };
    let (key, manifest) = match (&planned.root, &root) {
        (PlannedRoot::Image(name), Some(image)) => {
            image_root::keyed(&planned.inputs, name, image).key(&deps)
        }
        _ => planned.inputs.key(&deps),
    };
    let name = planned.name();
    let name_span = planned.work.name().span;
    let log = ctx.store.log_path(&key, name);
    let fail = |cause: Box<dyn std::error::Error + Send + Sync>,
                span: Option<SourceSpan>,
                label: String| {
        let failure = StageFailure {
            stage: name.to_string(),
            help: match planned.work {
                Work::Run(_) => format!("the whole log is at {}", log.display()),
                Work::Fetch(_) => {
                    "if the new content is intended, put its sha256 in kiln.kdl".to_owned()
                }
            },
            log_tail: tail(&log),
            cause,
            src: ctx.spec.source.clone(),
            span,
            label,
        };
        Outcome::failed(Some(key), failure)
    };
    let result = find_or_build(ctx, planned, dep_outputs, root.as_deref(), key, manifest);
    match result {
        Ok((status, entry, hold)) => {
            // The ref only serves `kiln explain`: failing to write it must not fail the build.
            let _ = ctx.store.set_ref(&ctx.spec.context, name, &key);
            Outcome::done(key, status, entry, root.clone(), hold)
        }
        Err(StageError::Run(RunFailure::Script { index, status })) => {
            let span = match planned.work {
                Work::Run(stage) => stage.runs.get(index).map(|r| r.span),
                Work::Fetch(_) => None,
            };
            let cause = RunFailure::Script { index, status };
            fail(Box::new(cause), span, format!("this script {status}"))
        }
        Err(StageError::Run(RunFailure::TimedOut { index, after })) => {
            let span = match planned.work {
                Work::Run(stage) => (stage.timeout.as_ref().map(|t| t.span))
                    .or_else(|| stage.runs.get(index).map(|r| r.span)),
                Work::Fetch(_) => None,
            };
            let cause = RunFailure::TimedOut { index, after };
            let label = format!("killed after {}s", after.as_secs());
            fail(Box::new(cause), span, label)
        }
        Err(StageError::Fetch(e)) => {
            let span = match planned.work {
                Work::Fetch(f) => f.sha256.span,
                Work::Run(_) => name_span,
            };
            fail(Box::new(e), Some(span), "the declared hash".into())
        }
        Err(e) => fail(Box::new(e), Some(name_span), "in this stage".into()),
    }
}

/// The image a stage runs in: its imported base, or the image of this spec
/// it runs `from`, assembled now that the stages it is made of are built.
fn root_image(
    ctx: &StageCtx<'_, '_>,
    planned: &PlannedStage<'_>,
    root_outputs: &BTreeMap<Name, StageOutput>,
) -> Result<Option<Arc<ImportedImage>>, ImageRootError> {
    Ok(match &planned.root {
        PlannedRoot::Host => None,
        PlannedRoot::Base(image) => Some(image.clone()),
        PlannedRoot::Image(name) => Some(Arc::new(image_root::assemble(
            ctx.spec,
            ctx.store,
            name,
            root_outputs,
        )?)),
    })
}

fn root_failure(ctx: &StageCtx<'_, '_>, planned: &PlannedStage<'_>, e: ImageRootError) -> Outcome {
    let span = match planned.work {
        Work::Run(stage) => stage.from.span,
        Work::Fetch(f) => f.name.span,
    };
    let failure = StageFailure {
        stage: planned.name().to_string(),
        help: "the image this stage runs from could not be assembled".into(),
        log_tail: String::new(),
        cause: Box::new(e),
        src: ctx.spec.source.clone(),
        span: Some(span),
        label: "from this image".into(),
    };
    Outcome::failed(None, failure)
}

#[derive(Debug, thiserror::Error)]
enum StageError {
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
}

/// The store entry for `key`: found, or built now under the key's lock.
fn find_or_build(
    ctx: &StageCtx<'_, '_>,
    planned: &PlannedStage<'_>,
    dep_outputs: &[(StorePath, OutputHash)],
    root: Option<&ImportedImage>,
    key: Key,
    manifest: BTreeMap<String, String>,
) -> Result<(Status, Entry, Hold), StageError> {
    // Held from before the lookup until the command ends, so gc cannot take
    // the entry away from under this build or the export that follows it.
    // A hold never makes anyone wait (see `store::lock`), so keeping it while
    // waiting for the build lock below cannot deadlock.
    let hold = ctx.store.hold(&key)?;
    if let Some(entry) = ctx.store.lookup(&key)? {
        return Ok((Status::Cached, entry, hold));
    }
    let lock = ctx.store.lock(&key)?;
    // Another process may have built it while we waited for the lock.
    if let Some(entry) = ctx.store.lookup(&key)? {
        return Ok((Status::Cached, entry, hold));
    }
    let name = planned.name();
    let running = ctx.progress.start(name.as_str());
    let clock = Instant::now();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let result = run_stage(ctx, planned, dep_outputs, root, &key, &lock).and_then(|pending| {
        let ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(pending.commit(manifest, started, ms)?)
    });
    let status = if result.is_ok() {
        Status::Built
    } else {
        Status::Failed
    };
    ctx.progress
        .finish(running, name.as_str(), status, clock.elapsed());
    // Released now, not at the end of the command: only the hold stays.
    drop(lock);
    Ok((Status::Built, result?, hold))
}

fn run_stage(
    ctx: &StageCtx<'_, '_>,
    planned: &PlannedStage<'_>,
    dep_outputs: &[(StorePath, OutputHash)],
    root: Option<&ImportedImage>,
    key: &Key,
    lock: &crate::store::KeyLock,
) -> Result<crate::store::Pending, StageError> {
    let pending = ctx.store.begin(key, planned.name(), lock)?;
    let stage = match planned.work {
        Work::Run(stage) => stage,
        Work::Fetch(fetch) => {
            super::fetch::fetch(fetch, pending.out_dir())?;
            return Ok(pending);
        }
    };
    crate::tree::copy_tree(&planned.sources, &ctx.spec.context, pending.work_dir())?;
    let log_path = ctx.store.log_path(key, &stage.name.value);
    let log = std::fs::File::create(&log_path).map_err(StageError::Log)?;
    let job = Job {
        scripts: stage.runs.iter().map(|r| r.value.as_str()).collect(),
        root: match root {
            None => JobRoot::Host,
            Some(image) => JobRoot::Rootfs(crate::base::rootfs(image, &ctx.store.rootfs_dir())?),
        },
        work_dir: pending.work_dir().to_path_buf(),
        out_dir: pending.out_dir().to_path_buf(),
        tmp_dir: pending.tmp_dir().to_path_buf(),
        root_dir: pending.root_dir().to_path_buf(),
        deps: (planned.deps.iter().zip(dep_outputs))
            .map(|(&d, (path, _))| {
                (
                    ctx.plan.stages[d].name().env_var(),
                    path.as_path().to_path_buf(),
                )
            })
            .collect(),
        tool_dirs: tool_dirs(stage, planned),
        env: environment(stage),
        network: false,
        timeout: stage.timeout.as_ref().map(|t| t.value).or(ctx.timeout),
    };
    ctx.executor.run(&job, &log).map_err(StageError::Run)?;
    Ok(pending)
}

/// What a stage's scripts see besides paths: its `env`, the args its
/// scripts mention, and fixed values so nothing leaks from the caller.
fn environment(stage: &Stage) -> BTreeMap<String, String> {
    let mut env = stage.env.clone();
    for (arg, value) in &stage.run_args {
        env.insert(arg.replace('-', "_"), value.clone());
    }
    env.insert("HOME".into(), "/homeless-shelter".into());
    env.insert("TZ".into(), "UTC".into());
    env.insert("LC_ALL".into(), "C".into());
    env.insert("SOURCE_DATE_EPOCH".into(), "0".into());
    env
}

/// The directories of the declared host tools, each once, in `tools` order.
fn tool_dirs(stage: &Stage, planned: &PlannedStage<'_>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for tool in &stage.tools {
        let dir = planned.tools.get(&tool.value).and_then(|p| p.parent());
        if let Some(dir) = dir.filter(|d| !dirs.iter().any(|x| x == d)) {
            dirs.push(dir.to_path_buf());
        }
    }
    dirs
}

/// The last lines of a log, as a terminal may show them. The script wrote
/// the log: only its last 64 KiB are read (it can make the log any size),
/// each line is cut at 400 characters, and every control character but a
/// tab becomes `�` (an escape sequence must not drive the user's terminal).
fn tail(log: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 64 * 1024;
    const LINE: usize = 400;
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let len = file.metadata().map_or(0, |m| m.len());
        if file
            .seek(SeekFrom::Start(len.saturating_sub(WINDOW)))
            .is_ok()
        {
            let _ = file.take(WINDOW).read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = (text.lines())
        .map(|line| {
            (line.chars().take(LINE))
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
