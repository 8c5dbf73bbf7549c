//! End-to-end: the store shared by concurrent and interrupted builds, and
//! `kiln store …`.

use std::time::{Duration, Instant};

use crate::common::{Project, Report, read};

/// A script that marks `$out/started`, then waits (at most 60 s) until the
/// test puts `$out/go` in its build dir, and leaves neither in the output:
/// a barrier between a running stage and the test.
const BARRIER: &str = "touch $out/started; i=0; while [ ! -e $out/go ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 9; sleep 0.05; done; rm $out/started $out/go";

/// Polls `done` every 20 ms for at most 60 s, failing with `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lets the stage waiting at [`BARRIER`] in `p`'s store go on.
fn open_barrier(p: &Project) {
    let started = find(&p.store.join("v2/tmp"), "started").expect("a stage at the barrier");
    std::fs::write(started.with_file_name("go"), "").expect("write go");
}

/// Whether a process is blocked in `flock` on `lock` (a `->` line of
/// `/proc/locks` for its inode).
fn someone_waits_for(lock: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(lock).map(|m| m.ino()) else {
        return false;
    };
    let locks = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
    let inode = format!(":{ino} ");
    locks
        .lines()
        .any(|l| l.contains("->") && l.contains(&inode))
}

#[test]
fn two_concurrent_builds_on_one_store_build_each_stage_once() {
    let p = Project::new(&format!(
        "stage a {{ run \"{BARRIER}; echo a > $out/a\" }}\n\
         stage b {{ use a; run \"cat $a/a > $out/b; echo b >> $out/b\" }}\n"
    ));
    let spawn = || {
        (p.cmd(&["build", "--json"]))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let first = spawn();
    let tmp = p.store.join("v2/tmp");
    wait_until("the first build runs `a`", || {
        find(&tmp, "started").is_some()
    });
    // The first build holds `a`'s build lock, the only key lock so far
    // (`<short key>.lock`; `store.lock` is the store's own).
    let locks: Vec<_> = std::fs::read_dir(p.store.join("v2/locks"))
        .expect("locks dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .filter(|p| p.file_stem().is_some_and(|s| s.len() == 32))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let second = spawn();
    wait_until("the second build waits for `a`", || {
        someone_waits_for(&locks[0])
    });
    open_barrier(&p);
    let (o1, o2) = (
        first.wait_with_output().expect("wait"),
        second.wait_with_output().expect("wait"),
    );
    assert!(o1.status.success() && o2.status.success());
    let (r1, r2) = (Report::parse(&o1.stdout), Report::parse(&o2.stdout));
    assert_eq!([r1.status("a"), r2.status("a")], ["built", "cached"]);
    let statuses = [r1.status("b"), r2.status("b")];
    assert_eq!(
        statuses.iter().filter(|s| *s == "built").count(),
        1,
        "b must be built by exactly one process: {statuses:?}"
    );
    for stage in ["a", "b"] {
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
    while find(&tmp, "partial").is_none() {
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

/// The first path named `name` under `dir`, depth first.
fn find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.flatten().find_map(|e| {
        let path = e.path();
        if path.file_name().is_some_and(|n| n == name) {
            Some(path)
        } else if path.is_dir() {
            find(&path, name)
        } else {
            None
        }
    })
}

#[test]
fn store_path_verify_and_gc() {
    let p = Project::new("stage one { run \"echo 1 > $out/one\" }\n");
    let report = p.build(&[]);
    let ls = p.kiln(&["store", "ls"]);
    assert!(ls.status.success());
    crate::snapshot!("store_ls", &p, String::from_utf8_lossy(&ls.stdout));
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
    crate::snapshot!(
        "store_verify_modified",
        &p,
        String::from_utf8_lossy(&verify.stderr)
    );

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
    let p = Project::new(&format!(
        "stage lib {{ run \"echo lib > $out/x\" }}\n\
         stage app {{ use lib; run \"{BARRIER}; cat $lib/x > $out/y\" }}\n"
    ));
    let lib = p.build(&["lib"]).output("lib");
    let build = p
        .cmd(&["build", "--json", "app"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // `app` runs: its build holds `lib` from now until it ends.
    let tmp = p.store.join("v2/tmp");
    wait_until("`app` runs", || find(&tmp, "started").is_some());
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert!(lib.exists(), "gc deleted `lib` under a running build");
    open_barrier(&p);
    let out = build.wait_with_output().expect("wait");
    assert!(out.status.success(), "the build lost its input to gc");
    let report = Report::parse(&out.stdout);
    assert_eq!(report.status("lib"), "cached");
    assert_eq!(read(&report.output("app").join("y")), "lib\n");
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

/// A cache hit takes no per-key lock: with every key's lock file held
/// exclusively by another process (as a builder or gc would hold one), a
/// no-op build still finds every stage cached, without waiting.
#[test]
fn a_no_op_build_finds_its_entries_while_every_key_lock_is_held_elsewhere() {
    let p = Project::new(DIAMOND);
    p.build(&[]);
    let locks = p.store.join("v2/locks");
    let per_key: Vec<_> = std::fs::read_dir(&locks)
        .expect("read locks")
        .map(|e| e.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.len() > 33 && name[..32].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .collect();
    assert!(
        !per_key.is_empty(),
        "the first build left no key lock files"
    );
    let _held: Vec<_> = per_key
        .iter()
        .map(|path| flock(path, libc::LOCK_EX))
        .collect();
    let build = p
        .cmd(&["build", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let out =
        wait_at_most(build, Duration::from_secs(20)).expect("a cache hit waited for a key's lock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = Report::parse(&out.stdout);
    for stage in ["a", "b", "c"] {
        assert_eq!(report.status(stage), "cached", "{stage}");
    }
}
