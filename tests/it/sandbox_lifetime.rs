//! A sandboxed script does not outlive its stage: not when it leaves
//! daemons behind, not when it runs past its `timeout`, not when kiln is
//! killed; and a killed kiln leaves nothing behind in `$TMPDIR`. Also: a
//! host tool that lives under `/tmp` is still found in the sandbox.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::nobody::processes;
use crate::common::skip::require_root;
use crate::common::{Project, read};

/// A `sleep` argument no other test (or process) uses: found by its argv.
fn unique_sleep(k: u32) -> String {
    (7_000_000 + (std::process::id() % 100_000) * 10 + k).to_string()
}

/// Waits up to `secs` for `done`.
fn eventually(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn daemons_a_script_starts_die_with_its_stage() {
    if !require_root() {
        return;
    }
    let (a, b) = (unique_sleep(1), unique_sleep(2));
    let p = Project::new(&format!(
        r#"stage d {{
            run "setsid sleep {a} > /dev/null 2>&1 & nohup sleep {b} > /dev/null 2>&1 & echo ok > $out/x"
        }}"#
    ));
    p.build(&["--sandbox", "on"]);
    for s in [&a, &b] {
        assert_eq!(
            processes(&["sleep", s]),
            Vec::<u32>::new(),
            "sleep {s} survived"
        );
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_stage_past_its_timeout_is_killed_with_everything_it_started() {
    if !require_root() {
        return;
    }
    let (a, b, c) = (unique_sleep(3), unique_sleep(4), unique_sleep(5));
    // The script's own process ends by clearing its parent-death signal
    // (prctl is syscall 157 on x86_64): what kills the stage must not
    // depend on anything the script can change.
    let p = Project::new(&format!(
        r#"stage slow {{
            timeout "2s"
            run "setsid sleep {a} > /dev/null 2>&1 & sleep {b} & exec perl -e 'syscall(157, 1, 0); exec qw(sleep {c})'"
        }}"#
    ));
    let started = Instant::now();
    let out = p.kiln(&["build", "--sandbox", "on"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        stderr.contains("ran longer than its timeout (2s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("timeout \"2s\""),
        "the span shows the timeout: {stderr}"
    );
    for s in [&a, &b, &c] {
        assert_eq!(
            processes(&["sleep", s]),
            Vec::<u32>::new(),
            "sleep {s} survived"
        );
    }
}

#[test]
fn the_command_line_timeout_applies_to_stages_without_their_own() {
    if !require_root() {
        return;
    }
    let a = unique_sleep(6);
    let p = Project::new(&format!(
        "stage slow {{\n run \"sleep {a}\"\n}}\nstage quick {{\n timeout \"1h\"\n run \"sleep 3; echo ok > $out/x\"\n}}"
    ));
    let out = p.kiln(&["build", "--sandbox", "on", "--timeout", "2s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Stage `slow` failed"), "{stderr}");
    assert!(
        !stderr.contains("Stage `quick` failed"),
        "its own timeout wins: {stderr}"
    );
    assert!(processes(&["sleep", &a]).is_empty());
    let bad = p.kiln(&["build", "--timeout", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_bad_timeout_is_a_diagnostic() {
    let p = Project::new("stage s {\n timeout \"10 minutes\"\n run \"true\"\n}");
    let out = p.kiln(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Invalid duration `10 minutes`"), "{stderr}");
}

#[test]
fn a_killed_kiln_takes_its_stage_along_and_leaves_no_root_dir_behind() {
    if !require_root() {
        return;
    }
    let a = unique_sleep(7);
    let p = Project::new(&format!("stage s {{\n run \"sleep {a}\"\n}}"));
    let tmpdir = p.dir.path().join("tmpdir");
    std::fs::create_dir(&tmpdir).expect("mkdir");
    let mut kiln = p
        .cmd(&["build", "--sandbox", "on"])
        .env("TMPDIR", &tmpdir)
        .spawn()
        .expect("start kiln");
    assert!(
        eventually(30, || !processes(&["sleep", &a]).is_empty()),
        "the stage never started"
    );
    kiln.kill().expect("kill -9 kiln");
    kiln.wait().expect("reap kiln");
    assert!(
        eventually(10, || processes(&["sleep", &a]).is_empty()),
        "the stage outlived kiln"
    );
    let left: Vec<_> = std::fs::read_dir(&tmpdir)
        .expect("read tmpdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    // The next build cleans up the interrupted one and runs.
    p.write("kiln.kdl", "stage s {\n run \"echo ok > $out/x\"\n}");
    let report = p.build(&["--sandbox", "on"]);
    assert_eq!(read(&report.output("s").join("x")), "ok\n");
}

#[test]
fn a_tool_that_lives_under_tmp_is_found_in_the_sandbox() {
    if !require_root() {
        return;
    }
    let p = Project::new("stage s {\n tools kiln-tmp-tool\n run \"kiln-tmp-tool > $out/said\"\n}");
    let (tools, tool) = crate::common::host_tool("/tmp", "kiln-tmp-tool", "echo from tmp");
    let mut cmd = p.cmd(&["build", "--json", "--sandbox", "on"]);
    cmd.env("PATH", format!("{}:/usr/bin:/bin", tools.path().display()));
    let report = crate::common::built(cmd);
    assert_eq!(read(&report.output("s").join("said")), "from tmp\n");
    assert!(Path::new(&tool).exists());
}

#[test]
fn without_the_sandbox_a_timeout_still_kills_the_scripts_process_group() {
    let a = unique_sleep(8);
    let p = Project::new(&format!(
        "stage slow {{\n timeout \"2s\"\n run \"sleep {a} & sleep {a}\"\n}}"
    ));
    let started = Instant::now();
    let out = p.kiln(&["build", "--sandbox", "off"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        stderr.contains("ran longer than its timeout (2s)"),
        "{stderr}"
    );
    assert!(
        eventually(5, || processes(&["sleep", &a]).is_empty()),
        "sleep {a} survived"
    );
}
