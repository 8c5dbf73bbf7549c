//! Every privileged call the sandbox makes, behind one trait: [`RealSys`]
//! calls the kernel, [`Recording`] (tests) writes the calls down, so the
//! setup sequence is tested without privileges.
//!
//! [`RealSys`] runs between `fork` and `exec` in a process forked from a
//! multi-threaded one: it only makes raw system calls on buffers prepared
//! beforehand, never allocates, never takes a lock.

use std::ffi::CStr;
use std::io;

use libc::{c_int, c_ulong};

pub trait Sys {
    fn unshare(&self, flags: c_int) -> io::Result<()>;
    /// Writes `contents` to `path`, creating it (mode 0644) if `create`.
    fn write_file(&self, path: &CStr, contents: &[u8], create: bool) -> io::Result<()>;
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()>;
    /// Makes the mount at `target` read-only, nosuid and nodev, keeping its
    /// other flags.
    fn read_only(&self, target: &CStr, recursive: bool) -> io::Result<()>;
    /// Creates a directory (mode 0755); one that exists is fine.
    fn mkdir(&self, path: &CStr) -> io::Result<()>;
    fn symlink(&self, target: &CStr, link: &CStr) -> io::Result<()>;
    fn sethostname(&self, name: &CStr) -> io::Result<()>;
    /// Brings the loopback interface of the current network namespace up.
    fn loopback_up(&self) -> io::Result<()>;
    /// Makes `new_root` the root and detaches the old one.
    fn pivot_root(&self, new_root: &CStr) -> io::Result<()>;
    fn chdir(&self, path: &CStr) -> io::Result<()>;
    /// Drops every supplementary group, then takes `uid` and `gid` for real,
    /// effective and saved ids, staying dumpable (so it can still write its
    /// own `/proc/self` maps) and still killed with its parent.
    fn become_user(&self, uid: u32, gid: u32, drop_groups: bool) -> io::Result<()>;
    /// Whether other processes of the same user may ptrace this one or read
    /// its `/proc` files.
    fn set_dumpable(&self, dumpable: bool) -> io::Result<()>;
    /// Starts a new session: no controlling terminal.
    fn new_session(&self) -> io::Result<()>;
    /// `PR_SET_NO_NEW_PRIVS`: no exec can ever add privileges.
    fn no_new_privs(&self) -> io::Result<()>;
    /// Marks every descriptor above 2 close-on-exec.
    fn close_inherited_fds(&self) -> io::Result<()>;
}

pub struct RealSys;

fn check(ret: c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ptr_or_null(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

impl Sys for RealSys {
    fn unshare(&self, flags: c_int) -> io::Result<()> {
        // SAFETY: unshare takes no pointers.
        check(unsafe { libc::unshare(flags) })
    }

    fn write_file(&self, path: &CStr, contents: &[u8], create: bool) -> io::Result<()> {
        let create = if create {
            libc::O_CREAT | libc::O_TRUNC
        } else {
            0
        };
        let flags = libc::O_WRONLY | libc::O_CLOEXEC | create;
        // SAFETY: `path` is NUL-terminated; the fd is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644 as libc::c_uint) };
        check(fd)?;
        let mut rest = contents;
        let mut result = Ok(());
        while !rest.is_empty() {
            // SAFETY: `rest` is a live slice of `rest.len()` bytes.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n < 0 {
                result = Err(io::Error::last_os_error());
                break;
            }
            rest = &rest[n.unsigned_abs()..];
        }
        // SAFETY: `fd` was opened above and is closed once.
        unsafe { libc::close(fd) };
        result
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()> {
        let data = ptr_or_null(data).cast();
        // SAFETY: every pointer is NUL-terminated or null.
        check(unsafe {
            libc::mount(
                ptr_or_null(source),
                target.as_ptr(),
                ptr_or_null(fstype),
                flags,
                data,
            )
        })
    }

    fn read_only(&self, target: &CStr, recursive: bool) -> io::Result<()> {
        match mount_setattr_rdonly(target, recursive) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => remount_rdonly(target),
            other => other,
        }
    }

    fn mkdir(&self, path: &CStr) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated.
        match check(unsafe { libc::mkdir(path.as_ptr(), 0o755) }) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> io::Result<()> {
        // SAFETY: both are NUL-terminated.
        check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
    }

    fn sethostname(&self, name: &CStr) -> io::Result<()> {
        let bytes = name.to_bytes();
        // SAFETY: `bytes` is a live slice of `bytes.len()` bytes.
        check(unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) })
    }

    fn loopback_up(&self) -> io::Result<()> {
        // SAFETY: a socket used for one ioctl on a zeroed, named ifreq.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            check(fd)?;
            let mut req: libc::ifreq = std::mem::zeroed();
            req.ifr_name[0] = b'l' as libc::c_char;
            req.ifr_name[1] = b'o' as libc::c_char;
            req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            let result = check(libc::ioctl(fd, libc::SIOCSIFFLAGS, &req));
            libc::close(fd);
            result
        }
    }

    fn pivot_root(&self, new_root: &CStr) -> io::Result<()> {
        // pivot_root(".", ".") stacks the old root under the new one, so it
        // needs no directory for it; detaching it leaves only the new root.
        let dot = c".";
        self.chdir(new_root)?;
        // SAFETY: both arguments are NUL-terminated.
        let ret = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
        check(if ret < 0 { -1 } else { 0 })?;
        // SAFETY: `dot` is NUL-terminated.
        check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })?;
        self.chdir(c"/")
    }

    fn chdir(&self, path: &CStr) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated.
        check(unsafe { libc::chdir(path.as_ptr()) })
    }

    fn become_user(&self, uid: u32, gid: u32, drop_groups: bool) -> io::Result<()> {
        // SAFETY: plain system calls with integer arguments (setgroups with
        // an empty list reads nothing).
        unsafe {
            if drop_groups {
                check(libc::setgroups(0, std::ptr::null()))?;
            }
            check(libc::setresgid(gid, gid, gid))?;
            check(libc::setresuid(uid, uid, uid))?;
            // A change of ids clears both: restore them.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
        }
        self.set_dumpable(true)
    }

    fn set_dumpable(&self, dumpable: bool) -> io::Result<()> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(dumpable)) })
    }

    fn new_session(&self) -> io::Result<()> {
        // SAFETY: setsid takes no arguments.
        check(unsafe { libc::setsid() })
    }

    fn no_new_privs(&self) -> io::Result<()> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }

    fn close_inherited_fds(&self) -> io::Result<()> {
        // SAFETY: close_range with integer arguments only changes flags.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        // Kernels before 5.11: every descriptor the limit allows, one by one.
        // SAFETY: getrlimit writes into a live struct; fcntl on a closed
        // descriptor fails with EBADF, which is ignored.
        unsafe {
            let mut limit: libc::rlimit = std::mem::zeroed();
            check(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit))?;
            let top = c_int::try_from(limit.rlim_cur).unwrap_or(c_int::MAX);
            for fd in 3..top {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(())
    }
}

/// `mount_setattr(2)` (Linux 5.12): read-only in one call, recursively if
/// asked, without having to repeat the mount's locked flags.
fn mount_setattr_rdonly(target: &CStr, recursive: bool) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `target` is NUL-terminated and `attr` lives across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    check(if ret < 0 { -1 } else { 0 })
}

/// Older kernels: a bind remount, which in a user namespace must repeat the
/// flags the mount was locked with (nosuid, nodev, noexec, atime).
fn remount_rdonly(target: &CStr) -> io::Result<()> {
    // glibc's statvfs is one statfs call on any kernel since 2.6.36 (it
    // reports `ST_VALID`), older than every kernel that reaches this path.
    // SAFETY: `target` is NUL-terminated, `st` is written by the kernel.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statvfs(target.as_ptr(), &mut st) })?;
    let have = st.f_flag;
    let kept = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    let mut flags =
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    for (st_flag, ms_flag) in kept {
        if have & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    RealSys.mount(None, target, None, flags, None)
}

/// Test double: records each call as a line, optionally failing one.
#[cfg(test)]
#[derive(Default)]
pub struct Recording {
    pub calls: std::cell::RefCell<Vec<String>>,
    /// A call whose line starts with this fails with `EPERM`.
    pub fail_on: Option<&'static str>,
}

#[cfg(test)]
impl Recording {
    fn record(&self, line: String) -> io::Result<()> {
        let fail = self.fail_on.is_some_and(|p| line.starts_with(p));
        self.calls.borrow_mut().push(line);
        if fail {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
impl Sys for Recording {
    fn unshare(&self, flags: c_int) -> io::Result<()> {
        self.record(format!("unshare {flags:#x}"))
    }
    fn write_file(&self, path: &CStr, contents: &[u8], create: bool) -> io::Result<()> {
        let how = if create { "create" } else { "write" };
        let text = String::from_utf8_lossy(contents);
        self.record(format!("{how} {} {text:?}", path.to_string_lossy()))
    }
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()> {
        let show = |s: Option<&CStr>| s.map_or("-".into(), |s| s.to_string_lossy().into_owned());
        self.record(format!(
            "mount {} {} {} {flags:#x} {}",
            show(source),
            target.to_string_lossy(),
            show(fstype),
            show(data)
        ))
    }
    fn read_only(&self, target: &CStr, recursive: bool) -> io::Result<()> {
        let how = if recursive {
            "read-only-rec"
        } else {
            "read-only"
        };
        self.record(format!("{how} {}", target.to_string_lossy()))
    }
    fn mkdir(&self, path: &CStr) -> io::Result<()> {
        self.record(format!("mkdir {}", path.to_string_lossy()))
    }
    fn symlink(&self, target: &CStr, link: &CStr) -> io::Result<()> {
        let (t, l) = (target.to_string_lossy(), link.to_string_lossy());
        self.record(format!("symlink {l} -> {t}"))
    }
    fn sethostname(&self, name: &CStr) -> io::Result<()> {
        self.record(format!("sethostname {}", name.to_string_lossy()))
    }
    fn loopback_up(&self) -> io::Result<()> {
        self.record("loopback-up".into())
    }
    fn pivot_root(&self, new_root: &CStr) -> io::Result<()> {
        self.record(format!("pivot-root {}", new_root.to_string_lossy()))
    }
    fn chdir(&self, path: &CStr) -> io::Result<()> {
        self.record(format!("chdir {}", path.to_string_lossy()))
    }
    fn become_user(&self, uid: u32, gid: u32, drop_groups: bool) -> io::Result<()> {
        let groups = if drop_groups { " no-groups" } else { "" };
        self.record(format!("become {uid}:{gid}{groups}"))
    }
    fn set_dumpable(&self, dumpable: bool) -> io::Result<()> {
        self.record(format!("dumpable {dumpable}"))
    }
    fn new_session(&self) -> io::Result<()> {
        self.record("setsid".into())
    }
    fn no_new_privs(&self) -> io::Result<()> {
        self.record("no-new-privs".into())
    }
    fn close_inherited_fds(&self) -> io::Result<()> {
        self.record("cloexec 3..".into())
    }
}
