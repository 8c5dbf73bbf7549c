//! [`Sandbox`]: the [`Executor`] that runs each script in fresh namespaces
//! (spawns processes).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use super::enter::{Pipes, decode_report, enter};
use super::layout::layout;
use super::plan::{cache_conflict, environment, plan_mounts};
use super::setup::{HostIds, SANDBOX_HOST_ID, Setup};
use super::sys::RealSys;
use crate::build::{Deadline, Executor, Job, JobRoot, RunFailure};

/// Runs scripts as Nix does: in new user, mount, pid, ipc, uts and (unless
/// the job may use it) network namespaces, on a read-only root where only
/// `/out`, `/src` and `/tmp` are writable, as uid 0 of a user namespace of
/// their own that maps to an unprivileged host id (see [`super::enter`]).
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
        let layout = layout(job).map_err(RunFailure::Spawn)?;
        if let Some((path, why)) = cache_conflict(job, &layout) {
            return Err(RunFailure::CachePath { path, why });
        }
        let ops = plan_mounts(job, &layout);
        // SAFETY: getuid and getgid cannot fail.
        let ids = unsafe {
            HostIds {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        };
        if ids.uid == 0 {
            give_to_sandbox(job).map_err(RunFailure::Spawn)?;
        }
        // The root is assembled on a tmpfs mounted on `root_dir` in the
        // child's mount namespace only: the host sees an empty directory.
        let setup = Setup::new(&ops, &job.root_dir, ids, job.network);
        let setup = Arc::new(setup.map_err(RunFailure::Spawn)?);
        let env = environment(job);
        let deadline = Deadline::new(job.timeout);
        for (index, script) in job.scripts.iter().enumerate() {
            let status = run_script(&setup, script, &env, log, deadline, index)?;
            if !status.success() {
                return Err(RunFailure::Script { index, status });
            }
        }
        Ok(())
    }
}

/// When kiln runs as root the script runs as [`SANDBOX_HOST_ID`]: it gets
/// the directories it may write (the copy of its sources, `$out`,
/// `$TMPDIR`) and, as root in an image owns its files, the image's root
/// filesystem (read-only to it all the same).
fn give_to_sandbox(job: &Job<'_>) -> io::Result<()> {
    let ids = (SANDBOX_HOST_ID, SANDBOX_HOST_ID);
    let give = |dir: &Path| crate::tree::give_tree(dir, ids).map_err(io::Error::other);
    give(&job.out_dir)?;
    give(&job.tmp_dir)?;
    give(&job.work_dir)?;
    for cache in &job.caches {
        // Its top only: what is inside, the sandbox's id wrote. A symlink
        // it left is never followed (`lchown`).
        let meta = fs_err::symlink_metadata(&cache.dir)?;
        if meta.uid() != SANDBOX_HOST_ID {
            std::os::unix::fs::lchown(&cache.dir, Some(ids.0), Some(ids.1))?;
        }
    }
    if let JobRoot::Rootfs(rootfs) = &job.root {
        // Its top directory changes owner last: a root filesystem it
        // belongs to has been given whole, by this run or an earlier one.
        if fs_err::symlink_metadata(rootfs)?.uid() != SANDBOX_HOST_ID {
            give(rootfs)?;
        }
    }
    Ok(())
}

fn run_script(
    setup: &Arc<Setup>,
    script: &str,
    env: &BTreeMap<String, String>,
    log: &File,
    deadline: Deadline,
    index: usize,
) -> Result<ExitStatus, RunFailure> {
    let (report_read, report_write) = cloexec_pipe().map_err(RunFailure::Spawn)?;
    let (init_read, init_write) = cloexec_pipe().map_err(RunFailure::Spawn)?;
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
    let pipes = Pipes {
        report: report_write.as_raw_fd(),
        init_pid: init_write.as_raw_fd(),
    };
    // SAFETY: `enter` runs between fork and exec and only makes raw system
    // calls on buffers `Setup::new` allocated before the fork.
    unsafe {
        cmd.pre_exec(move || enter(&child_setup, &RealSys, pipes));
    }
    let child = cmd.spawn();
    // The children's copies are closed by now (exec or exit): with ours
    // gone too, the reads below cannot block.
    drop(report_write);
    drop(init_write);
    let child = child.map_err(|e| {
        let mut record = Vec::new();
        let _ = File::from(report_read).read_to_end(&mut record);
        RunFailure::Spawn(match decode_report(&record) {
            Some((index, source)) => io::Error::other(SetupError {
                step: setup.describe(index),
                source,
            }),
            None => e,
        })
    })?;
    let init = init_pidfd(init_read);
    deadline.wait(child, index, |child| match init {
        // Killing pid 1 kills every process of the namespace; the child
        // exits once they are all gone.
        // SAFETY: a signal through a pidfd this function owns.
        Some(fd) => unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        },
        // Killing the child kills pid 1 through each one's parent-death
        // signal, without waiting for the namespace to empty.
        // SAFETY: kill with integer arguments; the child is not reaped yet.
        None => unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        },
    })
}

/// A pidfd for pid 1 of the namespace, from the pid [`enter`] reported.
/// It is alive: the script it waits for has just been started.
fn init_pidfd(pipe: OwnedFd) -> Option<OwnedFd> {
    let mut bytes = [0u8; 4];
    File::from(pipe).read_exact(&mut bytes).ok()?;
    let pid = libc::pid_t::from_le_bytes(bytes);
    // SAFETY: pidfd_open with integer arguments; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    let fd = std::os::fd::RawFd::try_from(fd)
        .ok()
        .filter(|fd| *fd >= 0)?;
    // SAFETY: pidfd_open returned a fresh descriptor nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
