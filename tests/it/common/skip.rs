//! The one skip policy. A test that cannot run on this machine (a tool is
//! not installed, no Docker engine, not root, no user namespaces, not the
//! host layout its expected output spells out) prints `skipped: WHY` to
//! stderr and returns early; under `KILN_E2E=1`, as in `.ci/run`, every test
//! must run, so the same situation fails the test instead.
//!
//! Each `require*` returns whether the test can go on:
//! `if !require("skopeo") { return; }`. Probing runs the thing probed (a
//! `PATH` lookup, a `kiln build` in the sandbox, a `geteuid`).

use std::fmt::Display;
use std::path::{Path, PathBuf};

use super::Project;

/// Whether `KILN_E2E=1`: every test must run, none may skip.
pub fn e2e() -> bool {
    std::env::var("KILN_E2E").as_deref() == Ok("1")
}

/// The running test cannot run here because `why`: `false` after printing
/// `skipped: WHY`, or a failure under `KILN_E2E=1`.
#[track_caller]
pub fn skip(why: impl Display) -> bool {
    assert!(!e2e(), "KILN_E2E=1 but {why}");
    eprintln!("skipped: {why}");
    false
}

/// Whether `program` is an executable on `PATH`; otherwise [`skip`].
#[track_caller]
pub fn require(program: &str) -> bool {
    on_path(program) || skip(format_args!("`{program}` is not installed"))
}

/// Every one of `programs`, as [`require`] (skipping names the first missing).
#[track_caller]
pub fn require_all(programs: &[&str]) -> bool {
    programs.iter().all(|p| require(p))
}

/// Whether this process is root (and so can mount, and run kiln both as
/// root and as `nobody`); otherwise [`skip`].
#[track_caller]
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root || skip("the tests do not run as root")
}

/// Whether kiln's namespace sandbox works here (a probe build with
/// `--sandbox on`); otherwise [`skip`] with kiln's reason.
#[track_caller]
pub fn require_sandbox() -> bool {
    let probe = Project::new("stage s { run \"true\" }").kiln(&["--sandbox", "on", "build"]);
    probe.status.success()
        || skip(format_args!(
            "no sandbox: {}",
            String::from_utf8_lossy(&probe.stderr)
        ))
}

/// Whether `unshare -r` gives this user a user namespace (for tests that
/// chroot into a tree without kiln); otherwise [`skip`].
#[track_caller]
pub fn require_user_namespaces() -> bool {
    let ok = std::process::Command::new("unshare")
        .args(["-r", "-p", "-f", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    ok || skip("no user namespaces (`unshare -r` fails)")
}

/// Whether this is Debian's merged-`/usr` x86_64 layout with zlib, which
/// the exact file lists of the closure tests spell out; otherwise [`skip`].
#[track_caller]
pub fn require_debian_x86_64() -> bool {
    let link = |p: &str| std::fs::read_link(p).ok();
    let ok = cfg!(target_arch = "x86_64")
        && link("/lib") == Some(PathBuf::from("usr/lib"))
        && link("/lib64") == Some(PathBuf::from("usr/lib64"))
        && Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1").exists();
    ok || skip("not Debian's merged-/usr x86_64 layout with zlib1g-dev")
}

fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
