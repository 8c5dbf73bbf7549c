//! The scheduler: a dependency-counting walk of the plan on a rayon pool,
//! and what building one node means for each kind of node.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::keys::{self, Produced};
use super::node::{Ctx, Done, Failure, Finished, Found, NodeError, Outcome, find_or_build, record};
use super::progress::Progress;
use super::survey;
use super::{BuildOptions, BuildReport, Executor, Local, NodeReport, Status};
use crate::eval::{Plan, PlannedNode};
use crate::hash::Key;
use crate::spec::Spec;
use crate::store::{Pending, Store};

struct State {
    /// Per node: how many of the nodes it waits on have not finished yet.
    waiting_on: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
}

struct Scheduler<'r, 'a, 's> {
    ctx: &'r Ctx<'a, 's>,
    dependents: &'r [Vec<usize>],
    state: Mutex<State>,
    /// What the survey found the nodes not in the store built to.
    known: Vec<Option<Produced>>,
    /// Nodes that failed in an earlier round: not run again.
    failed_before: &'r BTreeSet<usize>,
    stop: AtomicBool,
    fail_fast: bool,
}

/// Builds every node of `plan` not already in `store`.
pub fn run(spec: &Spec, plan: &Plan<'_>, store: &Store, opts: &BuildOptions) -> BuildReport {
    run_with(spec, plan, store, opts, &Local)
}

/// [`run`] with a chosen executor (the sandbox, or a test double).
///
/// Runs in rounds: a node whose cache entry turned out unusable after the
/// nodes it needs were left in the cache is deferred, and the next round
/// builds it here, with them.
pub fn run_with(
    spec: &Spec,
    plan: &Plan<'_>,
    store: &Store,
    opts: &BuildOptions,
    executor: &dyn Executor,
) -> BuildReport {
    let started = Instant::now();
    let mut dependents = vec![Vec::new(); plan.nodes.len()];
    for (i, planned) in plan.nodes.iter().enumerate() {
        for dep in planned.waits_on() {
            dependents[dep].push(i);
        }
    }
    let progress = Progress::new(opts.live, opts.quiet);
    let ctx = Ctx::new(spec, plan, store, executor, &progress, opts);
    let mut outcomes: Vec<Option<Outcome>> = (0..plan.nodes.len()).map(|_| None).collect();
    let mut forced = BTreeSet::new();
    loop {
        let failed_before = (0..outcomes.len())
            .filter(|&i| {
                outcomes[i]
                    .as_ref()
                    .is_some_and(|o| o.status == Status::Failed)
            })
            .collect();
        let (round, stopped) = round(&ctx, &dependents, opts, &forced, &failed_before);
        let deferred: Vec<usize> = (0..round.len())
            .filter(|&i| round[i].status == Status::Deferred)
            .collect();
        for (slot, new) in outcomes.iter_mut().zip(round) {
            if slot.as_ref().is_none_or(|o| o.status.superseded()) {
                *slot = Some(new);
            }
        }
        // Each round forces at least one more node: at most one per node.
        if deferred.is_empty() || stopped {
            break;
        }
        forced.extend(deferred);
    }
    // Only `kiln explain` reads refs: failing to write them fails nothing.
    let _ = store.save_refs();
    let nodes = (plan.nodes.iter().zip(outcomes))
        .map(|(planned, outcome)| {
            let o = outcome.expect("kiln bug: a planned node was never scheduled");
            NodeReport {
                name: planned.name().clone(),
                kind: planned.work.kind(),
                key: o.key,
                // A stop by `--fail-fast` ends the rounds early.
                status: match o.status {
                    Status::Deferred => Status::Skipped,
                    status => status,
                },
                output: o.finished.as_ref().map(|f| (f.path.clone(), f.hash)),
                image: o.finished.and_then(|f| f.image),
                hold: o.hold,
                failure: o.failure,
            }
        })
        .collect();
    BuildReport {
        nodes,
        elapsed: started.elapsed(),
    }
}

/// `jobs` threads to build on; at the process limit, only this one (it
/// works through the queue while it waits for the scope to end), so a build
/// there fails where a stage cannot start, and says why, not here.
fn build_pool(jobs: usize) -> rayon::ThreadPool {
    let named = || rayon::ThreadPoolBuilder::new().thread_name(|i| format!("kiln-build-{i}"));
    named()
        .num_threads(jobs.max(1))
        .build()
        .or_else(|_| named().num_threads(1).use_current_thread().build())
        .expect("kiln bug: a pool of the current thread spawns nothing")
}

/// One round: every node gets an outcome; the second value says whether
/// `--fail-fast` stopped it.
fn round(
    ctx: &Ctx<'_, '_>,
    dependents: &[Vec<usize>],
    opts: &BuildOptions,
    forced: &BTreeSet<usize>,
    failed_before: &BTreeSet<usize>,
) -> (Vec<Outcome>, bool) {
    let plan = ctx.plan;
    let mut sched = Scheduler {
        ctx,
        dependents,
        state: Mutex::new(State {
            waiting_on: plan.nodes.iter().map(|p| p.waits_on().len()).collect(),
            outcomes: (0..plan.nodes.len()).map(|_| None).collect(),
        }),
        known: vec![None; plan.nodes.len()],
        failed_before,
        stop: AtomicBool::new(false),
        fail_fast: opts.fail_fast,
    };
    // Plan order is dependency order: one pass answers every node the store
    // has, and what is left (if anything) goes to the pool.
    let mut ready = sched.take_cached();
    if !ready.is_empty() {
        ready = sched.take_remote(forced);
        let pool = build_pool(opts.jobs);
        // FIFO: ready nodes start in plan (file) order; rayon's default is LIFO.
        let sched = &sched;
        pool.scope_fifo(|scope| ready.into_iter().for_each(|i| sched.spawn(scope, i)));
    }
    let stopped = sched.stop.load(Ordering::SeqCst);
    let state = sched
        .state
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let outcomes = (state.outcomes.into_iter())
        .map(|o| o.expect("kiln bug: a planned node was never scheduled"))
        .collect();
    (outcomes, stopped)
}

impl Scheduler<'_, '_, '_> {
    fn spawn<'scope>(&'scope self, scope: &rayon::ScopeFifo<'scope>, i: usize) {
        scope.spawn_fifo(move |scope| {
            let outcome = match self.finished_dependencies(i) {
                _ if self.failed_before.contains(&i) => Outcome::failed_before(),
                Some(done) if !self.stop.load(Ordering::SeqCst) => {
                    build_node(self.ctx, i, &done, &self.known)
                }
                _ => Outcome::skipped(),
            };
            if outcome.status == Status::Failed && self.fail_fast {
                self.stop.store(true, Ordering::SeqCst);
            }
            for ready in self.finish(i, outcome) {
                self.spawn(scope, ready);
            }
        });
    }

    /// Records every node the store already has, in plan order, each once
    /// all it waits on is recorded; returns the nodes left that are ready.
    fn take_cached(&self) -> Vec<usize> {
        // One shared gc lock and one roots write for the whole pass; without
        // the pin each hit still works, taking the lock itself.
        let pin = self.ctx.store.pin_roots().ok();
        for i in 0..self.ctx.plan.nodes.len() {
            if self.failed_before.contains(&i) {
                continue;
            }
            let outcome =
                (self.finished_dependencies(i)).and_then(|done| cached(self.ctx, i, &done));
            if let Some(outcome) = outcome {
                self.finish(i, outcome);
            }
        }
        drop(pin);
        self.ready()
    }

    /// Surveys what is left (see `survey.rs`), records the nodes that stay
    /// in the cache, and returns the nodes left that are ready.
    fn take_remote(&mut self, forced: &BTreeSet<usize>) -> Vec<usize> {
        let found = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let local = |i: usize| {
                let f = state.outcomes[i].as_ref()?.finished.as_ref()?;
                Some(produced(f))
            };
            survey::survey(self.ctx, local, forced)
        };
        for i in (0..found.remote.len()).filter(|&i| found.remote[i]) {
            self.finish(i, Outcome::remote(found.keys[i]));
        }
        self.known = found.known;
        self.ready()
    }

    /// The nodes without an outcome that wait on nothing.
    fn ready(&self) -> Vec<usize> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (0..self.ctx.plan.nodes.len())
            .filter(|&i| state.outcomes[i].is_none() && state.waiting_on[i] == 0)
            .collect()
    }

    /// What node `i` waits on and has here, or `None` if one of them did
    /// not succeed. A node left in the cache succeeded but is not here.
    fn finished_dependencies(&self, i: usize) -> Option<Done> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let planned = &self.ctx.plan.nodes[i];
        let mut done = Done::new();
        for d in planned.waits_on() {
            let outcome = state.outcomes[d].as_ref()?;
            match &outcome.finished {
                Some(finished) => _ = done.insert(d, finished.clone()),
                None if outcome.status == Status::Remote => {}
                None => return None,
            }
        }
        Some(done)
    }

    /// Records node `i`'s outcome; returns the nodes that became ready.
    fn finish(&self, i: usize, outcome: Outcome) -> Vec<usize> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.outcomes[i] = Some(outcome);
        let mut ready = Vec::new();
        for &d in &self.dependents[i] {
            state.waiting_on[d] -= 1;
            // One recorded before what it waits on (left in the cache) is
            // not run.
            if state.waiting_on[d] == 0 && state.outcomes[d].is_none() {
                ready.push(d);
            }
        }
        ready
    }
}

/// What a finished node offers the keys of the nodes after it.
fn produced(f: &Finished) -> Produced {
    Produced {
        hash: Some(f.hash),
        config: f.image.as_ref().map(|img| img.config_digest()),
    }
}

/// Node `i`, from the store, the cache, or built. `known`: what the nodes
/// left in the cache built to.
fn build_node(ctx: &Ctx<'_, '_>, i: usize, done: &Done, known: &[Option<Produced>]) -> Outcome {
    let planned = &ctx.plan.nodes[i];
    let Some((key, _)) = node_key(ctx, i, done, known, false) else {
        return Outcome::skipped();
    };
    // What a commit records for `kiln explain`: only needed on a miss.
    let manifest = || {
        node_key(ctx, i, done, known, true)
            .map(|(_, shown)| shown)
            .unwrap_or_default()
    };
    // Not with some of what it needs left in the cache.
    let producible = planned.waits_on().iter().all(|d| done.contains_key(d));
    let result = find_or_build(ctx, planned, &key, manifest, producible, |pending| {
        produce(ctx, i, done, &key, pending)
    })
    .and_then(|got| found(ctx, i, key, got));
    result.unwrap_or_else(|e| match e {
        NodeError::Elsewhere => Outcome::deferred(key),
        e => Outcome {
            key: Some(key),
            status: Status::Failed,
            finished: None,
            hold: None,
            failure: Some(failure(ctx, planned, &key, e)),
        },
    })
}

/// Node `i`, if the store has it already: answered on the calling thread,
/// without a job or a lock, so a no-op build starts no thread. `None`
/// leaves the node to the pool (which also reports any error).
fn cached(ctx: &Ctx<'_, '_>, i: usize, done: &Done) -> Option<Outcome> {
    let (key, _) = node_key(ctx, i, done, &[], false)?;
    let hold = ctx.store.hold(&key).ok()?;
    let entry = ctx.store.lookup(&key).ok()??;
    found(ctx, i, key, Found::new(Status::Cached, entry, hold)).ok()
}

/// Node `i`'s key, from what the nodes it waits on produced (`known`: those
/// left in the cache).
fn node_key(
    ctx: &Ctx<'_, '_>,
    i: usize,
    done: &Done,
    known: &[Option<Produced>],
    shown: bool,
) -> Option<(Key, crate::hash::Shown)> {
    let of = |d: usize| match done.get(&d) {
        Some(f) => Some(produced(f)),
        None => known.get(d).copied().flatten(),
    };
    keys::key(ctx.plan, i, of, shown)
}

/// The outcome of node `i` found (or just built) in the store as `got`.
fn found(ctx: &Ctx<'_, '_>, i: usize, key: Key, got: Found) -> Result<Outcome, NodeError> {
    let planned = &ctx.plan.nodes[i];
    let Found {
        status,
        entry,
        hold,
        image,
    } = got;
    let image = match image {
        Some(image) => Some(image),
        None => record(planned, &entry)?,
    };
    // The ref only serves `kiln explain`: failing to write it must not fail the build.
    let _ = ctx.store.set_ref(&ctx.spec.context, planned.name(), &key);
    Ok(Outcome {
        key: Some(key),
        status,
        finished: Some(Finished {
            path: entry.path,
            hash: entry.meta.output_hash,
            image,
        }),
        hold: Some(hold),
        failure: None,
    })
}

/// Produces node `i` into `pending`, by kind.
fn produce(
    ctx: &Ctx<'_, '_>,
    i: usize,
    done: &Done,
    key: &Key,
    pending: &Pending,
) -> Result<(), NodeError> {
    match ctx.plan.nodes[i].work.is_image() {
        true => super::image::produce(ctx, i, done, pending),
        false => super::stage::produce(ctx, i, done, key, pending),
    }
}

/// Tells why node `planned` failed.
fn failure(ctx: &Ctx<'_, '_>, planned: &PlannedNode<'_>, key: &Key, e: NodeError) -> Failure {
    match e {
        NodeError::Image(e) => Failure::Image(e),
        NodeError::Pull(e) => {
            let at = match planned.work {
                crate::eval::Work::Import(base) => base.pin_span(),
                _ => planned.work.name().span,
            };
            // In the file that defines the base (an imported one, perhaps).
            let (src, span) = ctx.spec.snippet(at);
            Failure::Pull(super::node::PullFailure {
                base: planned.name().clone(),
                src,
                span,
                cause: vec![e],
            })
        }
        e => Failure::Stage(super::stage::failure(ctx, planned, key, e)),
    }
}
