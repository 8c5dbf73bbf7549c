//! The sandbox under attack: a hostile `run` script tries to change what
//! is outside its `$out` (host files, store entries, tools, a base's root),
//! to act as the host's root, to reach the caller's terminal and
//! descriptors. Each test reproduces an attack that worked before kiln
//! locked its mounts, remapped root, started a session and closed
//! inherited descriptors; it runs through the real binary, as root and,
//! where the attack needs a store the user owns, as an unprivileged user.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::images::{busybox_image, write_docker_archive};
use crate::common::nobody::processes;
use crate::common::skip::require_root;
use crate::common::{Project, Report, built, read};

/// The host id a script runs as when kiln runs as root.
const SANDBOX_HOST_ID: u32 = 872_415_232;

/// Every way a script might make a mount writable again, then `write`.
fn remount_then(target: &str, write: &str) -> String {
    format!(
        "for how in 'remount,bind,rw' 'remount,rw'; do mount -o $how {target} 2>/dev/null && \
         echo $how >> $out/remounted; done; \
         busybox mount -o remount,rw {target} 2>/dev/null && echo busybox >> $out/remounted; \
         {{ {write}; }} 2>/dev/null && echo wrote >> $out/remounted; touch $out/done"
    )
}

/// Builds as root, or as nobody; the report.
fn build(p: &Project, as_nobody: bool) -> Report {
    let args = ["build", "--json", "--sandbox", "on"];
    built(if as_nobody {
        p.cmd_as_nobody(&args)
    } else {
        p.cmd(&args)
    })
}

fn verify(p: &Project, as_nobody: bool) -> Output {
    if as_nobody {
        p.cmd_as_nobody(&["store", "verify"])
            .output()
            .expect("run kiln")
    } else {
        p.kiln(&["store", "verify"])
    }
}

/// No remount took and nothing was written.
fn assert_refused(report: &Report, stage: &str) {
    let out = report.output(stage);
    assert!(out.join("done").exists(), "the attack did not run");
    let remounted = out.join("remounted");
    assert!(
        !remounted.exists(),
        "{stage}: {}",
        std::fs::read_to_string(&remounted).unwrap_or_default()
    );
}

#[test]
fn a_script_cannot_remount_the_hosts_usr_writable() {
    if !require_root() {
        return;
    }
    let canary = format!("/usr/kiln-canary-{}", std::process::id());
    let p = Project::new(&format!(
        "stage r {{\n run \"{}\"\n}}",
        remount_then("/usr", &format!("echo pwned > {canary}"))
    ));
    let report = build(&p, false);
    let planted = Path::new(&canary).exists();
    let _ = std::fs::remove_file(&canary);
    assert!(!planted, "the stage wrote {canary} on the host");
    assert_refused(&report, "r");
}

#[test]
fn a_script_cannot_rewrite_a_store_entry_it_uses() {
    if !require_root() {
        return;
    }
    for as_nobody in [false, true] {
        let p = Project::new(&format!(
            "stage lib {{\n run \"echo original > $out/data\"\n}}\n\
             stage evil {{\n use lib\n run \"{}\"\n}}\n\
             stage reader {{\n use lib evil\n run \"cat $lib/data > $out/seen\"\n}}",
            remount_then("$lib", "echo poisoned > $lib/data")
        ));
        if as_nobody {
            p.give_to_nobody();
        }
        let report = build(&p, as_nobody);
        assert_refused(&report, "evil");
        assert_eq!(read(&report.output("lib").join("data")), "original\n");
        assert_eq!(read(&report.output("reader").join("seen")), "original\n");
        let verified = verify(&p, as_nobody);
        assert!(verified.status.success(), "{verified:?}");
    }
}

#[test]
fn a_script_cannot_replace_a_declared_tool_on_the_host() {
    if !require_root() {
        return;
    }
    // The user's own tools, like ~/.cargo/bin (not under /tmp, which the
    // sandbox's own /tmp would cover).
    let (tools, tool) = crate::common::host_tool("/var/tmp", "kiln-greeter", "echo greetings");
    crate::common::nobody::chown_tree(tools.path());
    let dir = tools.path().display().to_string();
    let p = Project::new(&format!(
        "stage evil {{\n tools kiln-greeter\n run \"kiln-greeter > $out/greeting\"\n run \"{}\"\n}}",
        remount_then(
            &dir,
            &format!("printf '#!/bin/sh\\\\necho trojan\\\\n' > {dir}/kiln-greeter")
        )
    ));
    p.give_to_nobody();
    let mut cmd = p.cmd_as_nobody(&["build", "--json", "--sandbox", "on"]);
    cmd.env("PATH", format!("{dir}:/usr/bin:/bin"));
    let report = built(cmd);
    assert_eq!(read(&tool), "#!/bin/sh\necho greetings\n");
    assert_eq!(read(&report.output("evil").join("greeting")), "greetings\n");
    assert_refused(&report, "evil");
}

#[test]
fn a_script_cannot_plant_a_trojan_in_a_bases_root_for_the_next_stage() {
    if !require_root() {
        return;
    }
    let image = busybox_image();
    for as_nobody in [false, true] {
        let trojan = "busybox rm -f /bin/echo && busybox printf '#!/bin/sh\\\\necho trojan\\\\n' \
                      > /bin/echo && busybox chmod +x /bin/echo";
        let p = Project::new(&format!(
            "base bb {{\n archive \"bb.tar\" digest=\"{}\"\n}}\n\
             stage evil {{\n from bb\n run \"{}\"\n}}\n\
             stage next {{\n from bb\n use evil\n run \"/bin/echo hi > $out/said\"\n}}",
            image.id(),
            remount_then("/bin", trojan).replace("mount -o $how", "busybox mount -o $how"),
        ));
        write_docker_archive(&image, &p.root().join("bb.tar"));
        if as_nobody {
            p.give_to_nobody();
        }
        let report = build(&p, as_nobody);
        assert_refused(&report, "evil");
        assert_eq!(read(&report.output("next").join("said")), "hi\n");
    }
}

#[test]
fn a_script_is_not_the_hosts_root_and_cannot_write_global_sysctls() {
    if !require_root() {
        return;
    }
    let p = Project::new(
        r#"stage s {
            run "v=$(cat /proc/sys/kernel/core_pattern); if printf '%s\n' \"$v\" > /proc/sys/kernel/core_pattern; then echo wrote; else echo refused; fi > $out/core_pattern 2>&1"
            run "if echo 1 > /proc/sys/vm/drop_caches; then echo wrote; else echo refused; fi > $out/drop_caches 2>&1"
            run "if echo s > /proc/sysrq-trigger; then echo wrote; else echo refused; fi > $out/sysrq 2>&1"
            run "if cat /proc/kcore | head -c1 | grep -q .; then echo read; else echo empty; fi > $out/kcore 2>&1"
            run "id -u > $out/uid; touch $out/mine"
        }"#,
    );
    let report = build(&p, false);
    let out = report.output("s");
    for knob in ["core_pattern", "drop_caches", "sysrq"] {
        assert_eq!(
            read(&out.join(knob)).lines().last(),
            Some("refused"),
            "{knob}"
        );
    }
    assert_eq!(read(&out.join("kcore")).lines().last(), Some("empty"));
    assert_eq!(read(&out.join("uid")), "0\n", "root inside");
    // What it made belongs to the store's owner once committed: the
    // sandbox's id could `chmod` it back to writable.
    for path in [out.join("mine"), out.clone()] {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
    }
}

#[test]
fn a_scripts_processes_run_as_an_unprivileged_host_id() {
    if !require_root() {
        return;
    }
    let n = (8_000_000 + std::process::id() % 100_000).to_string();
    let p = Project::new(&format!("stage s {{\n run \"sleep {n}\"\n}}"));
    let mut kiln = p.cmd(&["build", "--sandbox", "on"]).spawn().expect("kiln");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut found = processes(&["sleep", &n]);
    while found.is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(50));
        found = processes(&["sleep", &n]);
    }
    let status = found
        .first()
        .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default());
    kiln.kill().expect("kill kiln");
    kiln.wait().expect("reap kiln");
    let status = status.expect("the stage never started");
    let ids = |key: &str| {
        (status.lines())
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    };
    let expected = vec![SANDBOX_HOST_ID.to_string(); 4];
    assert_eq!(ids("Uid:"), Some(expected.clone()), "{status}");
    assert_eq!(ids("Gid:"), Some(expected), "{status}");
    assert_eq!(ids("Groups:"), Some(Vec::new()), "no supplementary groups");
}

/// `kiln build` on a terminal of its own (`script` gives it a pty), so the
/// caller has a controlling terminal a script could reach.
#[test]
fn a_script_has_no_controlling_terminal_even_when_kiln_has_one() {
    if !require_root() {
        return;
    }
    let p = Project::new(
        r#"stage t {
            run "cut -d' ' -f7 /proc/self/stat > $out/tty_nr"
            run "if [ -e /dev/tty ]; then echo present; else echo absent; fi > $out/dev_tty"
            run "for fd in 0 1 2; do if [ -t $fd ]; then echo $fd; fi; done > $out/ttys"
        }"#,
    );
    let kiln = format!(
        "KILN_HOME={} {} build --json --sandbox on",
        p.store.display(),
        env!("CARGO_BIN_EXE_kiln")
    );
    let out = Command::new("script")
        .args(["-qec", &kiln, "/dev/null"])
        .current_dir(p.root())
        .output()
        .expect("run script(1)");
    assert!(out.status.success(), "{out:?}");
    let report = p.build(&["--sandbox", "on"]); // cached: the same entry
    let dir = report.output("t");
    assert_eq!(read(&dir.join("tty_nr")), "0\n");
    assert_eq!(read(&dir.join("dev_tty")), "absent\n");
    assert_eq!(read(&dir.join("ttys")), "");
}

#[test]
fn a_script_cannot_use_a_descriptor_kiln_inherited() {
    if !require_root() {
        return;
    }
    let secret = tempfile::NamedTempFile::new().expect("secret");
    std::fs::write(secret.path(), "host secret").expect("write");
    let canary = secret.path().with_extension("canary");
    let (s, c) = (secret.path().display(), canary.display());
    let p = Project::new(&format!(
        r#"stage f {{
            run "ls /proc/self/fd > $out/fds"
            run "cat /proc/self/fd/7{s} > $out/leak 2>/dev/null || echo unreadable > $out/leak"
            run "echo x > /proc/self/fd/7{c} 2>/dev/null || true"
        }}"#
    ));
    let root = std::fs::File::open("/").expect("open /");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&root);
    let mut cmd = p.cmd(&["build", "--json", "--sandbox", "on"]);
    // SAFETY: dup2 between fork and exec: `kiln build 7</`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let dir = built(cmd).output("f");
    assert_eq!(read(&dir.join("leak")), "unreadable\n");
    assert!(!canary.exists(), "the stage wrote through descriptor 7");
    // `ls` itself has its directory open as the fourth.
    let fds = read(&dir.join("fds"));
    assert!(
        fds.lines().all(|fd| ["0", "1", "2", "3"].contains(&fd)),
        "{fds}"
    );
}
