//! The sandbox's setup as data: every step the forked processes take
//! ([`Setup`]), prepared as NUL-terminated buffers before `fork` so that
//! `enter` can apply them between `fork` and `exec` through [`Sys`] without
//! allocating. Pure, but for reading kiln's own argv address.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
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
pub(super) const FORKS: [&str; 3] = [
    "fork into the new namespaces",
    "fork pid 1 of the new pid namespace",
    "fork the script's process",
];

/// Everything the forked processes do, allocated up front, in the order
/// they do it (which is how steps are numbered in failure reports).
#[derive(Debug)]
pub struct Setup {
    /// Run by the namespace child: unshare.
    pub(super) namespaces: Vec<Step>,
    /// Written by its parent into the child's `/proc/<pid>/`.
    pub(super) maps: Maps,
    /// Run by pid 1: root, host name, network, cwd.
    pub(super) root: Vec<Step>,
    /// Run by the script's process: its own id and namespaces.
    pub(super) script_ns: Vec<Step>,
    /// Written by pid 1 into the script's `/proc/<pid>/`.
    pub(super) script_maps: Maps,
    /// Run by the script's process just before `exec`.
    pub(super) lockdown: Vec<Step>,
    /// Where kiln's own argv lies in memory: pid 1 (a fork of kiln)
    /// blanks it, so `/proc/1/cmdline` does not show the script every
    /// `--arg` kiln was given.
    pub(super) argv: Option<(usize, usize)>,
}

/// `(file, contents)` to write into a child's `/proc/<pid>/`, in order.
pub(super) type Maps = Vec<(&'static CStr, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
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

    /// What step `index` (as `enter` reports it) does, for error messages.
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
    pub(super) fn offsets(&self) -> [usize; 6] {
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
pub(super) fn apply(steps: &[Step], offset: usize, sys: &dyn Sys) -> Result<(), (u32, io::Error)> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = step.run(sys) {
            return Err((step_index(offset + i), e));
        }
    }
    Ok(())
}

pub(super) fn step_index(i: usize) -> u32 {
    let last = u32::MAX - FORKS.len() as u32;
    u32::try_from(i).map_or(last, |i| i.min(last))
}
