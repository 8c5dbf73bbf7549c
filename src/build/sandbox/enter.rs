//! Entering the sandbox: the namespace and root setup, prepared as
//! NUL-terminated buffers before `fork` ([`Setup::new`]) and applied between
//! `fork` and `exec` ([`enter`]) through [`Sys`].
//!
//! Four processes, each doing what only it can:
//!
//! 1. the child `Command` forks stays in the caller's namespaces and writes
//!    the id maps of
//! 2. its child, which unshares the namespaces (its uid 0 is the caller's
//!    uid; when kiln runs as root, uids 1 to 65536 are the unprivileged
//!    range from [`SANDBOX_HOST_ID`] as well); a new pid namespace only
//!    takes effect for children, so it forks
//! 3. pid 1 of the namespace: kiln's init. It builds the root, pivots into
//!    it, makes itself undumpable, forks, and writes the id maps of
//! 4. the script's process, which drops to the unprivileged id and enters a
//!    user and mount namespace of its own (every mount above is now locked:
//!    it cannot be remounted, unmounted or made writable) where it is uid 0,
//!    starts a new session with no terminal, sets no-new-privs, marks every
//!    inherited descriptor close-on-exec and returns to `Command`, which
//!    execs `/bin/sh`.
//!
//! Each of 1–3 waits for its child and exits as it did. Each is killed with
//! its parent (`PR_SET_PDEATHSIG`), so killing the first kills pid 1, and
//! with it every process of the namespace: the script cannot undo that, as
//! it runs none of them. A failing step is reported on a pipe as (step
//! index, errno) so the parent can name it.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::{c_int, c_ulong};

use super::plan::{HOSTNAME, MountOp};
use super::sys::Sys;

/// The host uid and gid a script runs as when kiln runs as root: an id no
/// account uses (the start of Nix's range for automatically allocated build
/// users), so the script owns nothing on the host but its own directories.
pub const SANDBOX_HOST_ID: u32 = 872_415_232;

/// Indices reported for the three forks, counted down from `u32::MAX`.
const FORKS: [&str; 3] = [
    "fork into the new namespaces",
    "fork pid 1 of the new pid namespace",
    "fork the script's process",
];

/// Everything the forked processes do, allocated up front, in the order
/// they do it (which is how steps are numbered in failure reports).
#[derive(Debug)]
pub struct Setup {
    /// Run by the namespace child: unshare.
    namespaces: Vec<Step>,
    /// Written by its parent into the child's `/proc/<pid>/`.
    maps: Maps,
    /// Run by pid 1: root, host name, network, cwd.
    root: Vec<Step>,
    /// Run by the script's process: its own id and namespaces.
    script_ns: Vec<Step>,
    /// Written by pid 1 into the script's `/proc/<pid>/`.
    script_maps: Maps,
    /// Run by the script's process just before `exec`.
    lockdown: Vec<Step>,
    /// Where kiln's own argv lies in memory: pid 1 (a fork of kiln)
    /// blanks it, so `/proc/1/cmdline` does not show the script every
    /// `--arg` kiln was given.
    argv: Option<(usize, usize)>,
}

/// `(file, contents)` to write into a child's `/proc/<pid>/`, in order.
type Maps = Vec<(&'static CStr, Vec<u8>)>;

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
    Dumpable(bool),
    BecomeUser {
        uid: u32,
        gid: u32,
    },
    NewSession,
    NoNewPrivs,
    CloseInheritedFds,
}

/// Who the invoking user is.
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
        // The script shares pid 1's uid: undumpable, pid 1 cannot be traced.
        root.push(Step::Dumpable(false));
        let rooted = ids.uid == 0;
        let mut script_ns = vec![Step::Dumpable(true)];
        if rooted {
            script_ns.push(Step::BecomeUser { uid: 1, gid: 1 });
        }
        script_ns.push(Step::Unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS));
        Ok(Setup {
            namespaces: vec![Step::Unshare(flags)],
            maps: outer_maps(ids),
            root,
            script_ns,
            script_maps: script_maps(rooted),
            lockdown: vec![Step::NewSession, Step::NoNewPrivs, Step::CloseInheritedFds],
            argv: argv_area(),
        })
    }

    /// What step `index` (as [`enter`] reports it) does, for error messages.
    pub fn describe(&self, index: u32) -> String {
        if let Some(fork) = (u32::MAX - index)
            .try_into()
            .ok()
            .and_then(|i: usize| FORKS.get(i))
        {
            return (*fork).to_owned();
        }
        let steps = |steps: &[Step]| steps.iter().map(Step::to_string).collect::<Vec<_>>();
        let maps = |whose: &str, maps: &Maps| {
            (maps.iter())
                .map(|(file, _)| format!("write the {whose} `{}`", file.to_string_lossy()))
                .collect::<Vec<_>>()
        };
        [
            steps(&self.namespaces),
            maps("namespace's", &self.maps),
            steps(&self.root),
            steps(&self.script_ns),
            maps("script's", &self.script_maps),
            steps(&self.lockdown),
        ]
        .concat()
        .into_iter()
        .nth(index as usize)
        .unwrap_or_else(|| format!("unknown step {index}"))
    }

    /// The index of the first step of each phase, in order.
    fn offsets(&self) -> [usize; 6] {
        let lens = [
            self.namespaces.len(),
            self.maps.len(),
            self.root.len(),
            self.script_ns.len(),
            self.script_maps.len(),
            self.lockdown.len(),
        ];
        let mut at = 0;
        lens.map(|len| {
            let start = at;
            at += len;
            start
        })
    }
}

/// The maps of the namespace all kiln's processes share. Its uid 0 is the
/// caller: as root, kiln sets up the root with the right to read what root
/// can, and maps uids 1 to 65536 to an unprivileged range from
/// [`SANDBOX_HOST_ID`] for the script. An unprivileged caller may only map
/// itself.
fn outer_maps(ids: HostIds) -> Maps {
    if ids.uid == 0 {
        let map = format!("0 0 1\n1 {SANDBOX_HOST_ID} {SCRIPT_IDS}\n").into_bytes();
        vec![(c"uid_map", map.clone()), (c"gid_map", map)]
    } else {
        vec![
            // Required before an unprivileged process may write gid_map.
            (c"setgroups", b"deny".to_vec()),
            (c"uid_map", format!("0 {} 1", ids.uid).into_bytes()),
            (c"gid_map", format!("0 {} 1", ids.gid).into_bytes()),
        ]
    }
}

/// How many ids the script has when kiln runs as root: as many as a
/// rootless container, so `tar` and `chown` in a build can give files to
/// any of 0–65535.
const SCRIPT_IDS: u32 = 65536;

/// The script's own namespace: its uid 0 is the outer uid 1 (the first of
/// the unprivileged range) as root, the caller otherwise.
fn script_maps(rooted: bool) -> Maps {
    let map = if rooted {
        format!("0 1 {SCRIPT_IDS}")
    } else {
        "0 0 1".to_owned()
    };
    vec![
        (c"uid_map", map.clone().into_bytes()),
        (c"gid_map", map.into_bytes()),
    ]
}

/// kiln's argv in memory: fields 48 and 49 (`arg_start`, `arg_end`) of
/// `/proc/self/stat`, after the parenthesised command name.
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, fields) = stat.rsplit_once(") ")?;
    let mut fields = fields.split(' ').skip(45);
    let start = fields.next()?.parse().ok()?;
    let end: usize = fields.next()?.parse().ok()?;
    (start > 0 && end > start).then_some((start, end))
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
        MountOp::Protect { target } => {
            let target = inside(target)?;
            steps.push(Step::Mount {
                source: Some(target.clone()),
                target: target.clone(),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            });
            Step::ReadOnly {
                target,
                recursive: true,
            }
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
            Step::Dumpable(dumpable) => sys.set_dumpable(*dumpable),
            Step::BecomeUser { uid, gid } => sys.become_user(*uid, *gid, true),
            Step::NewSession => sys.new_session(),
            Step::NoNewPrivs => sys.no_new_privs(),
            Step::CloseInheritedFds => sys.close_inherited_fds(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::Unshare(flags) if flags & libc::CLONE_NEWPID == 0 => {
                write!(f, "enter a user and mount namespace of the script's own")
            }
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
            Step::Dumpable(true) => write!(f, "make the script's process dumpable"),
            Step::Dumpable(false) => write!(f, "make pid 1 undumpable"),
            Step::BecomeUser { uid, gid } => write!(f, "switch to uid {uid} and gid {gid}"),
            Step::NewSession => write!(f, "start a new session"),
            Step::NoNewPrivs => write!(f, "set no-new-privs"),
            Step::CloseInheritedFds => write!(f, "mark inherited descriptors close-on-exec"),
        }
    }
}

/// Runs `steps` in order; the index of the first that fails, and why.
fn apply(steps: &[Step], offset: usize, sys: &dyn Sys) -> Result<(), (u32, io::Error)> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = step.run(sys) {
            return Err((step_index(offset + i), e));
        }
    }
    Ok(())
}

fn step_index(i: usize) -> u32 {
    let last = u32::MAX - FORKS.len() as u32;
    u32::try_from(i).map_or(last, |i| i.min(last))
}

/// The pipes [`enter`] tells the parent through.
#[derive(Debug, Clone, Copy)]
pub struct Pipes {
    /// A failing step: `(index, errno)`, see [`decode_report`].
    pub report: RawFd,
    /// The host pid of pid 1, as 4 little-endian bytes: killing it kills
    /// the whole namespace, and the processes above it exit only once
    /// every process in it is gone.
    pub init_pid: RawFd,
}

/// The body of `Command::pre_exec`: returns (to exec) only in the script's
/// process; the three above it never return.
///
/// Runs between `fork` and `exec`: raw system calls only, no allocation.
pub fn enter(setup: &Setup, sys: &dyn Sys, pipes: Pipes) -> io::Result<()> {
    let report = pipes.report;
    let at = setup.offsets();
    // The build dies with the kiln thread that started it.
    kill_with_parent();
    let namespaces = (&setup.namespaces[..], at[0]);
    let maps = (&setup.maps[..], at[1]);
    fork_mapped(namespaces, maps, 0, sys, report)?;
    let fail = |(i, e): (u32, io::Error)| reported(report, i, e);
    let pid1 = fork().map_err(|e| fail((u32::MAX - 1, e)))?;
    if pid1 != 0 {
        let bytes = pid1.to_le_bytes();
        // SAFETY: writes 4 live bytes; a pipe write this small is atomic.
        unsafe { libc::write(pipes.init_pid, bytes.as_ptr().cast(), bytes.len()) };
        wait_and_exit(pid1);
    }
    kill_with_parent();
    if let Some((start, end)) = setup.argv {
        // SAFETY: this process's own argv strings, on its own stack (a
        // copy-on-write copy of kiln's): writable, and read by no one here.
        unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
    apply(&setup.root, at[2], sys).map_err(fail)?;
    let script_ns = (&setup.script_ns[..], at[3]);
    let script_maps = (&setup.script_maps[..], at[4]);
    fork_mapped(script_ns, script_maps, 2, sys, report)?;
    apply(&setup.lockdown, at[5], sys).map_err(fail)
}

/// Forks a child that runs `unshare` (steps and the index of the first),
/// then waits while this process writes `maps` into its `/proc/<pid>/`.
/// Returns in the child; the parent waits for it and exits as it did.
fn fork_mapped(
    (unshare, unshare_at): (&[Step], usize),
    (maps, maps_at): (&[(&'static CStr, Vec<u8>)], usize),
    fork_index: u32,
    sys: &dyn Sys,
    report: RawFd,
) -> io::Result<()> {
    let fail = |(i, e): (u32, io::Error)| reported(report, i, e);
    let forking = |e| fail((u32::MAX - fork_index, e));
    // Told by the child once it has unshared; tells it the maps are written.
    let ready = pipe().map_err(forking)?;
    let go = pipe().map_err(forking)?;
    let child = fork().map_err(forking)?;
    if child == 0 {
        kill_with_parent();
        close(&[ready[0], go[1]]);
        apply(unshare, unshare_at, sys).map_err(fail)?;
        signal(ready[1]);
        if !wait_for(go[0]) {
            // The parent failed and reported why.
            // SAFETY: `_exit` skips the parent's atexit handlers.
            unsafe { libc::_exit(1) };
        }
        close(&[ready[1], go[0]]);
        return Ok(());
    }
    close(&[ready[1], go[0]]);
    if wait_for(ready[0]) {
        write_maps(maps, sys, child).map_err(|(i, e)| fail((step_index(maps_at + i), e)))?;
        signal(go[1]);
    }
    wait_and_exit(child)
}

/// Writes a child's id maps; the index of a failing one.
fn write_maps(
    maps: &[(&'static CStr, Vec<u8>)],
    sys: &dyn Sys,
    child: libc::pid_t,
) -> Result<(), (usize, io::Error)> {
    for (i, (file, contents)) in maps.iter().enumerate() {
        let mut buf = [0u8; 64];
        let path = proc_path(&mut buf, child, file);
        sys.write_file(path, contents, false).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// `/proc/<pid>/<file>` in `buf`, without allocating.
fn proc_path<'b>(buf: &'b mut [u8; 64], pid: libc::pid_t, file: &CStr) -> &'b CStr {
    let mut digits = [0u8; 10];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = 0;
    let mut push = |bytes: &[u8]| {
        let end = (at + bytes.len()).min(buf.len() - 1);
        buf[at..end].copy_from_slice(&bytes[..end - at]);
        at = end;
    };
    push(b"/proc/");
    for d in digits[..len].iter().rev() {
        push(&[*d]);
    }
    push(b"/");
    push(file.to_bytes());
    CStr::from_bytes_until_nul(&buf[..]).expect("kiln bug: the buffer ends with NUL")
}

fn kill_with_parent() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the calling process is single-threaded (a fresh fork).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

fn pipe() -> io::Result<[c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fds)
}

fn close(fds: &[c_int]) {
    for &fd in fds {
        // SAFETY: each is a descriptor of this process, closed once.
        unsafe { libc::close(fd) };
    }
}

fn signal(fd: c_int) {
    // SAFETY: writes one byte from a live buffer.
    unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}

/// Whether the other end signalled (rather than closed).
fn wait_for(fd: c_int) -> bool {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reads one byte into a live buffer.
        let n = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
        if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return n == 1;
        }
    }
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

/// Waits for `pid`, reaping any other child on the way (pid 1 inherits
/// every orphan of the namespace), and exits as it did.
fn wait_and_exit(pid: libc::pid_t) -> ! {
    // Drop our copies of `Command`'s exec-error pipe and the report pipe,
    // so the parent learns at the script's exec, not at its exit, that it
    // started.
    // SAFETY: closes descriptors this process no longer uses.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a live c_int.
        let ret = unsafe { libc::waitpid(-1, &mut status, 0) };
        if ret == pid {
            break;
        }
        if ret < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // No child left to wait for: nothing to report but failure.
            // SAFETY: `_exit` skips the parent's atexit handlers.
            unsafe { libc::_exit(127) };
        }
    }
    // SAFETY: plain system calls; `_exit` skips the parent's atexit handlers.
    unsafe {
        if libc::WIFSIGNALED(status) {
            // Die of the same signal, so the parent sees the same status.
            // pid 1 cannot signal itself: it exits with 128 + the signal,
            // as a shell reports such a status.
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
