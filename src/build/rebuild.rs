//! `kiln build --rebuild`: every stage of a finished build run again, as
//! `nix-build --check` does, and its output compared with the stored one.
//!
//! Each stage the build produced (or found) is run once more into a fresh
//! build directory of its key that is never committed, from the same
//! stored inputs (used stages' outputs, the root it ran in: a difference
//! is the stage's own) and with empty `cache` directories, so a cache that
//! changes what a tool produces shows as a difference. Stages are
//! independent here (their inputs are all stored), so they run in
//! parallel. The rebuilt tree is hashed as a commit hashes it; when it
//! differs, it is kept beside the build directories
//! (`tmp/<key>-<name>.rebuilt`, until the next `kiln store gc`) and the
//! first differing path is named. Its log goes beside it
//! (`tmp/<key>-<name>.rebuild.log`, removed when the bytes are the same),
//! never over the stored build's. Fetches are checked by their pin and
//! images assembled from stage outputs, so only stages run again.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::node::{Ctx, Done, Failure, Finished, NodeError};
use super::progress::Progress;
use super::stage::{Caches, produce_with};
use super::{BuildOptions, BuildReport, Executor, Status};
use crate::eval::{Plan, Work};
use crate::hash::OutputHash;
use crate::spec::{Name, Spec};
use crate::store::Store;
use crate::tree::{Entry, Tree};

/// One stage built again.
#[derive(Debug)]
pub struct Checked {
    pub name: Name,
    pub stored: (PathBuf, OutputHash),
    pub outcome: Rebuilt,
}

#[derive(Debug)]
pub enum Rebuilt {
    /// The same output, byte for byte.
    Same,
    /// Another output, kept at `path`; the first path (in the trees'
    /// order) where the two differ, and how.
    Differs {
        path: PathBuf,
        hash: OutputHash,
        first: String,
        how: String,
    },
    /// The stage did not build again.
    Failed(Box<Failure>),
}

/// Runs every stage of `report` (a successful build of `plan`) again.
pub fn rebuild(
    spec: &Spec,
    plan: &Plan<'_>,
    store: &Store,
    opts: &BuildOptions,
    executor: &dyn Executor,
    report: &BuildReport,
) -> Vec<Checked> {
    let progress = Progress::new(opts.live, opts.quiet);
    // Never from the cache: the point is to run the stage here again.
    let ctx = Ctx {
        cache: None,
        ..Ctx::new(spec, plan, store, executor, &progress, opts)
    };
    let finished = |d: usize| {
        let node = &report.nodes[d];
        let (path, hash) = node.output.clone()?;
        Some(Finished {
            path,
            hash,
            image: node.image.clone(),
        })
    };
    let stages: Vec<usize> = (0..plan.nodes.len())
        .filter(|&i| matches!(plan.nodes[i].work, Work::Run(_)))
        .filter(|&i| report.nodes[i].output.is_some())
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("kiln-rebuild-{i}"))
        .build()
        .expect("kiln: cannot start build threads");
    pool.install(|| {
        stages
            .par_iter()
            .map(|&i| {
                let done: Done = (plan.nodes[i].waits_on().into_iter())
                    .filter_map(|d| Some((d, finished(d)?)))
                    .collect();
                check(&ctx, i, &done, report)
            })
            .collect()
    })
}

fn check(ctx: &Ctx<'_, '_>, i: usize, done: &Done, report: &BuildReport) -> Checked {
    let planned = &ctx.plan.nodes[i];
    let node = &report.nodes[i];
    let (stored_path, stored_hash) = node
        .output
        .clone()
        .expect("kiln bug: checked a stage without output");
    let key = node
        .key
        .expect("kiln bug: a stage with an output has a key");
    let name = planned.name();
    let running = ctx.progress.start(name.as_str());
    let clock = Instant::now();
    let outcome = rerun(ctx, i, done, &key, stored_path.as_path(), &stored_hash);
    let status = match outcome {
        Ok(Rebuilt::Same) => Status::Built,
        _ => Status::Failed,
    };
    ctx.progress
        .finish(running, name.as_str(), status, clock.elapsed());
    let outcome = outcome.unwrap_or_else(|e| {
        let failure = super::stage::failure_in(ctx, planned, &key, e, Caches::Empty);
        Rebuilt::Failed(Box::new(Failure::Stage(failure)))
    });
    Checked {
        name: name.clone(),
        stored: (stored_path.as_path().to_path_buf(), stored_hash),
        outcome,
    }
}

/// Stage `i` run into a build directory of its key, never committed.
fn rerun(
    ctx: &Ctx<'_, '_>,
    i: usize,
    done: &Done,
    key: &crate::hash::Key,
    stored: &Path,
    stored_hash: &OutputHash,
) -> Result<Rebuilt, NodeError> {
    let name = ctx.plan.nodes[i].name();
    // The key's lock: its build directory is this process's alone.
    let lock = ctx.store.lock(key)?;
    let pending = ctx.store.begin(key, name, &lock)?;
    produce_with(ctx, i, done, key, &pending, Caches::Empty)?;
    let rebuilt = crate::tree::scan_dir(pending.out_dir())?;
    let hash = rebuilt.hash();
    if hash == *stored_hash {
        // Nothing to look into: a same rebuild leaves nothing behind.
        let _ = std::fs::remove_file(ctx.store.rebuild_log_path(key, name));
        return Ok(Rebuilt::Same);
    }
    let (first, how) = first_difference(&crate::tree::scan_dir(stored)?, &rebuilt);
    let kept = pending.keep_out("rebuilt")?;
    Ok(Rebuilt::Differs {
        path: kept,
        hash,
        first,
        how,
    })
}

/// The first path, in tree order, where `stored` and `rebuilt` differ, and how.
pub(crate) fn first_difference(stored: &Tree, rebuilt: &Tree) -> (String, String) {
    let (mut a, mut b) = (
        stored.entries.iter().peekable(),
        rebuilt.entries.iter().peekable(),
    );
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x == y => {
                a.next();
                b.next();
            }
            (Some(x), Some(y)) if x.path == y.path => {
                return (
                    x.path.clone(),
                    format!("{} before, {} now", what(x), what(y)),
                );
            }
            (Some(x), Some(y)) if x.path < y.path => {
                return (x.path.clone(), "only in the stored output".into());
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                return (y.path.clone(), "only in the rebuilt output".into());
            }
            (Some(x), None) => return (x.path.clone(), "only in the stored output".into()),
            // Same entries, yet another hash: cannot be, but say so.
            (None, None) => return (".".into(), "the same entries".into()),
        }
    }
}

fn what(entry: &Entry) -> String {
    use crate::tree::EntryKind;
    match &entry.kind {
        EntryKind::Dir => "a directory".into(),
        EntryKind::File {
            executable, size, ..
        } => format!(
            "{} of {size} bytes",
            if *executable {
                "an executable"
            } else {
                "a file"
            }
        ),
        EntryKind::Symlink { target } => format!("a symlink to `{target}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::EntryKind;

    fn file(path: &str, byte: u8, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                executable: false,
                size,
                content: [byte; 32],
            },
        }
    }

    #[test]
    fn the_first_difference_is_named_in_tree_order_with_how_it_differs() {
        let tree = |entries: Vec<Entry>| Tree { entries };
        let stored = tree(vec![file("a", 1, 1), file("b", 1, 4), file("c", 1, 1)]);
        let same_size = tree(vec![file("a", 1, 1), file("b", 2, 4), file("c", 2, 1)]);
        assert_eq!(
            first_difference(&stored, &same_size),
            (
                "b".into(),
                "a file of 4 bytes before, a file of 4 bytes now".into()
            )
        );
        let extra = tree(vec![file("a", 1, 1), file("aa", 1, 1), file("b", 1, 4)]);
        assert_eq!(
            first_difference(&stored, &extra),
            ("aa".into(), "only in the rebuilt output".into())
        );
        let fewer = tree(vec![file("a", 1, 1), file("c", 1, 1)]);
        assert_eq!(
            first_difference(&stored, &fewer),
            ("b".into(), "only in the stored output".into())
        );
    }
}
