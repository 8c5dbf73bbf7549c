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
    let tmp = p.store.join("v1/tmp");
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
