//! Producing a stage or fetch node: copy its sources, run its scripts in
//! the executor (or download the file), into the pending entry; and telling
//! why it failed, with the log's last lines.

use std::collections::BTreeMap;

use super::executor::{Job, JobCache, JobRoot, RunFailure};
use super::node::{Ctx, Done, NodeError, StageFailure};
use crate::eval::{PlannedNode, Work};
use crate::hash::Key;
use crate::spec::{CacheDir, Stage};
use crate::store::{CacheLease, CacheRecord, Pending};

/// Lines of a failed stage's log shown on the terminal.
const LOG_TAIL_LINES: usize = 20;

/// Where a stage's `cache` directories come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caches {
    /// The store's, kept between builds.
    Store,
    /// Empty ones of this build's own (`kiln build --rebuild`).
    Empty,
}

/// Runs stage (or fetch) `i` into `pending`. `done`: what it waits on.
pub(super) fn produce(
    ctx: &Ctx<'_, '_>,
    i: usize,
    done: &Done,
    key: &Key,
    pending: &Pending,
) -> Result<(), NodeError> {
    produce_with(ctx, i, done, key, pending, Caches::Store)
}

/// [`produce`], its caches from `caches`.
pub(super) fn produce_with(
    ctx: &Ctx<'_, '_>,
    i: usize,
    done: &Done,
    key: &Key,
    pending: &Pending,
    caches: Caches,
) -> Result<(), NodeError> {
    let planned = &ctx.plan.nodes[i];
    let stage = match planned.work {
        Work::Run(stage) => stage,
        Work::Fetch(fetch) => return Ok(super::fetch::fetch(fetch, pending.out_dir())?),
        Work::Import(_) | Work::Assemble(_) => unreachable!("kiln bug: an image is not a stage"),
    };
    let root = match planned.root {
        None => JobRoot::Host,
        Some(r) => JobRoot::Rootfs(super::image::rootfs(ctx, &done[&r])?),
    };
    // Sources are relative to the file that defines the stage (an imported
    // file's directory for an imported stage).
    let context = ctx.spec.dir_of(&stage.scope, stage.name.span);
    crate::tree::copy_tree(&planned.sources, context, pending.work_dir())?;
    let log_path = log_path(ctx, key, &stage.name.value, caches);
    let log = std::fs::File::create(&log_path).map_err(NodeError::Log)?;
    let (leases, mounts) = take_caches(ctx, stage, pending, caches)?;
    let job = Job {
        scripts: stage.runs.iter().map(|r| r.value.as_str()).collect(),
        root,
        work_dir: pending.work_dir().to_path_buf(),
        out_dir: pending.out_dir().to_path_buf(),
        tmp_dir: pending.tmp_dir().to_path_buf(),
        root_dir: pending.root_dir().to_path_buf(),
        // Each used node by the name the stage's own file gives it: `$data`
        // in the imported file that declares `data`, `$t_data` in kiln.kdl.
        deps: (planned.deps.iter())
            .map(|d| {
                let used = ctx.plan.nodes[*d].name();
                let local = ctx.spec.local(stage.name.span, &stage.scope);
                let name = local.name(used.as_str());
                (
                    name.replace(['-', '.'], "_"),
                    done[d].path.as_path().to_path_buf(),
                )
            })
            .collect(),
        tool_dirs: planned.tool_dirs(),
        env: environment(stage),
        network: false,
        timeout: stage.timeout.as_ref().map(|t| t.value).or(ctx.timeout),
        caches: mounts,
    };
    let ran = ctx.executor.run(&job, &log).map_err(NodeError::Run);
    // Released as soon as the scripts are done. Tools killed mid-write (a
    // timeout, a signal such as the OOM killer's) are as `kill -9` of kiln:
    // the caches are left to drop.
    let killed = match &ran {
        Err(NodeError::Run(RunFailure::TimedOut { .. })) => true,
        Err(NodeError::Run(RunFailure::Script { status, .. })) => killed_by_signal(*status),
        _ => false,
    };
    for lease in leases {
        match killed {
            true => lease.abandon(),
            false => drop(lease),
        }
    }
    ran
}

/// Whether a script's status says a signal killed it or, as a shell reports
/// it, the tool it ran (128 + the signal). A script that exits 129 or more
/// on its own only costs its caches' contents.
fn killed_by_signal(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal().is_some() || status.code().is_some_and(|code| code > 128)
}

/// Where a run of stage `name` logs: a rebuild (empty caches) never
/// overwrites the log of the build that made the stored entry.
pub(super) fn log_path(
    ctx: &Ctx<'_, '_>,
    key: &Key,
    name: &crate::spec::Name,
    caches: Caches,
) -> std::path::PathBuf {
    match caches {
        Caches::Store => ctx.store.log_path(key, name),
        Caches::Empty => ctx.store.rebuild_log_path(key, name),
    }
}

/// The stage's caches, held, and where each is mounted: in the order of
/// their directories' names (one order for every build: no deadlock).
fn take_caches(
    ctx: &Ctx<'_, '_>,
    stage: &Stage,
    pending: &Pending,
    caches: Caches,
) -> Result<(Vec<CacheLease>, Vec<JobCache>), NodeError> {
    let mut wanted: Vec<(CacheRecord, &CacheDir)> = (stage.caches.iter())
        .map(|c| (record(ctx, stage, c), c))
        .collect();
    wanted.sort_by_cached_key(|(record, _)| record.hash());
    let (mut leases, mut mounts) = (Vec::new(), Vec::new());
    for (n, (record, cache)) in wanted.iter().enumerate() {
        let lease = match caches {
            Caches::Store => ctx.store.cache(record, cache.sharing)?,
            Caches::Empty => None,
        };
        let dir = match &lease {
            Some(lease) => lease.dir().to_path_buf(),
            None => pending.scratch_cache(n)?,
        };
        if lease.as_ref().is_some_and(|l| l.dropped) {
            ctx.progress.warn(&format!(
                "cache `{}` was left by tools killed while using it (a build killed, a stage's `timeout`, or a signal): `{}` starts with it empty",
                record.id, stage.name.value
            ));
        }
        leases.extend(lease);
        mounts.push(JobCache {
            path: cache.path.value.clone().into(),
            dir,
        });
    }
    Ok((leases, mounts))
}

/// Which store cache `cache` of `stage` is: its `id=`, shared by every
/// project, or else this project's stage and path.
fn record(ctx: &Ctx<'_, '_>, stage: &Stage, cache: &CacheDir) -> CacheRecord {
    match &cache.id {
        Some(id) => CacheRecord {
            id: id.value.clone(),
            project: None,
        },
        None => CacheRecord {
            id: format!("{}:{}", stage.name.value, cache.path.value),
            project: Some(ctx.spec.context.clone()),
        },
    }
}

/// Why stage (or fetch) `planned` failed, pointing at its `run` line, its
/// `timeout` or its declared hash.
pub(super) fn failure(
    ctx: &Ctx<'_, '_>,
    planned: &PlannedNode<'_>,
    key: &Key,
    e: NodeError,
) -> StageFailure {
    failure_in(ctx, planned, key, e, Caches::Store)
}

/// [`failure`] of a run with `caches` (whose log is `log_path`'s).
pub(super) fn failure_in(
    ctx: &Ctx<'_, '_>,
    planned: &PlannedNode<'_>,
    key: &Key,
    e: NodeError,
    caches: Caches,
) -> StageFailure {
    let name = planned.name();
    let log = log_path(ctx, key, name, caches);
    let stage = match planned.work {
        Work::Run(stage) => Some(stage),
        _ => None,
    };
    let (cause, span, label): (Box<dyn std::error::Error + Send + Sync>, _, _) = match e {
        NodeError::Run(RunFailure::Script { index, status }) => {
            let span = stage.and_then(|s| s.runs.get(index)).map(|r| r.span);
            let label = format!("this script {status}");
            (Box::new(RunFailure::Script { index, status }), span, label)
        }
        NodeError::Run(RunFailure::TimedOut { index, after }) => {
            let span = stage.and_then(|s| {
                (s.timeout.as_ref().map(|t| t.span)).or_else(|| s.runs.get(index).map(|r| r.span))
            });
            let label = format!("killed after {}s", after.as_secs());
            (Box::new(RunFailure::TimedOut { index, after }), span, label)
        }
        NodeError::Fetch(e) => {
            let span = match planned.work {
                Work::Fetch(f) => f.sha256.span,
                _ => planned.work.name().span,
            };
            (Box::new(e), Some(span), "the declared hash".into())
        }
        e => (
            Box::new(e),
            Some(planned.work.name().span),
            "in this stage".into(),
        ),
    };
    // The snippet from the file that defines the stage, an imported one too.
    let (src, span) = match span {
        Some(at) => {
            let (src, at) = ctx.spec.snippet(at);
            (src, Some(at))
        }
        None => (ctx.spec.source.clone(), None),
    };
    StageFailure {
        stage: name.to_string(),
        help: match planned.work {
            Work::Fetch(_) => {
                "if the new content is intended, put its sha256 in kiln.kdl".to_owned()
            }
            _ => format!("the whole log is at {}", log.display()),
        },
        log_tail: tail(&log),
        cause,
        src,
        span,
        label,
    }
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
