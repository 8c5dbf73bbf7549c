//! [`Sandbox`]: the [`Executor`] that runs each script in fresh namespaces
//! (spawns processes).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use super::enter::{HostIds, Setup, decode_report, enter};
use super::layout::layout;
use super::plan::{environment, plan_mounts};
use super::sys::RealSys;
use crate::build::{Executor, Job, RunFailure};

/// Runs scripts as Nix does: uid 0 in new user, mount, pid, ipc, uts and
/// (unless the job may use it) network namespaces, on a read-only root
/// where only `/out`, `/src` and `/tmp` are writable.
///
/// Declared tool directories are bound only into a host root (an image
/// brings its own tools, linked against its own libraries); `PATH` lists
/// them either way, as with [`crate::build::Local`].
///
/// Made by [`Sandbox::new`] (or [`super::executor`]), which checks that
/// this machine allows it.
#[derive(Debug)]
pub struct Sandbox {
    _probed: (),
}

/// A sandbox step that failed before the script could start.
#[derive(Debug, thiserror::Error)]
#[error("Sandbox setup failed: could not {step}")]
pub struct SetupError {
    pub step: String,
    #[source]
    pub source: io::Error,
}

impl Sandbox {
    /// Skips the availability probe: for the probe itself.
    pub(super) fn unchecked() -> Sandbox {
        Sandbox { _probed: () }
    }
}

impl Executor for Sandbox {
    fn run(&self, job: &Job<'_>, log: &File) -> Result<(), RunFailure> {
        let ops = plan_mounts(job, &layout(job).map_err(RunFailure::Spawn)?);
        // The root is assembled on a tmpfs mounted here, in the child's
        // mount namespace only: the host sees an empty directory.
        let staging = tempfile::Builder::new()
            .prefix("kiln-root-")
            .tempdir()
            .map_err(RunFailure::Spawn)?;
        // SAFETY: getuid and getgid cannot fail.
        let ids = unsafe {
            HostIds {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        };
        let setup = Setup::new(&ops, staging.path(), ids, job.network);
        let setup = Arc::new(setup.map_err(RunFailure::Spawn)?);
        let env = environment(job);
        for (index, script) in job.scripts.iter().enumerate() {
            let status = run_script(&setup, script, &env, log)?;
            if !status.success() {
                return Err(RunFailure::Script { index, status });
            }
        }
        Ok(())
    }
}

fn run_script(
    setup: &Arc<Setup>,
    script: &str,
    env: &BTreeMap<String, String>,
    log: &File,
) -> Result<ExitStatus, RunFailure> {
    let (report_read, report_write) = report_pipe().map_err(RunFailure::Spawn)?;
    let stdout = log.try_clone().map_err(RunFailure::Spawn)?;
    let stderr = log.try_clone().map_err(RunFailure::Spawn)?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-euc")
        .arg(script)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child_setup = Arc::clone(setup);
    let report = report_write.as_raw_fd();
    // SAFETY: `enter` runs between fork and exec and only makes raw system
    // calls on buffers `Setup::new` allocated before the fork.
    unsafe {
        cmd.pre_exec(move || enter(&child_setup, &RealSys, report));
    }
    let status = cmd.status();
    // The children's copies are closed by now (exec or exit): with ours
    // gone too, the read below cannot block.
    drop(report_write);
    status.map_err(|e| {
        let mut record = Vec::new();
        let _ = File::from(report_read).read_to_end(&mut record);
        RunFailure::Spawn(match decode_report(&record) {
            Some((index, source)) => io::Error::other(SetupError {
                step: setup.describe(index),
                source,
            }),
            None => e,
        })
    })
}

/// A close-on-exec pipe: (read end, write end).
fn report_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
