//! Entering the sandbox: the [`Setup`] applied between `fork` and `exec`
//! ([`enter`]), raw system calls only.
//!
//! Four processes, each doing what only it can:
//!
//! 1. the child `Command` forks stays in the caller's namespaces and writes
//!    the id maps of
//! 2. its child, which unshares the namespaces (its uid 0 is the caller's
//!    uid; when kiln runs as root, uids 1 to 65536 are the unprivileged
//!    range from [`super::setup::SANDBOX_HOST_ID`] as well); a new pid namespace only
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

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use libc::c_int;

use super::setup::{Setup, Step, apply, step_index};
use super::sys::Sys;

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
