//! Executors: how one stage's scripts are run.
//!
//! The scheduler hands an executor a [`Job`]: what to run, the host
//! directories involved and the stage's own environment. The executor decides
//! where those directories appear to the scripts (`$out`, `$TMPDIR`, one
//! variable per used stage, the working directory) and how isolated the run
//! is. [`Local`] runs a plain child process with a cleared environment, paths
//! as on the host; the namespace sandbox slots in behind the same trait.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `PATH` every stage gets, after its declared tools' directories.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One stage's work: its scripts, run in order, each by `/bin/sh -euc`.
#[derive(Debug)]
pub struct Job<'a> {
    pub scripts: Vec<&'a str>,
    /// The stage's root filesystem.
    pub root: JobRoot,
    /// Host directories: the private writable copy of the declared sources
    /// (the working directory), `$out`, and a fresh `$TMPDIR`.
    pub work_dir: PathBuf,
    pub out_dir: PathBuf,
    pub tmp_dir: PathBuf,
    /// Used stages: environment variable name → store path (read-only).
    pub deps: BTreeMap<String, PathBuf>,
    /// Host directories holding the declared tools, in PATH order.
    pub tool_dirs: Vec<PathBuf>,
    /// Everything else the scripts see: the stage's `env`, the args it
    /// mentions, and the fixed `HOME`, `TZ`, `LC_ALL`, `SOURCE_DATE_EPOCH`.
    pub env: BTreeMap<String, String>,
    /// Only fixed-output fetches get the network.
    pub network: bool,
}

/// The filesystem a job's scripts run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRoot {
    /// The host's own `/usr`, `/bin`, `/lib*`, `/etc`.
    Host,
    /// An unpacked image root filesystem (read-only).
    Rootfs(PathBuf),
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
    #[error("this executor cannot run a stage from an image root (`{}`)", .0.display())]
    Unsupported(PathBuf),
}

pub trait Executor: Send + Sync {
    /// Runs the job's scripts in order, stdout and stderr to `log`; stops at the
    /// first that fails.
    fn run(&self, job: &Job<'_>, log: &File) -> Result<(), RunFailure>;
}

/// No isolation beyond a cleared environment and a private working directory.
pub struct Local;

impl Job<'_> {
    /// The whole environment the scripts see, given where they see `$out`,
    /// `$TMPDIR` and each used stage (`dep(var, host path)`).
    pub fn environment(
        &self,
        out: &Path,
        tmp: &Path,
        dep: impl Fn(&str, &Path) -> PathBuf,
    ) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        for (var, path) in &self.deps {
            env.insert(var.clone(), dep(var, path).display().to_string());
        }
        let mut path: Vec<String> = self
            .tool_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        path.push(DEFAULT_PATH.to_owned());
        env.insert("PATH".into(), path.join(":"));
        env.insert("out".into(), out.display().to_string());
        env.insert("TMPDIR".into(), tmp.display().to_string());
        env
    }
}

impl Executor for Local {
    fn run(&self, job: &Job<'_>, log: &File) -> Result<(), RunFailure> {
        if let JobRoot::Rootfs(root) = &job.root {
            return Err(RunFailure::Unsupported(root.clone()));
        }
        let env = job.environment(&job.out_dir, &job.tmp_dir, |_, host| host.to_path_buf());
        for (index, script) in job.scripts.iter().enumerate() {
            let stdout = log.try_clone().map_err(RunFailure::Spawn)?;
            let stderr = log.try_clone().map_err(RunFailure::Spawn)?;
            let status = Command::new("/bin/sh")
                .arg("-euc")
                .arg(script)
                .env_clear()
                .envs(&env)
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
