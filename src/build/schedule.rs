//! The scheduler: a dependency-counting walk of the plan on a rayon pool.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::progress::Progress;
use super::stage::{DepOutputs, Outcome, StageCtx, build_stage};
use super::{BuildOptions, BuildReport, Executor, Local, StageReport, Status};
use crate::eval::Plan;
use crate::image::StageOutput;
use crate::spec::Spec;
use crate::store::Store;

struct State {
    /// Per stage: how many of its dependencies have not finished yet.
    waiting_on: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
}

struct Scheduler<'a, 's> {
    ctx: StageCtx<'a, 's>,
    dependents: Vec<Vec<usize>>,
    state: Mutex<State>,
    stop: AtomicBool,
    fail_fast: bool,
}

/// Builds every stage of `plan` not already in `store`.
pub fn run(spec: &Spec, plan: &Plan<'_>, store: &Store, opts: &BuildOptions) -> BuildReport {
    run_with(spec, plan, store, opts, &Local)
}

/// [`run`] with a chosen executor (the sandbox, or a test double).
pub fn run_with(
    spec: &Spec,
    plan: &Plan<'_>,
    store: &Store,
    opts: &BuildOptions,
    executor: &dyn Executor,
) -> BuildReport {
    let started = Instant::now();
    let n = plan.stages.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, planned) in plan.stages.iter().enumerate() {
        for dep in planned.waits_on() {
            dependents[dep].push(i);
        }
    }
    let progress = Progress::new(opts.live, opts.quiet);
    let sched = Scheduler {
        ctx: StageCtx {
            spec,
            plan,
            store,
            executor,
            progress: &progress,
            timeout: opts.timeout,
        },
        dependents,
        state: Mutex::new(State {
            waiting_on: plan.stages.iter().map(|p| p.waits_on().len()).collect(),
            outcomes: (0..n).map(|_| None).collect(),
        }),
        stop: AtomicBool::new(false),
        fail_fast: opts.fail_fast,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("kiln-build-{i}"))
        .build()
        .expect("kiln: cannot start build threads");
    // FIFO: ready stages start in plan (file) order; rayon's default is LIFO.
    pool.scope_fifo(|scope| {
        for (i, planned) in plan.stages.iter().enumerate() {
            if planned.waits_on().is_empty() {
                sched.spawn(scope, i);
            }
        }
    });
    let state = sched
        .state
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let stages = (plan.stages.iter().zip(state.outcomes))
        .map(|(planned, outcome)| {
            let o = outcome.expect("kiln bug: a planned stage was never scheduled");
            StageReport {
                name: planned.name().clone(),
                key: o.key,
                status: o.status,
                output: o.output,
                root: o.root,
                tool_dirs: (planned.tools.values())
                    .filter_map(|tool| tool.parent())
                    .map(std::path::Path::to_path_buf)
                    .collect(),
                hold: o.hold,
                failure: o.failure,
            }
        })
        .collect();
    BuildReport {
        stages,
        elapsed: started.elapsed(),
    }
}

impl<'a, 's> Scheduler<'a, 's> {
    fn spawn<'scope>(&'scope self, scope: &rayon::ScopeFifo<'scope>, i: usize) {
        scope.spawn_fifo(move |scope| {
            let outcome = match self.dependency_outputs(i) {
                Some(deps) if !self.stop.load(Ordering::SeqCst) => build_stage(&self.ctx, i, &deps),
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

    /// The outputs of what stage `i` waits on, or `None` if one of them did
    /// not succeed.
    fn dependency_outputs(&self, i: usize) -> Option<DepOutputs> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let planned = &self.ctx.plan.stages[i];
        let output = |d: usize| state.outcomes[d].as_ref().and_then(|o| o.output.clone());
        let uses = planned
            .deps
            .iter()
            .map(|&d| output(d))
            .collect::<Option<Vec<_>>>()?;
        let root = (planned.root_deps.iter())
            .map(|&d| {
                let (path, hash) = output(d)?;
                let output = StageOutput {
                    path: path.as_path().to_path_buf(),
                    hash,
                };
                Some((self.ctx.plan.stages[d].name().clone(), output))
            })
            .collect::<Option<_>>()?;
        Some(DepOutputs { uses, root })
    }

    /// Records stage `i`'s outcome; returns the stages that became ready.
    fn finish(&self, i: usize, outcome: Outcome) -> Vec<usize> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.outcomes[i] = Some(outcome);
        let mut ready = Vec::new();
        for &d in &self.dependents[i] {
            state.waiting_on[d] -= 1;
            if state.waiting_on[d] == 0 {
                ready.push(d);
            }
        }
        ready
    }
}
