//! Running kiln as an unprivileged user (`nobody`), for the sandbox attacks
//! that must fail for a user who owns the store, not only for root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Project;

/// The unprivileged uid and gid the tests run kiln as.
pub const NOBODY: u32 = 65534;

impl Project {
    /// Hands the project (its directory, its store) to [`NOBODY`], with a
    /// copy of the kiln binary it can run wherever the checkout lives.
    pub fn give_to_nobody(&self) {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir bin");
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), bin.join("kiln")).expect("copy kiln");
        chown_tree(self.dir.path());
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(self.dir.path(), mode).expect("chmod");
    }

    /// `kiln ARGS` as [`NOBODY`] (after [`Project::give_to_nobody`]).
    pub fn cmd_as_nobody(&self, args: &[&str]) -> Command {
        self.nobody_running(&[], args)
    }

    /// [`Project::cmd_as_nobody`] with at most `nproc` processes and threads
    /// for that user (`prlimit`).
    pub fn cmd_as_nobody_limited(&self, nproc: u32, args: &[&str]) -> Command {
        let limit = format!("--nproc={nproc}");
        self.nobody_running(&["prlimit", &limit, "--"], args)
    }

    fn nobody_running(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let id = NOBODY.to_string();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
            .args(wrapper)
            .arg(self.dir.path().join("bin/kiln"))
            .args(args)
            .current_dir(self.root())
            .env("KILN_HOME", &self.store)
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1");
        cmd
    }
}

/// `chown -R nobody:nobody`, without following symlinks.
pub fn chown_tree(top: &Path) {
    let mut todo: Vec<PathBuf> = vec![top.to_path_buf()];
    while let Some(path) = todo.pop() {
        std::os::unix::fs::lchown(&path, Some(NOBODY), Some(NOBODY))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                todo.push(entry.expect("entry").path());
            }
        }
    }
}

/// Host processes whose command line is exactly `argv`: what a sandboxed
/// script left running.
pub fn processes(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc") {
        let entry = entry.expect("entry");
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == wanted) {
            found.push(pid);
        }
    }
    found
}
