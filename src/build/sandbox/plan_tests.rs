use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::build::JobRoot;

fn job(deps: &[(&str, &str)]) -> Job<'static> {
    Job {
        scripts: vec!["true"],
        root: JobRoot::Host,
        work_dir: "/st/work".into(),
        out_dir: "/st/out".into(),
        tmp_dir: "/st/tmp".into(),
        root_dir: "/st/root".into(),
        deps: deps
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect(),
        tool_dirs: Vec::new(),
        env: BTreeMap::new(),
        network: false,
        timeout: None,
        caches: Vec::new(),
    }
}

fn host_layout() -> Layout {
    Layout {
        entries: vec![
            RootEntry::Dir {
                name: "usr".into(),
                source: "/usr".into(),
            },
            RootEntry::Symlink {
                name: "bin".into(),
                target: "usr/bin".into(),
            },
        ],
        synthetic_etc: true,
        extra: vec!["/etc/ssl".into(), "/opt/go/bin".into()],
        proc: vec![("sys", true), ("kcore", false), ("acpi", true)],
    }
}

/// One line per op, flags by name: the plan as a reviewer reads it.
fn render(ops: &[MountOp]) -> Vec<String> {
    let names = [
        (libc::MS_BIND, "bind"),
        (libc::MS_REC, "rec"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
        (libc::MS_RDONLY, "rdonly"),
    ];
    let show = |p: &Path| p.display().to_string();
    ops.iter()
        .map(|op| match op {
            MountOp::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let mut flag_names: Vec<&str> = names
                    .iter()
                    .filter(|(bit, _)| flags & bit != 0)
                    .map(|(_, name)| *name)
                    .collect();
                let known: libc::c_ulong = names.iter().map(|(bit, _)| bit).fold(0, |a, b| a | b);
                assert_eq!(flags & !known, 0, "unexpected flags in {op:?}");
                flag_names.extend(data.iter());
                let what =
                    fstype.map_or_else(|| show(source.as_deref().expect("source")), str::to_owned);
                format!("mount {what} {} {}", show(target), flag_names.join(","))
            }
            MountOp::ReadOnly { target, recursive } => {
                format!(
                    "ro{} {}",
                    if *recursive { "-rec" } else { "" },
                    show(target)
                )
            }
            MountOp::Protect { target } => format!("protect {}", show(target)),
            MountOp::Mkdir { path } => format!("mkdir {}", show(path)),
            MountOp::Symlink { target, link } => {
                format!("symlink {} -> {}", show(link), show(target))
            }
            MountOp::WriteFile { path, contents } => {
                format!("write {} ({} lines)", show(path), contents.lines().count())
            }
        })
        .collect()
}

#[test]
fn a_host_job_sees_system_dirs_read_only_and_only_its_own_dirs_writable() {
    let ops = plan_mounts(&job(&[("LIB", "/store/k-lib")]), &host_layout());
    let expected = "\
mount tmpfs / nosuid,nodev,mode=0755
mkdir /usr
mount /usr /usr bind,rec
ro-rec /usr
symlink /bin -> usr/bin
mkdir /etc
write /etc/passwd (3 lines)
write /etc/group (3 lines)
write /etc/hosts (2 lines)
mkdir /dev
mount tmpfs /dev nosuid,noexec,mode=0755
write /dev/null (0 lines)
mount /dev/null /dev/null bind
write /dev/zero (0 lines)
mount /dev/zero /dev/zero bind
write /dev/full (0 lines)
mount /dev/full /dev/full bind
write /dev/random (0 lines)
mount /dev/random /dev/random bind
write /dev/urandom (0 lines)
mount /dev/urandom /dev/urandom bind
symlink /dev/fd -> /proc/self/fd
symlink /dev/stdin -> /proc/self/fd/0
symlink /dev/stdout -> /proc/self/fd/1
symlink /dev/stderr -> /proc/self/fd/2
mkdir /dev/shm
mount tmpfs /dev/shm nosuid,nodev,mode=1777
ro /dev
mkdir /proc
mount proc /proc nosuid,nodev,noexec
protect /proc/sys
mount /dev/null /proc/kcore bind
ro /proc/kcore
mount tmpfs /proc/acpi nosuid,nodev,noexec,rdonly,mode=0555
mkdir /tmp
mount /st/tmp /tmp bind
mkdir /src
mount /st/work /src bind
mkdir /out
mount /st/out /out bind
mkdir /etc/ssl
mount /etc/ssl /etc/ssl bind,rec
ro-rec /etc/ssl
mkdir /opt/go/bin
mount /opt/go/bin /opt/go/bin bind,rec
ro-rec /opt/go/bin
mkdir /deps
mkdir /deps/LIB
mount /store/k-lib /deps/LIB bind,rec
ro-rec /deps/LIB
ro /";
    assert_eq!(render(&ops).join("\n"), expected);
}

#[test]
fn every_bind_but_tmp_src_out_and_devices_is_made_read_only_right_after() {
    let ops = plan_mounts(
        &job(&[("A", "/store/a"), ("B", "/store/b")]),
        &host_layout(),
    );
    let writable = ["/tmp", "/src", "/out"];
    for (i, op) in ops.iter().enumerate() {
        let MountOp::Mount { target, flags, .. } = op else {
            continue;
        };
        if flags & libc::MS_BIND == 0 || writable.iter().any(|w| target == Path::new(w)) {
            continue;
        }
        if target.starts_with("/dev") {
            continue;
        }
        if target.starts_with("/proc") {
            assert_eq!(
                ops.get(i + 1),
                Some(&MountOp::ReadOnly {
                    target: target.clone(),
                    recursive: false
                }),
                "a hidden /proc file is read-only"
            );
            continue;
        }
        assert_eq!(
            ops.get(i + 1),
            Some(&MountOp::ReadOnly {
                target: target.clone(),
                recursive: true
            }),
            "bind on {} is not made read-only",
            target.display()
        );
    }
    assert_eq!(
        ops.last(),
        Some(&MountOp::ReadOnly {
            target: "/".into(),
            recursive: false
        }),
        "the root itself is read-only last"
    );
}

#[test]
fn an_image_root_gets_no_synthetic_etc_and_its_files_are_bound_read_only() {
    let layout = Layout {
        entries: vec![RootEntry::File {
            name: "marker".into(),
            source: "/img/marker".into(),
        }],
        synthetic_etc: false,
        extra: Vec::new(),
        proc: Vec::new(),
    };
    let lines = render(&plan_mounts(&job(&[]), &layout));
    assert_eq!(
        lines[1..4],
        [
            "write /marker (0 lines)",
            "mount /img/marker /marker bind",
            "ro /marker"
        ]
    );
    assert!(!lines.iter().any(|l| l.starts_with("write /etc")));
    assert!(
        !lines.iter().any(|l| l.contains("/deps")),
        "no deps, no /deps"
    );
}

#[test]
fn the_environment_uses_sandbox_paths_and_overrides_the_stages_own() {
    let mut job = job(&[("lib_a", "/store/k-lib")]);
    job.tool_dirs = vec!["/opt/go/bin".into(), "/usr/lib/llvm/bin".into()];
    job.env.insert("out".into(), "/elsewhere".into());
    job.env.insert("TZ".into(), "UTC".into());
    let env = environment(&job);
    let expected: BTreeMap<String, String> = [
        (
            "PATH",
            "/opt/go/bin:/usr/lib/llvm/bin:/usr/local/bin:/usr/bin:/bin",
        ),
        ("TMPDIR", "/tmp"),
        ("TZ", "UTC"),
        ("lib_a", "/deps/lib_a"),
        ("out", "/out"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, expected);
}

#[test]
fn the_synthetic_etc_has_root_a_build_user_and_localhost_but_no_resolver() {
    let ops = plan_mounts(&job(&[]), &host_layout());
    let file = |name: &str| {
        ops.iter().find_map(|op| match op {
            MountOp::WriteFile { path, contents } if path == Path::new(name) => {
                Some(contents.clone())
            }
            _ => None,
        })
    };
    let passwd = file("/etc/passwd").expect("passwd");
    assert!(passwd.starts_with("root:x:0:0:"));
    assert!(passwd.contains("kilnbld:x:1000:100:"));
    assert!(
        file("/etc/hosts")
            .expect("hosts")
            .contains("127.0.0.1 localhost")
    );
    assert_eq!(file("/etc/resolv.conf"), None);
}

#[test]
fn a_tool_under_tmp_is_bound_after_the_sandboxs_own_tmp() {
    let mut layout = host_layout();
    layout.extra = vec!["/tmp/toolbox/bin".into()];
    let lines = render(&plan_mounts(&job(&[]), &layout));
    let at = |line: &str| lines.iter().position(|l| l == line).expect(line);
    assert!(at("mount /st/tmp /tmp bind") < at("mount /tmp/toolbox/bin /tmp/toolbox/bin bind,rec"));
}

#[test]
fn no_device_reaches_the_callers_terminal() {
    let lines = render(&plan_mounts(&job(&[]), &host_layout()));
    assert!(!lines.iter().any(|l| l.contains("tty")), "{lines:#?}");
}

fn with_caches(paths: &[&str]) -> Job<'static> {
    let mut job = job(&[("LIB", "/store/k-lib")]);
    job.caches = (paths.iter().enumerate())
        .map(|(n, p)| crate::build::JobCache {
            path: p.into(),
            dir: format!("/store/caches/{n}/data").into(),
        })
        .collect();
    job
}

#[test]
fn caches_are_bound_writable_after_every_other_mount_and_before_the_root_locks() {
    let ops = render(&plan_mounts(
        &with_caches(&["/tmp/go-cache", "/cache/cc"]),
        &host_layout(),
    ));
    let tail = &ops[ops.len() - 5..];
    assert_eq!(
        tail,
        [
            "mkdir /tmp/go-cache",
            "mount /store/caches/0/data /tmp/go-cache bind",
            "mkdir /cache/cc",
            "mount /store/caches/1/data /cache/cc bind",
            "ro /",
        ]
    );
    let deps = ops.iter().position(|o| o.starts_with("mount /store/k-lib"));
    assert!(deps.is_some_and(|d| d < ops.len() - 5), "{ops:#?}");
}

#[test]
fn a_cache_inside_the_roots_own_directories_is_refused_before_any_mount() {
    let layout = host_layout();
    assert_eq!(
        cache_conflict(&with_caches(&["/tmp/a", "/cache"]), &layout),
        None
    );
    for (path, why) in [
        ("/usr/cache", "`/usr` belongs to the stage's root"),
        ("/bin/cache", "`/bin` belongs to the stage's root"),
        ("/etc/cache", "`/etc` belongs to the stage's root"),
        ("/opt/go", "overlaps `/opt/go/bin`"),
        ("/opt/go/bin/x", "overlaps `/opt/go/bin`"),
    ] {
        let (at, text) = cache_conflict(&with_caches(&[path]), &layout).expect(path);
        assert_eq!(at, Path::new(path));
        assert!(text.contains(why), "{path}: {text}");
    }
}
