//! End-to-end: the store keeps what it holds whole and can always clean up
//! after itself (issue 9 items 7, 8 and the gc part of 16).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Project;

/// Makes a directory 2,500 levels deep in `$out` (by `cd`, since a full
/// path would pass PATH_MAX), with a file at the bottom, and leaves its
/// bottom read-only.
const DEEP: &str = "cd -P $out; i=0; while [ $i -lt 250 ]; do mkdir -p d/d/d/d/d/d/d/d/d/d && cd -P d/d/d/d/d/d/d/d/d/d || exit 2; i=$((i+1)); done; echo deep > f; chmod 555 .";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Issue 9 item 8: the failed build's directory could not be deleted ("File
/// name too long"), the key never built again and gc failed on it forever.
#[test]
fn a_failed_stage_that_made_a_2500_deep_tree_leaves_nothing_behind() {
    let p = Project::new(&format!("stage deep {{ run \"{DEEP}; exit 1\" }}\n"));
    let build = p.kiln(&["build"]);
    assert_eq!(build.status.code(), Some(1), "{}", stderr(&build));
    assert!(
        stderr(&build).contains("exited with"),
        "the script's failure is what is reported:\n{}",
        stderr(&build)
    );
    assert_eq!(names(&p.store.join("v1/tmp")), Vec::<String>::new());
    let again = p.kiln(&["build"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        !stderr(&again).contains("too long"),
        "the key builds again:\n{}",
        stderr(&again)
    );
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
}

/// A stage may succeed with such a tree: it is hashed, stored, verified and
/// collected like any other.
#[test]
fn a_2500_deep_output_is_stored_verified_and_collected() {
    let p = Project::new(&format!("stage deep {{ run \"{DEEP}\" }}\n"));
    let report = p.build(&[]);
    let entry = report.output("deep");
    assert!(entry.join("d/d/d").is_dir());
    let verify = p.kiln(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert_eq!(p.build(&[]).status("deep"), "cached");
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(!entry.exists());
    assert_eq!(names(&p.store.join("v1/tmp")), Vec::<String>::new());
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// gc met an entry it could not delete (here: something is mounted in it)
/// and stopped there, collecting nothing after it. It must say what it could
/// not delete, and collect the rest.
#[test]
fn gc_reports_an_entry_it_cannot_remove_and_collects_the_rest() {
    if !running_as_root() {
        assert_ne!(
            std::env::var("KILN_E2E").as_deref(),
            Ok("1"),
            "KILN_E2E=1 but this test mounts a tmpfs and needs root"
        );
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let p = Project::new("stage stuck { run \"mkdir $out/mnt\" }\nstage other { run \"echo > $out/x\" }\n");
    let report = p.build(&[]);
    let stuck = report.output("stuck");
    let mnt = stuck.join("mnt");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "kiln-test", mnt.to_str().expect("utf-8")])
        .status()
        .expect("mount");
    assert!(mounted.success());
    let _guard = Mounted(mnt.clone());
    // Garbage gc also collects, after the entries: a dead build's directory.
    let stale = p
        .store
        .join("v1/tmp/0123456789abcdef0123456789abcdef-x.999999");
    std::fs::create_dir_all(stale.join("out")).expect("stale build dir");

    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert_eq!(gc.status.code(), Some(1), "{}", stderr(&gc));
    let err = stderr(&gc);
    assert!(err.contains("Cannot remove"), "{err}");
    assert!(!report.output("other").exists(), "{err}");
    assert!(!stale.exists(), "gc went on after the failure: {err}");
}
