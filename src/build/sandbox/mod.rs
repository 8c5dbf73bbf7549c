//! The hermetic sandbox: Nix's build isolation behind the [`Executor`]
//! trait.
//!
//! Each script runs as uid 0 of a user namespace of its own (an
//! unprivileged host id outside, see `enter`) in new user, mount, pid, ipc,
//! uts, cgroup and network namespaces, on locked mounts, after `pivot_root`
//! into a fresh read-only tmpfs root: the host's `/usr`, `/bin`, `/lib*` (or
//! an image's root) read-only, a minimal `/etc`, private `/proc` and
//! `/dev`, the job's writable `/tmp`, `/src` (the working directory) and
//! `/out`, and each used stage read-only at `/deps/<VAR>`. The network is a
//! loopback only, unless the job is a fetch.
//!
//! - `plan`: the root as an ordered list of mount operations (pure);
//! - `layout`: what the root shows, read from the host or the image (IO);
//! - `setup`: those operations as the steps of four processes (pure);
//! - `enter`: the steps applied between `fork` and `exec`;
//! - `sys`: the privileged calls, behind a trait with a recording fake;
//! - `exec`: the [`Sandbox`] executor; `mode`: `--sandbox auto|on|off`.
//!
//! [`Executor`]: crate::build::Executor

mod enter;
mod exec;
mod layout;
mod mode;
mod plan;
mod setup;
mod sys;

pub use exec::{Sandbox, SetupError};
pub use layout::host_paths;
pub use mode::{Lazy, SandboxError, SandboxMode, executor};
pub use plan::{Layout, MountOp, RootEntry, environment, plan_mounts};
