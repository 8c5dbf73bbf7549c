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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use libc::c_int;

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
    /// An empty host directory the sandbox mounts the job's root on.
    pub root_dir: PathBuf,
    /// Used stages: environment variable name → store path (read-only).
    pub deps: BTreeMap<String, PathBuf>,
    /// Host directories holding the declared tools, in PATH order.
    pub tool_dirs: Vec<PathBuf>,
    /// Everything else the scripts see: the stage's `env`, the args it
    /// mentions, and the fixed `HOME`, `TZ`, `LC_ALL`, `SOURCE_DATE_EPOCH`.
    pub env: BTreeMap<String, String>,
    /// Only fixed-output fetches get the network.
    pub network: bool,
    /// How long all the scripts together may run.
    pub timeout: Option<Duration>,
    /// `cache` directories: mounted read-write at their paths, kept by
    /// the store between builds. Only the sandbox can mount them.
    pub caches: Vec<JobCache>,
}

/// One `cache` of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCache {
    /// Where the scripts see it (absolute, outside kiln's own mounts).
    pub path: PathBuf,
    /// The host directory, the store's (or an empty one of the build's).
    pub dir: PathBuf,
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
    #[error("script {index} ran longer than its timeout ({}s) and was killed", .after.as_secs())]
    TimedOut { index: usize, after: Duration },
    #[error("failed to start `/bin/sh`")]
    Spawn(#[source] std::io::Error),
    #[error("this executor cannot run a stage from an image root (`{}`)", .0.display())]
    Unsupported(PathBuf),
    #[error("`cache` needs the sandbox to mount `{}`, and this build runs without it", .0.display())]
    CacheWithoutSandbox(PathBuf),
    #[error("Cannot mount the cache at `{}`: {why}", .path.display())]
    CachePath { path: PathBuf, why: String },
    #[error("the sandbox cannot start: {0}")]
    NoSandbox(String),
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
        // Without mounts, `/tmp/go-cache` would be the host's own.
        if let Some(cache) = job.caches.first() {
            return Err(RunFailure::CacheWithoutSandbox(cache.path.clone()));
        }
        let env = job.environment(&job.out_dir, &job.tmp_dir, |_, host| host.to_path_buf());
        let deadline = Deadline::new(job.timeout);
        for (index, script) in job.scripts.iter().enumerate() {
            let stdout = log.try_clone().map_err(RunFailure::Spawn)?;
            let stderr = log.try_clone().map_err(RunFailure::Spawn)?;
            let child = Command::new("/bin/sh")
                .arg("-euc")
                .arg(script)
                .env_clear()
                .envs(&env)
                .current_dir(&job.work_dir)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                // Its own process group, so a timeout kills what it started.
                .process_group(0)
                .spawn()
                .map_err(RunFailure::Spawn)?;
            let status = deadline.wait(child, index, |child| {
                // SAFETY: kill with integer arguments; the group is the
                // child's, whose pid is not reaped yet.
                unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
            })?;
            if !status.success() {
                return Err(RunFailure::Script { index, status });
            }
        }
        Ok(())
    }
}

/// When a job's time is up, if it has a timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<(Instant, Duration)>);

impl Deadline {
    pub fn new(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| (Instant::now(), t)))
    }

    /// Waits for `child`; once the time is up, `kill`s it, reaps it and
    /// fails with [`RunFailure::TimedOut`].
    pub fn wait(
        self,
        mut child: Child,
        index: usize,
        kill: impl FnOnce(&Child),
    ) -> Result<ExitStatus, RunFailure> {
        let Some((start, timeout)) = self.0 else {
            return child.wait().map_err(RunFailure::Spawn);
        };
        let left = timeout.saturating_sub(start.elapsed());
        if exited_within(&child, left).map_err(RunFailure::Spawn)? {
            return child.wait().map_err(RunFailure::Spawn);
        }
        kill(&child);
        child.wait().map_err(RunFailure::Spawn)?;
        Err(RunFailure::TimedOut {
            index,
            after: timeout,
        })
    }
}

/// Whether `child` exits within `time`: a poll on its pidfd, which stays
/// valid (and its pid unused) until the child is reaped.
fn exited_within(child: &Child, time: Duration) -> std::io::Result<bool> {
    // SAFETY: pidfd_open with integer arguments; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
    let fd = c_int::try_from(fd).map_err(|_| std::io::Error::other("bad pidfd"))?;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let deadline = Instant::now() + time;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = c_int::try_from(left.as_millis().saturating_add(1)).unwrap_or(c_int::MAX);
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut poll, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n == 0 && Instant::now() >= deadline {
            return Ok(false);
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
    }
}
