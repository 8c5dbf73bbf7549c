//! The namespace sandbox, driven through the library with hand-made jobs.
//!
//! Where namespaces are unavailable each test skips, as `common::skip` says
//! (under `KILN_E2E=1` it fails).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::common::skip::skip;
use kiln::build::sandbox::{SandboxMode, SetupError, executor};
use kiln::build::{Executor, Job, JobRoot, RunFailure};

/// The sandbox, or `None` (test skipped) where this machine refuses it.
fn sandbox() -> Option<Box<dyn Executor>> {
    match executor(SandboxMode::On) {
        Ok(sandbox) => Some(sandbox),
        Err(e) => {
            skip(format_args!("the sandbox is unavailable ({e})"));
            None
        }
    }
}

/// A job's host directories, in a temp dir of their own.
struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::tempdir().expect("temp dir");
        for sub in ["src", "out", "tmp", "root"] {
            fs::create_dir(root.path().join(sub)).expect("mkdir");
        }
        Dirs { root }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    fn job<'a>(&self, scripts: &[&'a str]) -> Job<'a> {
        let env = [
            ("HOME", "/homeless-shelter"),
            ("LC_ALL", "C"),
            ("SOURCE_DATE_EPOCH", "0"),
            ("TZ", "UTC"),
        ];
        Job {
            scripts: scripts.to_vec(),
            root: JobRoot::Host,
            work_dir: self.path("src"),
            out_dir: self.path("out"),
            tmp_dir: self.path("tmp"),
            root_dir: self.path("root"),
            deps: BTreeMap::new(),
            tool_dirs: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            network: false,
            timeout: None,
            caches: Vec::new(),
        }
    }

    fn out(&self, name: &str) -> String {
        let path = self.path("out").join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// Runs `job`; its result and its log.
fn run(sandbox: &dyn Executor, job: &Job<'_>) -> (Result<(), RunFailure>, String) {
    let mut log = tempfile::tempfile().expect("log");
    let result = sandbox.run(job, &log);
    let mut text = String::new();
    use std::io::Seek;
    log.rewind().expect("rewind log");
    log.read_to_string(&mut text).expect("read log");
    (result, text)
}

fn run_ok(sandbox: &dyn Executor, job: &Job<'_>) -> String {
    let (result, log) = run(sandbox, job);
    if let Err(e) = result {
        panic!("job failed: {e:?}\nlog:\n{log}");
    }
    log
}

#[test]
fn the_network_is_a_loopback_only() {
    let Some(sandbox) = sandbox() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let dirs = Dirs::new();
    // `timeout`: were the host reachable, nc would wait on the unaccepted connection.
    let connect = format!("busybox timeout 5 busybox nc -w 2 127.0.0.1 {port} </dev/null");
    let (result, log) = run(&*sandbox, &dirs.job(&[&connect]));
    assert!(
        matches!(result, Err(RunFailure::Script { index: 0, .. })),
        "connecting to the host must fail: {result:?}\n{log}"
    );
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the host listener accepted a connection: {accepted:?}"
    );
    let lo = "busybox ip link show lo > $out/lo";
    run_ok(&*sandbox, &dirs.job(&[lo]));
    let lo = dirs.out("lo");
    assert!(lo.contains(",UP"), "lo is not up: {lo}");
    let links = "busybox ip -o link | wc -l > $out/links";
    run_ok(&*sandbox, &dirs.job(&[links]));
    assert_eq!(dirs.out("links").trim(), "1", "only lo");
}

#[test]
fn an_undeclared_host_file_is_unreadable() {
    let Some(sandbox) = sandbox() else { return };
    let secret_dir = tempfile::tempdir_in("/var/tmp").expect("temp dir");
    let secret = secret_dir.path().join("secret");
    fs::write(&secret, "secret").expect("write");
    let dirs = Dirs::new();
    let script = format!(
        "for f in {} /etc/shadow /etc/hostname /etc/resolv.conf /root; do \
           if cat $f 2>/dev/null || ls $f 2>/dev/null; then echo \"read $f\"; exit 10; fi; \
         done",
        secret.display()
    );
    run_ok(&*sandbox, &dirs.job(&[&script]));
}

#[test]
fn writes_outside_out_src_and_tmp_fail_or_vanish() {
    let Some(sandbox) = sandbox() else { return };
    let dirs = Dirs::new();
    let unique = format!("kiln-sandbox-test-{}", std::process::id());
    let script = format!(
        "for f in /usr/{u} /etc/{u} /{u} /dev/{u} /proc/{u}; do \
           if echo x > $f 2>/dev/null; then echo \"wrote $f\"; exit 10; fi; \
         done; \
         echo tmp > /tmp/{u}; echo out > $out/{u}; echo src > /src/{u}; \
         echo shm > /dev/shm/{u}; cat /dev/shm/{u} > $out/shm",
        u = unique
    );
    run_ok(&*sandbox, &dirs.job(&[&script]));
    for dir in ["/usr", "/etc", "/", "/tmp", "/dev", "/dev/shm"] {
        let path = Path::new(dir).join(&unique);
        assert!(!path.exists(), "{} appeared on the host", path.display());
    }
    assert_eq!(dirs.out(&unique), "out\n");
    assert_eq!(dirs.out("shm"), "shm\n");
    let tmp = fs::read_to_string(dirs.path("tmp").join(&unique)).expect("job tmp");
    assert_eq!(tmp, "tmp\n");
    let src = fs::read_to_string(dirs.path("src").join(&unique)).expect("job src");
    assert_eq!(src, "src\n");
}

#[test]
fn other_processes_are_invisible_and_the_build_is_root_on_localhost() {
    let Some(sandbox) = sandbox() else { return };
    let dirs = Dirs::new();
    let script = "ls /proc | grep -c '^[0-9]' > $out/pids; echo $$ > $out/self; \
                  id -u > $out/uid; id -g > $out/gid; cat /proc/sys/kernel/hostname > $out/host";
    run_ok(&*sandbox, &dirs.job(&[script]));
    let pids: u32 = dirs.out("pids").trim().parse().expect("a count");
    // kiln's init (pid 1), the shell, `ls` and `grep`.
    assert!((1..=4).contains(&pids), "{pids} processes visible");
    assert_eq!(dirs.out("self"), "2\n", "the shell is kiln's init's child");
    assert_eq!(dirs.out("uid"), "0\n");
    assert_eq!(dirs.out("gid"), "0\n");
    assert_eq!(dirs.out("host"), "localhost\n");
}

#[test]
fn the_environment_is_exactly_the_jobs() {
    let Some(sandbox) = sandbox() else { return };
    let dirs = Dirs::new();
    let dep = tempfile::tempdir().expect("dep");
    let mut job = dirs.job(&["env | sort > $out/env"]);
    job.env.insert("GREETING".into(), "hello world".into());
    job.deps.insert("lib_a".into(), dep.path().to_path_buf());
    run_ok(&*sandbox, &job);
    let expected = "GREETING=hello world\nHOME=/homeless-shelter\nLC_ALL=C\n\
                    PATH=/usr/local/bin:/usr/bin:/bin\nPWD=/src\nSOURCE_DATE_EPOCH=0\n\
                    TMPDIR=/tmp\nTZ=UTC\nlib_a=/deps/lib_a\nout=/out\n";
    assert_eq!(dirs.out("env"), expected);
}

#[test]
fn deps_are_read_only_and_src_is_the_writable_working_directory() {
    let Some(sandbox) = sandbox() else { return };
    let dirs = Dirs::new();
    let dep = tempfile::tempdir().expect("dep");
    fs::write(dep.path().join("hello"), "from a dep\n").expect("write");
    fs::write(dirs.path("src").join("input"), "source\n").expect("write");
    let mut job = dirs.job(&[
        "test \"$LIB\" = /deps/LIB; cat $LIB/hello > $out/dep",
        "if echo x > $LIB/new 2>/dev/null || rm $LIB/hello 2>/dev/null; then exit 10; fi",
        "pwd > $out/pwd; cat input > $out/input; echo made > made",
    ]);
    job.deps.insert("LIB".into(), dep.path().to_path_buf());
    run_ok(&*sandbox, &job);
    assert_eq!(dirs.out("dep"), "from a dep\n");
    assert_eq!(dirs.out("pwd"), "/src\n");
    assert_eq!(dirs.out("input"), "source\n");
    assert!(dirs.path("src").join("made").exists());
    assert!(dep.path().join("hello").exists() && !dep.path().join("new").exists());
}

#[test]
fn declared_tool_dirs_outside_usr_are_visible() {
    let Some(sandbox) = sandbox() else { return };
    let tools = tempfile::tempdir_in("/var/tmp").expect("temp dir");
    let tool = tools.path().join("kiln-test-tool");
    fs::write(&tool, "#!/bin/sh\necho tool ran\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod");
    let dirs = Dirs::new();
    let mut job = dirs.job(&["kiln-test-tool > $out/tool"]);
    job.tool_dirs.push(tools.path().to_path_buf());
    run_ok(&*sandbox, &job);
    assert_eq!(dirs.out("tool"), "tool ran\n");
}

/// An image root made by hand: static busybox and a few applet links.
fn busybox_rootfs() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("rootfs");
    let bin = root.path().join("bin");
    fs::create_dir_all(&bin).expect("mkdir");
    fs::create_dir_all(root.path().join("etc")).expect("mkdir");
    fs::write(root.path().join("etc/os-release"), "ID=kiln-test\n").expect("write");
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox (busybox-static)");
    for applet in ["sh", "ls", "cat", "echo", "test", "id"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
    }
    root
}

#[test]
fn a_rootfs_job_runs_the_images_shell_and_cannot_see_the_hosts_usr() {
    let Some(sandbox) = sandbox() else { return };
    let rootfs = busybox_rootfs();
    let dirs = Dirs::new();
    let mut job = dirs.job(&[
        "ls / > $out/root; cat /etc/os-release > $out/os; readlink /proc/$$/exe > $out/exe",
        "if ls /usr 2>/dev/null; then exit 10; fi; echo x > /bin/x 2>/dev/null && exit 11; true",
    ]);
    job.root = JobRoot::Rootfs(rootfs.path().to_path_buf());
    run_ok(&*sandbox, &job);
    assert_eq!(dirs.out("root"), "bin\ndev\netc\nout\nproc\nsrc\ntmp\n");
    assert_eq!(dirs.out("os"), "ID=kiln-test\n");
    assert_eq!(dirs.out("exe"), "/bin/busybox\n");
    assert!(!rootfs.path().join("bin/x").exists());
}

#[test]
fn a_rootfs_without_a_shell_fails_to_start() {
    let Some(sandbox) = sandbox() else { return };
    let rootfs = tempfile::tempdir().expect("rootfs");
    let dirs = Dirs::new();
    let mut job = dirs.job(&["true"]);
    job.root = JobRoot::Rootfs(rootfs.path().to_path_buf());
    let (result, _) = run(&*sandbox, &job);
    assert!(matches!(result, Err(RunFailure::Spawn(_))), "{result:?}");
}

#[test]
fn a_failing_script_reports_its_index_and_exit_code() {
    let Some(sandbox) = sandbox() else { return };
    let dirs = Dirs::new();
    let (result, _) = run(
        &*sandbox,
        &dirs.job(&["true", "exit 3", "echo never > $out/x"]),
    );
    match result {
        Err(RunFailure::Script { index, status }) => {
            assert_eq!((index, status.code()), (1, Some(3)));
        }
        other => panic!("expected script 1 to fail: {other:?}"),
    }
    assert!(!dirs.path("out/x").exists());
}

#[test]
fn a_setup_failure_names_the_step_that_failed() {
    let Some(sandbox) = sandbox() else { return };
    let dirs = Dirs::new();
    let mut job = dirs.job(&["true"]);
    job.deps
        .insert("GONE".into(), dirs.path("no-such-store-entry"));
    let (result, _) = run(&*sandbox, &job);
    let Err(RunFailure::Spawn(e)) = result else {
        panic!("expected a setup failure: {result:?}")
    };
    let setup = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<SetupError>())
        .unwrap_or_else(|| panic!("not a SetupError: {e:?}"));
    assert!(setup.step.ends_with("/deps/GONE`"), "{}", setup.step);
    assert_eq!(setup.source.raw_os_error(), Some(libc::ENOENT));
}
