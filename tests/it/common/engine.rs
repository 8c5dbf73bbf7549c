//! A private Docker engine for tests: `dockerd` on its own socket, data root
//! and exec root in a temp dir, no networking, vfs storage. Stopped (by its
//! pid) when dropped. Without an engine the test is skipped, as
//! `common::skip` says (under `KILN_E2E=1` it fails).

use super::skip::skip;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct DockerEngine {
    dir: tempfile::TempDir,
    child: Child,
    host: String,
}

impl DockerEngine {
    /// A running engine, or `None` (after printing why) when the test should
    /// be skipped (a failure under `KILN_E2E=1`).
    pub fn start() -> Option<DockerEngine> {
        match Self::try_start() {
            Ok(engine) => Some(engine),
            Err(why) => {
                skip(format_args!("no Docker engine ({why})"));
                None
            }
        }
    }

    fn try_start() -> Result<DockerEngine, String> {
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kd")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        let host = format!("unix://{}/docker.sock", d.display());
        let log = std::fs::File::create(d.join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("dockerd")
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .args(["-H", &host, "-p"])
            .arg(d.join("pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run `dockerd`: {e}"))?;
        let engine = DockerEngine { dir, child, host };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if engine.docker(&["version"]).status.success() {
                return Ok(engine);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log =
            std::fs::read_to_string(engine.dir.path().join("dockerd.log")).unwrap_or_default();
        Err(format!(
            "dockerd did not answer within 60s; its log:\n{log}"
        ))
    }

    /// `DOCKER_HOST` for this engine.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()
            .expect("the docker CLI runs")
    }

    /// Runs `docker ARGS…`, panicking with its stderr when it fails; its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling a child process we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
