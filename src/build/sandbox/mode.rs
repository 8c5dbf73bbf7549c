//! `--sandbox auto|on|off`: choosing the executor, after checking that
//! this machine lets kiln create namespaces (spawns a probe).

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::OnceLock;

use super::exec::Sandbox;
use crate::build::{Executor, Job, JobRoot, Local, RunFailure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SandboxMode {
    /// The sandbox where namespaces are available, else no isolation (with
    /// a warning).
    #[default]
    Auto,
    /// The sandbox, or an error.
    On,
    /// No isolation beyond a cleared environment.
    Off,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    #[error("The build sandbox is unavailable")]
    #[diagnostic(code(kiln::sandbox::unavailable), help("{help}"))]
    Unavailable {
        source: RunFailure,
        /// What the user can change, from what the kernel says.
        help: String,
    },
}

/// The executor for `mode`.
pub fn executor(mode: SandboxMode) -> Result<Box<dyn Executor>, SandboxError> {
    match mode {
        SandboxMode::Off => Ok(Box::new(Local)),
        SandboxMode::On => Ok(Box::new(Sandbox::new()?)),
        SandboxMode::Auto => match Sandbox::new() {
            Ok(sandbox) => Ok(Box::new(sandbox)),
            // Out of processes or memory for now (another build, perhaps a
            // hostile one, can bring that about): not a machine without
            // namespaces, so no reason to build without isolation.
            Err(SandboxError::Unavailable { source, .. }) if exhausted(&source) => {
                Err(SandboxError::Unavailable {
                    source,
                    help: "the machine (or this user) is out of processes or memory for now;                            kiln does not build without the sandbox for that: build again later"
                        .into(),
                })
            }
            Err(SandboxError::Unavailable { source, .. }) => {
                crate::errln!(
                    "warning: namespaces unavailable ({}); building without the sandbox",
                    chain(&source)
                );
                Ok(Box::new(Local))
            }
        },
    }
}

/// Whether the probe failed for want of a resource (a process, memory,
/// descriptors, a namespace under a limit that is not 0) rather than
/// because this machine refuses namespaces.
fn exhausted(e: &RunFailure) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        let code = (cause.downcast_ref::<std::io::Error>()).and_then(std::io::Error::raw_os_error);
        match code {
            Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE) => return true,
            Some(libc::ENOSPC) => return !user_namespaces_disabled(),
            _ => next = cause.source(),
        }
    }
    false
}

/// Whether `user.max_user_namespaces` is 0: no user namespace may be made
/// (where a limit above 0 is only reached for now).
fn user_namespaces_disabled() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces").is_ok_and(|max| max.trim() == "0")
}

/// An executor that refuses every job with why the sandbox could not start.
struct Refused(String);

impl Executor for Refused {
    fn run(&self, _: &Job<'_>, _: &std::fs::File) -> Result<(), RunFailure> {
        Err(RunFailure::NoSandbox(self.0.clone()))
    }
}

/// `--sandbox auto`, decided when the first stage runs: probing spawns a
/// process, and a build with everything cached should not pay for it.
pub struct Lazy {
    chosen: OnceLock<Box<dyn Executor>>,
}

impl Lazy {
    pub fn auto() -> Lazy {
        Lazy {
            chosen: OnceLock::new(),
        }
    }
}

impl Executor for Lazy {
    fn run(&self, job: &Job<'_>, log: &std::fs::File) -> Result<(), RunFailure> {
        let chosen = self.chosen.get_or_init(|| {
            // Auto mode falls back to `Local` with a warning, unless the
            // machine is only out of resources: every stage then fails.
            executor(SandboxMode::Auto).unwrap_or_else(|e| {
                let SandboxError::Unavailable { source, help } = e;
                Box::new(Refused(format!("{}; {help}", chain(&source))))
            })
        });
        chosen.run(job, log)
    }
}

impl Sandbox {
    /// The sandbox, once a trivial script has run in it on this machine.
    pub fn new() -> Result<Sandbox, SandboxError> {
        let unavailable = |source| SandboxError::Unavailable {
            source,
            help: help(),
        };
        let sandbox = Sandbox::unchecked();
        let dir = tempfile::tempdir().map_err(|e| unavailable(RunFailure::Spawn(e)))?;
        let log = tempfile::tempfile().map_err(|e| unavailable(RunFailure::Spawn(e)))?;
        for sub in ["src", "out", "tmp", "root"] {
            fs_err::create_dir(dir.path().join(sub))
                .map_err(|e| unavailable(RunFailure::Spawn(e)))?;
        }
        let job = Job {
            scripts: vec!["exit 0"],
            root: JobRoot::Host,
            work_dir: dir.path().join("src"),
            out_dir: dir.path().join("out"),
            tmp_dir: dir.path().join("tmp"),
            root_dir: dir.path().join("root"),
            deps: BTreeMap::new(),
            tool_dirs: Vec::new(),
            env: BTreeMap::new(),
            network: false,
            timeout: None,
            caches: Vec::new(),
        };
        sandbox.run(&job, &log).map_err(unavailable)?;
        Ok(sandbox)
    }
}

/// An error's causes on one line (the error itself when it has none):
/// "failed to start `/bin/sh`" says nothing about namespaces.
fn chain(e: &RunFailure) -> String {
    let mut parts = Vec::new();
    if e.source().is_none() {
        parts.push(e.to_string());
    }
    let mut next = e.source();
    while let Some(cause) = next {
        parts.push(cause.to_string());
        next = cause.source();
    }
    parts.join(": ")
}

/// Why namespaces may be refused here, from the kernel's switches.
fn help() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if user_namespaces_disabled() {
        return "user namespaces are disabled (`user.max_user_namespaces=0`); raise it with sysctl, \
                or build with `--sandbox off`"
            .into();
    }
    if !root && read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled (`kernel.unprivileged_userns_clone=0`); \
                set it to 1 with sysctl, or build with `--sandbox off`"
            .into();
    }
    if !root
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        return "AppArmor restricts unprivileged user namespaces \
                (`kernel.apparmor_restrict_unprivileged_userns=1`); allow kiln in a profile, \
                or build with `--sandbox off`"
            .into();
    }
    "kiln needs user, mount, pid and network namespaces; inside a container a seccomp profile \
     or a masked /proc can refuse them; build with `--sandbox off` to run without isolation"
        .into()
}
