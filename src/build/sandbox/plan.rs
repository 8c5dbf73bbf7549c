//! The sandbox's filesystem and environment as data: a pure function of a
//! [`Job`] and the [`Layout`] of its root, with no IO.
//!
//! [`plan_mounts`] lists, in order, what builds the job's root on a fresh
//! tmpfs: the root's top-level entries (the host's `/usr`, `/bin`, `/lib*`
//! or an image's), a minimal `/etc`, `/dev`, `/proc`, the writable `/tmp`,
//! `/src` and `/out`, each used stage read-only at `/deps/<VAR>`, and last
//! the root itself made read-only. Targets are paths inside the sandbox;
//! `enter` prefixes them with the staging directory and applies them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libc::c_ulong;

use crate::build::Job;

/// Host devices bound into the sandbox's `/dev`. Not `tty`: a script must
/// not reach the caller's terminal.
pub const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// `/proc` entries that change the whole machine (sysctls, the magic SysRq
/// key, interrupts): bound read-only over themselves, as Docker does.
pub const PROC_READ_ONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];

/// `/proc` entries that show kernel memory, keys or timers: hidden behind
/// `/dev/null` (files) or an empty read-only tmpfs (directories).
pub const PROC_HIDDEN: [&str; 8] = [
    "kcore",
    "keys",
    "key-users",
    "timer_list",
    "latency_stats",
    "sched_debug",
    "acpi",
    "scsi",
];

/// The sandbox's fixed host name (its own UTS namespace).
pub const HOSTNAME: &str = "localhost";

/// `root` and a build user in the style of Nix's `nixbld`; builds run as
/// uid 0 inside, mapped to the invoking user outside.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    kilnbld:x:1000:100:kiln build user:/homeless-shelter:/noshell\n\
    nobody:x:65534:65534:nobody:/:/noshell\n";
const GROUP: &str = "root:x:0:\nkilnbld:!:100:\nnogroup:x:65534:\n";
/// No `resolv.conf`: a build has no name service.
const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost\n";

/// What the sandbox's root holds besides kiln's own mounts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Top-level entries of `/`, each bound or recreated under its name.
    pub entries: Vec<RootEntry>,
    /// Write a minimal `/etc` (`passwd`, `group`, `hosts`): the host's own
    /// is not shown to builds.
    pub synthetic_etc: bool,
    /// Host directories bound read-only at the same path (`/etc/ssl`, tool
    /// directories the entries do not already show).
    pub extra: Vec<PathBuf>,
    /// The entries of [`PROC_READ_ONLY`] and [`PROC_HIDDEN`] this kernel
    /// has, by name, with whether each is a directory.
    pub proc: Vec<(&'static str, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    /// A host directory, bound read-only at `/<name>`.
    Dir { name: String, source: PathBuf },
    /// A host file, bound read-only at `/<name>`.
    File { name: String, source: PathBuf },
    /// A symlink recreated as is (merged-`/usr` systems: `/bin -> usr/bin`).
    Symlink { name: String, target: PathBuf },
}

/// One step of building the root. Targets are inside the sandbox (`/` is
/// the new root itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<&'static str>,
        flags: c_ulong,
        data: Option<&'static str>,
    },
    /// Make the mount at `target` read-only (with its submounts when
    /// `recursive`).
    ReadOnly {
        target: PathBuf,
        recursive: bool,
    },
    /// Create a directory and its missing parents.
    Mkdir {
        path: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    /// Bind the mount at `target` over itself, read-only (with submounts).
    Protect {
        target: PathBuf,
    },
    /// Create a file with `contents` (an empty one is a mount point).
    WriteFile {
        path: PathBuf,
        contents: String,
    },
}

/// The ordered steps that assemble the job's root on a fresh tmpfs.
pub fn plan_mounts(job: &Job<'_>, layout: &Layout) -> Vec<MountOp> {
    let mut ops = vec![tmpfs("/", libc::MS_NOSUID | libc::MS_NODEV, "mode=0755")];
    for entry in &layout.entries {
        match entry {
            RootEntry::Dir { name, source } => bind_ro(&mut ops, source, &root_path(name), true),
            RootEntry::File { name, source } => {
                ops.push(touch(root_path(name)));
                bind_ro(&mut ops, source, &root_path(name), false);
            }
            RootEntry::Symlink { name, target } => ops.push(MountOp::Symlink {
                target: target.clone(),
                link: root_path(name),
            }),
        }
    }
    if layout.synthetic_etc {
        ops.push(mkdir("/etc"));
        for (name, contents) in [("passwd", PASSWD), ("group", GROUP), ("hosts", HOSTS)] {
            ops.push(MountOp::WriteFile {
                path: Path::new("/etc").join(name),
                contents: contents.to_owned(),
            });
        }
    }
    plan_dev(&mut ops);
    plan_proc(&mut ops, &layout.proc);
    for (dir, source) in [
        ("/tmp", &job.tmp_dir),
        ("/src", &job.work_dir),
        ("/out", &job.out_dir),
    ] {
        ops.push(mkdir(dir));
        ops.push(bind(source, Path::new(dir), false));
    }
    // After `/tmp`: a tool that lives under `/tmp` on the host stays visible.
    for dir in &layout.extra {
        bind_ro(&mut ops, dir, dir, true);
    }
    if !job.deps.is_empty() {
        ops.push(mkdir("/deps"));
    }
    for (var, source) in &job.deps {
        bind_ro(&mut ops, source, &dep_path(var), true);
    }
    // Writable, at paths `cache_conflict` found to be kiln's own making:
    // under the fresh `/tmp`, or new directories of the tmpfs root.
    for cache in &job.caches {
        ops.push(mkdir(cache.path.clone()));
        ops.push(bind(&cache.dir, &cache.path, false));
    }
    // Last: nothing can be created at the top level any more.
    ops.push(MountOp::ReadOnly {
        target: "/".into(),
        recursive: false,
    });
    ops
}

/// Why a job's cache cannot be mounted in the root `layout` describes, if
/// it cannot. Its mount point is made by kiln, as root of the namespace,
/// before the script runs: every directory on the way must be one kiln
/// made too (in the job's fresh `/tmp` or the tmpfs root), never a path of
/// the root (an image's `/var` may be a symlink to anywhere on the host)
/// or of a bound host directory.
pub fn cache_conflict(job: &Job<'_>, layout: &Layout) -> Option<(PathBuf, String)> {
    for cache in &job.caches {
        let first = cache.path.components().nth(1);
        let first = first.map(|c| c.as_os_str().to_string_lossy().into_owned());
        let first = first.unwrap_or_default();
        let root_has = layout.entries.iter().any(|e| match e {
            RootEntry::Dir { name, .. }
            | RootEntry::File { name, .. }
            | RootEntry::Symlink { name, .. } => *name == first,
        });
        let why = if root_has || (first == "etc" && layout.synthetic_etc) {
            format!("`/{first}` belongs to the stage's root, which is read-only")
        } else if let Some(dir) =
            (layout.extra.iter()).find(|d| d.starts_with(&cache.path) || cache.path.starts_with(d))
        {
            format!(
                "it overlaps `{}`, a host directory bound read-only",
                dir.display()
            )
        } else {
            continue;
        };
        return Some((cache.path.clone(), why));
    }
    None
}

/// The sandbox's own `/proc` (its pid namespace), with the machine-wide
/// knobs read-only and the kernel's secrets hidden.
fn plan_proc(ops: &mut Vec<MountOp>, present: &[(&'static str, bool)]) {
    ops.push(mkdir("/proc"));
    ops.push(MountOp::Mount {
        source: Some("proc".into()),
        target: "/proc".into(),
        fstype: Some("proc"),
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: None,
    });
    for &(name, dir) in present {
        let target = Path::new("/proc").join(name);
        if PROC_READ_ONLY.contains(&name) {
            ops.push(MountOp::Protect { target });
        } else if dir {
            ops.push(tmpfs_at(
                target,
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                "mode=0555",
            ));
        } else {
            ops.push(bind(Path::new("/dev/null"), &target, false));
            ops.push(MountOp::ReadOnly {
                target,
                recursive: false,
            });
        }
    }
}

/// A tmpfs `/dev` holding the host's harmless devices, the usual symlinks
/// and a writable `/dev/shm`; read-only itself.
fn plan_dev(ops: &mut Vec<MountOp>) {
    ops.push(mkdir("/dev"));
    ops.push(tmpfs(
        "/dev",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=0755",
    ));
    for dev in DEVICES {
        let path = Path::new("/dev").join(dev);
        ops.push(touch(path.clone()));
        ops.push(bind(&path, &path, false));
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            target: target.into(),
            link: Path::new("/dev").join(link),
        });
    }
    ops.push(mkdir("/dev/shm"));
    ops.push(tmpfs(
        "/dev/shm",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
    ));
    // Only the tmpfs itself: a read-only mount flag on the device binds
    // would buy nothing and `/dev/shm` must stay writable.
    ops.push(MountOp::ReadOnly {
        target: "/dev".into(),
        recursive: false,
    });
}

/// The whole environment of a job run in the sandbox: the stage's own, plus
/// `PATH`, `out`, `TMPDIR` and one variable per used stage, all with the
/// paths the scripts see.
pub fn environment(job: &Job<'_>) -> BTreeMap<String, String> {
    job.environment(Path::new("/out"), Path::new("/tmp"), |var, _| dep_path(var))
}

/// Where a used stage appears: `/deps/<VAR>`.
pub fn dep_path(var: &str) -> PathBuf {
    Path::new("/deps").join(var)
}

fn root_path(name: &str) -> PathBuf {
    Path::new("/").join(name)
}

fn mkdir(path: impl Into<PathBuf>) -> MountOp {
    MountOp::Mkdir { path: path.into() }
}

fn touch(path: PathBuf) -> MountOp {
    MountOp::WriteFile {
        path,
        contents: String::new(),
    }
}

fn tmpfs(target: &str, flags: c_ulong, data: &'static str) -> MountOp {
    tmpfs_at(target.into(), flags, data)
}

fn tmpfs_at(target: PathBuf, flags: c_ulong, data: &'static str) -> MountOp {
    MountOp::Mount {
        source: Some("tmpfs".into()),
        target,
        fstype: Some("tmpfs"),
        flags,
        data: Some(data),
    }
}

fn bind(source: &Path, target: &Path, recursive: bool) -> MountOp {
    let rec = if recursive { libc::MS_REC } else { 0 };
    MountOp::Mount {
        source: Some(source.to_path_buf()),
        target: target.to_path_buf(),
        fstype: None,
        flags: libc::MS_BIND | rec,
        data: None,
    }
}

/// A directory bind (or a file bind onto an existing mount point), then
/// read-only: a bind mount ignores `MS_RDONLY`, so it takes a second step.
fn bind_ro(ops: &mut Vec<MountOp>, source: &Path, target: &Path, dir: bool) {
    if dir {
        ops.push(mkdir(target));
    }
    ops.push(bind(source, target, dir));
    ops.push(MountOp::ReadOnly {
        target: target.to_path_buf(),
        recursive: dir,
    });
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
