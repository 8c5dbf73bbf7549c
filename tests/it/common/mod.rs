//! Shared helpers for the end-to-end tests: a temporary project with its own
//! store, and the real `kiln` binary run inside it.

pub mod cache_entry;
pub mod engine;
pub mod images;
pub mod nobody;
pub mod registry;
pub mod skip;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Project {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

impl Project {
    /// A project directory holding `kiln.kdl` = `spec`, with a fresh store
    /// next to it (outside the build context).
    ///
    /// The directory is in `/tmp` whatever `TMPDIR` says, so that its path
    /// has the same length everywhere: miette wraps long lines, and a
    /// snapshot must wrap a path the same way on every machine.
    pub fn new(spec: &str) -> Project {
        let dir = tempfile::tempdir_in("/tmp").expect("temp dir");
        let store = dir.path().join("store");
        std::fs::create_dir(dir.path().join("project")).expect("project dir");
        let p = Project { dir, store };
        p.write("kiln.kdl", spec);
        p
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
    }

    /// `kiln ARGS` in the project directory, with this project's store.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(args)
            .current_dir(self.root())
            .env("KILN_HOME", &self.store)
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn kiln(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run kiln")
    }

    /// `kiln ARGS`, asserting success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.kiln(args), args)
    }

    /// `kiln build --json ARGS`, asserting success; the parsed report.
    pub fn build(&self, args: &[&str]) -> Report {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        built(self.cmd(&all))
    }
}

/// `kiln build --json ARGS` of `p`, asserting success: the parsed report
/// and what kiln said on stderr (its summary and warnings).
pub fn build_said(p: &Project, args: &[&str]) -> (Report, String) {
    let mut all = vec!["build", "--json"];
    all.extend_from_slice(args);
    let out = p.kiln(&all);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kiln build failed:\n{said}");
    (Report::parse(&out.stdout), said)
}

/// Runs `cmd` (a `kiln build --json`), asserting success; the parsed report.
pub fn built(mut cmd: Command) -> Report {
    let out = cmd.output().expect("run kiln");
    assert!(
        out.status.success(),
        "kiln build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Report::parse(&out.stdout)
}

/// `kiln build --json`'s report.
pub struct Report(pub serde_json::Value);

impl Report {
    pub fn parse(stdout: &[u8]) -> Report {
        Report(
            serde_json::from_slice(stdout)
                .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(stdout))),
        )
    }

    fn stage(&self, name: &str) -> &serde_json::Value {
        let stages = self.0["stages"].as_array().expect("stages array");
        stages
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name} in {}", self.0))
    }

    pub fn status(&self, name: &str) -> String {
        self.stage(name)["status"]
            .as_str()
            .expect("status")
            .to_owned()
    }

    pub fn key(&self, name: &str) -> String {
        self.stage(name)["key"].as_str().expect("key").to_owned()
    }

    pub fn output(&self, name: &str) -> PathBuf {
        PathBuf::from(self.stage(name)["output"].as_str().expect("output"))
    }

    pub fn output_hash(&self, name: &str) -> String {
        self.stage(name)["output_hash"]
            .as_str()
            .expect("output hash")
            .to_owned()
    }

    /// Stage names with `status`, sorted.
    pub fn with_status(&self, status: &str) -> Vec<String> {
        let stages = self.0["stages"].as_array().expect("stages array");
        let mut names: Vec<String> = (stages.iter())
            .filter(|s| s["status"] == status)
            .map(|s| s["name"].as_str().expect("name").to_owned())
            .collect();
        names.sort();
        names
    }
}

/// `out` of `kiln ARGS`, asserting success; its stdout.
pub fn ok(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A host tool for `tools NAME`: an executable shell script `NAME` running
/// `body`, alone in a fresh directory (mode 0755) under `parent`.
pub fn host_tool(parent: &str, name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("kiln-tools-")
        .tempdir_in(parent)
        .expect("tools dir");
    let tool = dir.path().join(name);
    std::fs::write(&tool, format!("#!/bin/sh\n{body}\n")).expect("write tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, tool)
}
