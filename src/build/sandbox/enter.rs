//! Entering the sandbox: the namespace and root setup, prepared as
//! NUL-terminated buffers before `fork` ([`Setup::new`]) and applied between
//! `fork` and `exec` ([`enter`]) through [`Sys`].
//!
//! The process `Command` forks unshares the namespaces and maps uid and gid
//! 0 to the invoking user; a new pid namespace only takes effect for
//! children, so it forks once more. Its child, pid 1 of the namespace,
//! builds the root and returns to `Command`, which execs `/bin/sh`; the
//! intermediate waits for it and exits with its status. A failing step is
//! reported on a pipe as (step index, errno) so the parent can name it.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::{c_int, c_ulong};

use super::plan::{HOSTNAME, MountOp};
use super::sys::Sys;

/// The index reported when the second `fork` fails.
const FORK_STEP: u32 = u32::MAX;

/// Everything the forked processes do, allocated up front.
#[derive(Debug)]
pub struct Setup {
    /// Run by the first child: namespaces and id maps.
    namespaces: Vec<Step>,
    /// Run by pid 1 of the new pid namespace: root, host name, network, cwd.
    root: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Unshare(c_int),
    WriteFile {
        path: CString,
        contents: Vec<u8>,
        create: bool,
    },
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    ReadOnly {
        target: CString,
        recursive: bool,
    },
    Mkdir(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Hostname(CString),
    LoopbackUp,
    PivotRoot(CString),
    Chdir(CString),
}

/// Who the invoking user is: uid and gid 0 inside map to these.
#[derive(Debug, Clone, Copy)]
pub struct HostIds {
    pub uid: u32,
    pub gid: u32,
}

impl Setup {
    /// `staging` is an empty host directory the new root is mounted on.
    pub fn new(ops: &[MountOp], staging: &Path, ids: HostIds, network: bool) -> io::Result<Setup> {
        let mut flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP;
        if !network {
            flags |= libc::CLONE_NEWNET;
        }
        let proc_write = |file: &str, contents: String| -> io::Result<Step> {
            Ok(Step::WriteFile {
                path: cstring(Path::new("/proc/self").join(file))?,
                contents: contents.into_bytes(),
                create: false,
            })
        };
        let namespaces = vec![
            Step::Unshare(flags),
            // Required before an unprivileged process may write gid_map.
            proc_write("setgroups", "deny".into())?,
            proc_write("uid_map", format!("0 {} 1", ids.uid))?,
            proc_write("gid_map", format!("0 {} 1", ids.gid))?,
        ];
        // Nothing mounted from here on may propagate back to the host.
        let mut root = vec![Step::Mount {
            source: None,
            target: cstring("/")?,
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
        }];
        for op in ops {
            prepare(op, staging, &mut root)?;
        }
        root.push(Step::Hostname(cstring(HOSTNAME)?));
        if !network {
            root.push(Step::LoopbackUp);
        }
        root.push(Step::PivotRoot(cstring(staging)?));
        root.push(Step::Chdir(cstring("/src")?));
        Ok(Setup { namespaces, root })
    }

    /// What step `index` (as [`enter`] reports it) does, for error messages.
    pub fn describe(&self, index: u32) -> String {
        if index == FORK_STEP {
            return "fork pid 1 of the new pid namespace".into();
        }
        let all = self.namespaces.iter().chain(&self.root);
        all.clone()
            .nth(index as usize)
            .map_or_else(|| format!("unknown step {index}"), |step| step.to_string())
    }
}

/// `op` as steps on the host, its targets under `staging`.
fn prepare(op: &MountOp, staging: &Path, steps: &mut Vec<Step>) -> io::Result<()> {
    let inside = |path: &Path| cstring(under(staging, path));
    let step = match op {
        MountOp::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => Step::Mount {
            source: source.as_deref().map(cstring).transpose()?,
            target: inside(target)?,
            fstype: fstype.map(cstring).transpose()?,
            flags: *flags,
            data: data.map(cstring).transpose()?,
        },
        MountOp::ReadOnly { target, recursive } => Step::ReadOnly {
            target: inside(target)?,
            recursive: *recursive,
        },
        MountOp::Mkdir { path } => {
            // mkdir -p, one step per missing ancestor: no allocation after fork.
            let mut ancestors: Vec<&Path> = path.ancestors().collect();
            ancestors.reverse();
            for dir in ancestors.into_iter().filter(|d| d.parent().is_some()) {
                steps.push(Step::Mkdir(inside(dir)?));
            }
            return Ok(());
        }
        MountOp::Symlink { target, link } => Step::Symlink {
            target: cstring(target)?,
            link: inside(link)?,
        },
        MountOp::WriteFile { path, contents } => Step::WriteFile {
            path: inside(path)?,
            contents: contents.clone().into_bytes(),
            create: true,
        },
    };
    steps.push(step);
    Ok(())
}

/// A sandbox path (`/x`) as a host path under the staging root.
fn under(staging: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(rel) if rel.as_os_str().is_empty() => staging.to_path_buf(),
        Ok(rel) => staging.join(rel),
        Err(_) => staging.join(path),
    }
}

fn cstring(path: impl AsRef<Path>) -> io::Result<CString> {
    let path = path.as_ref();
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path `{}` contains a NUL byte", path.display()),
        )
    })
}

impl Step {
    fn run(&self, sys: &dyn Sys) -> io::Result<()> {
        match self {
            Step::Unshare(flags) => sys.unshare(*flags),
            Step::WriteFile {
                path,
                contents,
                create,
            } => sys.write_file(path, contents, *create),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => sys.mount(
                source.as_deref(),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            ),
            Step::ReadOnly { target, recursive } => sys.read_only(target, *recursive),
            Step::Mkdir(path) => sys.mkdir(path),
            Step::Symlink { target, link } => sys.symlink(target, link),
            Step::Hostname(name) => sys.sethostname(name),
            Step::LoopbackUp => sys.loopback_up(),
            Step::PivotRoot(root) => sys.pivot_root(root),
            Step::Chdir(path) => sys.chdir(path),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::Unshare(_) => write!(
                f,
                "unshare the user, mount, pid, ipc, uts and net namespaces"
            ),
            Step::WriteFile { path, .. } => write!(f, "write `{}`", s(path)),
            Step::Mount {
                source,
                target,
                fstype,
                ..
            } => {
                let what = fstype.as_ref().or(source.as_ref()).map_or("-".into(), s);
                write!(f, "mount `{what}` on `{}`", s(target))
            }
            Step::ReadOnly { target, .. } => write!(f, "make `{}` read-only", s(target)),
            Step::Mkdir(path) => write!(f, "create directory `{}`", s(path)),
            Step::Symlink { link, .. } => write!(f, "create symlink `{}`", s(link)),
            Step::Hostname(_) => write!(f, "set the host name"),
            Step::LoopbackUp => write!(f, "bring up the loopback interface"),
            Step::PivotRoot(root) => write!(f, "pivot_root into `{}`", s(root)),
            Step::Chdir(path) => write!(f, "change directory to `{}`", s(path)),
        }
    }
}

/// Runs `steps` in order; the index of the first that fails, and why.
fn apply(steps: &[Step], offset: usize, sys: &dyn Sys) -> Result<(), (u32, io::Error)> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = step.run(sys) {
            let index = u32::try_from(offset + i).unwrap_or(FORK_STEP - 1);
            return Err((index, e));
        }
    }
    Ok(())
}

/// The body of `Command::pre_exec`: returns (to exec) only in pid 1 of the
/// new namespaces; the intermediate process never returns.
///
/// Runs between `fork` and `exec`: raw system calls only, no allocation.
pub fn enter(setup: &Setup, sys: &dyn Sys, report: RawFd) -> io::Result<()> {
    // The build dies with the kiln thread that started it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    apply(&setup.namespaces, 0, sys).map_err(|(i, e)| reported(report, i, e))?;
    // SAFETY: this process is single-threaded (a fresh fork).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(reported(report, FORK_STEP, io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let offset = setup.namespaces.len();
        return apply(&setup.root, offset, sys).map_err(|(i, e)| reported(report, i, e));
    }
    wait_and_exit(pid)
}

/// Writes `(index, errno)` to the report pipe; returns `e` for `pre_exec`.
fn reported(report: RawFd, index: u32, e: io::Error) -> io::Error {
    let errno = e.raw_os_error().unwrap_or(0);
    let mut record = [0u8; 8];
    record[..4].copy_from_slice(&index.to_le_bytes());
    record[4..].copy_from_slice(&errno.to_le_bytes());
    // SAFETY: `record` is 8 live bytes; a pipe write this small is atomic.
    // Nothing to do if it fails: `pre_exec` still reports the errno.
    unsafe { libc::write(report, record.as_ptr().cast(), record.len()) };
    e
}

/// Decodes what [`reported`] wrote, if anything.
pub fn decode_report(record: &[u8]) -> Option<(u32, io::Error)> {
    let index = u32::from_le_bytes(record.get(..4)?.try_into().ok()?);
    let errno = i32::from_le_bytes(record.get(4..8)?.try_into().ok()?);
    Some((index, io::Error::from_raw_os_error(errno)))
}

/// The intermediate process: waits for pid 1 and exits as it did.
fn wait_and_exit(pid: libc::pid_t) -> ! {
    // Drop our copies of `Command`'s exec-error pipe and the report pipe,
    // so the parent learns at pid 1's exec, not at its exit, that it started.
    // SAFETY: closes descriptors this process no longer uses.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a live c_int.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    // SAFETY: plain system calls; `_exit` skips the parent's atexit handlers.
    unsafe {
        if libc::WIFSIGNALED(status) {
            // Die of the same signal, so the parent sees the same status.
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
#[path = "enter_tests.rs"]
mod tests;
