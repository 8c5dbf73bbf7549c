//! Executors: how one stage's scripts are run.
//!
//! The scheduler hands an executor a [`Job`] (what to run, where, with what
//! environment); the executor decides how isolated that is. [`Local`] runs it
//! as a plain child process with a cleared environment. The namespace sandbox
//! slots in behind the same trait.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One stage's work: its scripts, run in order, each by `/bin/sh -euc`.
#[derive(Debug)]
pub struct Job<'a> {
    pub scripts: Vec<&'a str>,
    /// The private writable copy of the declared sources.
    pub work_dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error("script {index} exited with {status}")]
    Script {
        index: usize,
        status: std::process::ExitStatus,
    },
    #[error("failed to start `/bin/sh`")]
    Spawn(#[source] std::io::Error),
}

pub trait Executor: Sync {
    /// Runs the job's scripts in order, stdout and stderr to `log`; stops at the
    /// first that fails.
    fn run(&self, job: &Job<'_>, log: &File) -> Result<(), RunFailure>;
}

/// No isolation beyond a cleared environment and a private working directory.
pub struct Local;

impl Executor for Local {
    fn run(&self, job: &Job<'_>, log: &File) -> Result<(), RunFailure> {
        for (index, script) in job.scripts.iter().enumerate() {
            let stdout = log.try_clone().map_err(RunFailure::Spawn)?;
            let stderr = log.try_clone().map_err(RunFailure::Spawn)?;
            let status = Command::new("/bin/sh")
                .arg("-euc")
                .arg(script)
                .env_clear()
                .envs(&job.env)
                .current_dir(&job.work_dir)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .status()
                .map_err(RunFailure::Spawn)?;
            if !status.success() {
                return Err(RunFailure::Script { index, status });
            }
        }
        Ok(())
    }
}
