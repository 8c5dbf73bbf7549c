//! What a hostile script could leak through kiln itself rather than
//! through the kernel: a setuid program of the sandbox's id left where
//! other users reach it, kiln's own command line (every `--arg`), and its
//! log, which kiln shows on the user's terminal. Found by an adversarial
//! review; each test reproduces its attack through the real binary.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::nobody::NOBODY;
use crate::common::skip::require_root;
use crate::common::{Project, read};

/// Files named `name` in the store's build directories (`tmp/*/{out,tmp}`).
fn in_build_dirs(store: &std::path::Path, name: &str) -> Vec<PathBuf> {
    let tmp = store.join("v2/tmp");
    let Ok(dirs) = std::fs::read_dir(&tmp) else {
        return Vec::new();
    };
    dirs.flatten()
        .flat_map(|d| ["out", "tmp"].map(|sub| d.path().join(sub).join(name)))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn a_setuid_program_a_running_script_leaves_is_out_of_other_users_reach() {
    if !require_root() {
        return;
    }
    let p = Project::new(
        r#"stage atk {
            run "for d in $out $TMPDIR; do cp /usr/bin/id $d/id; chmod 6755 $d/id; done; touch $out/ready; sleep 60"
        }"#,
    );
    // A store other users can traverse (`--store /var/cache/kiln`, say).
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut kiln = p.cmd(&["build", "--sandbox", "on"]).spawn().expect("kiln");
    let end = Instant::now() + Duration::from_secs(30);
    while in_build_dirs(&p.store, "ready").is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let planted = in_build_dirs(&p.store, "id");
    let mut ran = Vec::new();
    for program in &planted {
        let id = NOBODY.to_string();
        // Through a shell: setpriv would look the program up as root.
        let out = Command::new("setpriv")
            .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
            .args(["/bin/sh", "-c", "exec \"$0\" -u"])
            .arg(program)
            .output()
            .expect("setpriv");
        ran.push((
            program.clone(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    kiln.kill().expect("kill kiln");
    kiln.wait().expect("reap kiln");
    assert_eq!(planted.len(), 2, "the script did not plant its programs");
    for (program, stdout) in ran {
        assert_eq!(
            stdout,
            "",
            "nobody ran {} as uid {stdout}",
            program.display()
        );
    }
}

#[test]
fn a_script_cannot_read_args_it_does_not_mention_from_kilns_command_line() {
    if !require_root() {
        return;
    }
    let p = Project::new(
        r##"arg token default="x"
        stage leak {
            run #"tr '\0' ' ' < /proc/1/cmdline > $out/cmd; for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; done > $out/all"#
        }"##,
    );
    let report = p.build(&["--sandbox", "on", "--arg", "token=hunter2"]);
    for file in ["cmd", "all"] {
        let seen = read(&report.output("leak").join(file));
        assert!(!seen.contains("hunter2"), "{file}: {seen}");
    }
}

/// The script's log goes to the terminal (the tail of a failed stage): an
/// escape sequence in it could retitle the window, write the clipboard or
/// forge a "built" line.
#[test]
fn a_failed_stages_log_cannot_drive_the_terminal() {
    let p = Project::new(
        r##"stage esc {
            run #"printf 'normal\n\033]0;PWNED\007\033]52;c;cHduZWQ=\007\033[1A\033[2K     built esc\r\n'; exit 1"#
        }"##,
    );
    let out = p.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("normal"), "{stderr}");
    for control in ['\u{1b}', '\u{7}', '\r'] {
        assert!(
            !stderr.contains(control),
            "{control:?} reached the terminal: {stderr:?}"
        );
    }
}

/// A script can make its log any size at no cost (a sparse file): kiln
/// reads only its end.
#[test]
fn a_huge_sparse_log_does_not_make_kiln_read_it_all() {
    let p = Project::new(
        r#"stage huge {
            run "perl -e 'truncate(STDOUT, 200 * 1024 ** 2) or die'; exit 1"
        }"#,
    );
    let mut cmd = p.cmd(&["build", "-j1"]);
    // SAFETY: setrlimit between fork and exec: kiln may map 1 GiB at most,
    // so a log read whole (and copied) shows as a failure too.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Stage `huge` failed"), "{stderr}");
    assert!(
        out.stderr.len() < 64 * 1024,
        "{} bytes on stderr",
        out.stderr.len()
    );
}
