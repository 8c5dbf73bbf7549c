//! End-to-end: the store shared by concurrent and interrupted builds, and
//! `kiln store …`.

mod common;

use std::time::{Duration, Instant};

use common::{Project, Report, read};

const SLOW_PAIR: &str = r#"
stage a { run "sleep 0.5; echo a > $out/a" }
stage b { use a; run "sleep 0.5; cat $a/a > $out/b; echo b >> $out/b" }
"#;

#[test]
fn two_concurrent_builds_on_one_store_build_each_stage_once() {
    let p = Project::new(SLOW_PAIR);
    let first = p
        .cmd(&["build", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let second = p
        .cmd(&["build", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (o1, o2) = (
        first.wait_with_output().expect("wait"),
        second.wait_with_output().expect("wait"),
    );
    assert!(o1.status.success() && o2.status.success());
    let (r1, r2) = (Report::parse(&o1.stdout), Report::parse(&o2.stdout));
    for stage in ["a", "b"] {
        let statuses = [r1.status(stage), r2.status(stage)];
        assert_eq!(
            statuses.iter().filter(|s| *s == "built").count(),
            1,
            "{stage} must be built by exactly one process: {statuses:?}"
        );
        assert_eq!(r1.output(stage), r2.output(stage));
    }
    assert_eq!(read(&r1.output("b").join("b")), "a\nb\n");
}

#[test]
fn kill_9_mid_build_leaves_no_entry_and_the_next_build_succeeds() {
    use std::os::unix::process::CommandExt;
    let p = Project::new(
        r#"
        stage quick { run "echo done > $out/q" }
        stage slow { use quick; run "echo started > $out/partial; sleep 30; echo late > $out/x" }
        "#,
    );
    let mut child = p
        .cmd(&["build", "-q"])
        .process_group(0)
        .spawn()
        .expect("spawn");
    // Wait until `slow` is running: its log says nothing, but its build dir
    // holds the partial output.
    let deadline = Instant::now() + Duration::from_secs(20);
    let tmp = p.store.join("v2/tmp");
    while !walk_has(&tmp, "partial") {
        assert!(Instant::now() < deadline, "slow stage never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kill kiln and its script: the whole process group, without warning.
    // SAFETY: sends SIGKILL to the process group this test just created.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().expect("wait");

    let ls = p.kiln(&["store", "ls"]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("quick"), "{listing}");
    assert!(
        !listing.contains("slow"),
        "a killed build left an entry:\n{listing}"
    );

    p.write("kiln.kdl", "stage quick { run \"echo done > $out/q\" }\nstage slow { use quick; run \"echo fast > $out/x\" }\n");
    let report = p.build(&[]);
    assert_eq!(report.status("quick"), "cached");
    assert_eq!(read(&report.output("slow").join("x")), "fast\n");
}

fn walk_has(dir: &std::path::Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        path.file_name().is_some_and(|n| n == name) || (path.is_dir() && walk_has(&path, name))
    })
}

#[test]
fn store_path_verify_and_gc() {
    let p = Project::new("stage one { run \"echo 1 > $out/one\" }\n");
    let report = p.build(&[]);
    let path = p.kiln(&["store", "path", "one"]);
    assert!(path.status.success());
    assert_eq!(
        String::from_utf8_lossy(&path.stdout).trim(),
        report.output("one").display().to_string()
    );

    assert!(p.kiln(&["store", "verify"]).status.success());
    // Tamper with the entry (it is read-only, as a user would have to force).
    let file = report.output("one").join("one");
    let mut perms = std::fs::metadata(&file).expect("stat").permissions();
    #[allow(clippy::permissions_set_readonly_false)] // the point is to tamper
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).expect("chmod");
    std::fs::write(&file, "2\n").expect("tamper");
    let verify = p.kiln(&["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stderr).contains("modified"));

    // Used just now: a 30-day gc keeps it, a 0-day gc removes it.
    let gc = p.kiln(&["store", "gc"]);
    assert!(gc.status.success());
    assert!(report.output("one").exists());
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success());
    assert!(!report.output("one").exists());
    assert_eq!(p.build(&[]).status("one"), "built");
}

#[test]
fn gc_during_a_build_keeps_the_entries_that_build_uses() {
    let p = Project::new(
        r#"
        stage lib { run "echo lib > $out/x" }
        stage app { use lib; run "sleep 1.5; cat $lib/x > $out/y" }
        "#,
    );
    p.build(&["lib"]);
    let build = p
        .cmd(&["build", "--json", "app"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(500));
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let out = build.wait_with_output().expect("wait");
    assert!(out.status.success(), "the build lost its input to gc");
    assert_eq!(
        read(&Report::parse(&out.stdout).output("app").join("y")),
        "lib\n"
    );
}

/// Two stages neither uses, and one that uses both.
const DIAMOND: &str = r#"
stage a { run "echo a > $out/a" }
stage b { run "echo b > $out/b" }
stage c { use a; use b; run "cat $a/a $b/b > $out/c" }
"#;

/// `flock(2)` on `path` (created if missing), blocking; released on drop.
fn flock(path: &std::path::Path, op: i32) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open lock file");
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    assert_eq!(rc, 0, "flock {}", path.display());
    file
}

/// Waits for `child` at most `limit`; kills it and returns `None` on timeout.
fn wait_at_most(child: std::process::Child, limit: Duration) -> Option<std::process::Output> {
    let deadline = Instant::now() + limit;
    let mut child = child;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child.wait_with_output().expect("output"))
}

/// Issue 9 item 6: a build kept a lock on what it had built while it waited
/// for the lock of what another process had built; that process did the
/// same the other way round, and both waited forever. The test plays the
/// other process with `flock` on the store's lock files, in the adversarial
/// order: it holds `b` (as a process that built `b` would), waits for `a`
/// once kiln has built it, and only then lets `b` go.
#[test]
fn two_builds_that_each_hold_what_the_other_needs_do_not_deadlock() {
    let p = Project::new(DIAMOND);
    let first = p.build(&[]);
    let short = |stage: &str| first.key(stage)[..32].to_owned();
    let (a, b) = (short("a"), short("b"));
    assert!(
        p.kiln(&["store", "gc", "--keep-days", "0"])
            .status
            .success()
    );
    let locks = p.store.join("v2/locks");
    let a_entry = p.store.join(format!("v2/store/{a}-a"));
    assert!(!a_entry.exists(), "gc removed the first build's entries");

    let b_held = flock(&locks.join(format!("{b}.lock")), libc::LOCK_SH);
    let build = p
        .cmd(&["build", "--json", "-j1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a_entry.exists() {
        assert!(Instant::now() < deadline, "kiln never built `a`");
        std::thread::sleep(Duration::from_millis(20));
    }
    // kiln has built `a` and now wants `b`: take `a` as the other process would.
    let (tx, rx) = std::sync::mpsc::channel();
    let a_lock = locks.join(format!("{a}.lock"));
    std::thread::spawn(move || {
        let held = flock(&a_lock, libc::LOCK_EX);
        let _ = tx.send(held);
    });
    let a_held = rx.recv_timeout(Duration::from_secs(20));
    if a_held.is_err() {
        drop(b_held);
        let _ = wait_at_most(build, Duration::ZERO);
        panic!("deadlock: kiln keeps `a` locked while it waits for the lock of `b`");
    }
    drop(b_held);
    let out = wait_at_most(build, Duration::from_secs(60))
        .expect("kiln still waits after every other lock was released");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = Report::parse(&out.stdout);
    assert_eq!(read(&report.output("c").join("c")), "a\nb\n");
    drop(a_held);
}
