use std::path::Path;

use super::*;
use crate::build::sandbox::plan::MountOp;
use crate::build::sandbox::setup::{HostIds, Maps, SANDBOX_HOST_ID};
use crate::build::sandbox::sys::Recording;

const IDS: HostIds = HostIds {
    uid: 1000,
    gid: 100,
};

fn ops() -> Vec<MountOp> {
    vec![
        MountOp::Mount {
            source: Some("tmpfs".into()),
            target: "/".into(),
            fstype: Some("tmpfs"),
            flags: libc::MS_NOSUID,
            data: Some("mode=0755"),
        },
        MountOp::Mkdir {
            path: "/opt/go/bin".into(),
        },
        MountOp::Mount {
            source: Some("/opt/go/bin".into()),
            target: "/opt/go/bin".into(),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
        },
        MountOp::ReadOnly {
            target: "/opt/go/bin".into(),
            recursive: true,
        },
        MountOp::Symlink {
            target: "usr/bin".into(),
            link: "/bin".into(),
        },
        MountOp::Mount {
            source: Some("proc".into()),
            target: "/proc".into(),
            fstype: Some("proc"),
            flags: 0,
            data: None,
        },
    ]
}

/// Every step as the four processes would run them, the namespace child
/// being pid 42 and the script's process pid 43; the index of the first
/// that fails.
fn recorded(setup: &Setup, fail_on: Option<&'static str>) -> (Vec<String>, Option<u32>) {
    let sys = Recording {
        fail_on,
        ..Recording::default()
    };
    let at = setup.offsets();
    let maps = |maps: &Maps, pid, offset: usize| {
        write_maps(maps, &sys, pid).map_err(|(i, e)| (step_index(offset + i), e))
    };
    let result = apply(&setup.namespaces, at[0], &sys)
        .and_then(|()| maps(&setup.maps, 42, at[1]))
        .and_then(|()| apply(&setup.root, at[2], &sys))
        .and_then(|()| apply(&setup.script_ns, at[3], &sys))
        .and_then(|()| maps(&setup.script_maps, 43, at[4]))
        .and_then(|()| apply(&setup.lockdown, at[5], &sys));
    (sys.calls.into_inner(), result.err().map(|(i, _)| i))
}

const ALL: c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWNET;

#[test]
fn an_unprivileged_caller_maps_uid_and_gid_0_to_itself() {
    let setup = Setup::new(&ops(), Path::new("/stage"), IDS, false).expect("setup");
    let (calls, failed) = recorded(&setup, None);
    assert_eq!(failed, None);
    assert_eq!(
        calls[..4],
        [
            format!("unshare {ALL:#x}"),
            r#"write /proc/42/setgroups "deny""#.into(),
            r#"write /proc/42/uid_map "0 1000 1""#.into(),
            r#"write /proc/42/gid_map "0 100 1""#.into(),
        ]
    );
}

#[test]
fn as_root_the_script_is_mapped_to_an_unprivileged_host_id() {
    let root = HostIds { uid: 0, gid: 0 };
    let setup = Setup::new(&ops(), Path::new("/stage"), root, false).expect("setup");
    let (calls, failed) = recorded(&setup, None);
    assert_eq!(failed, None);
    let map = format!("0 0 1\n1 {SANDBOX_HOST_ID} 65536\n");
    assert_eq!(
        calls[..3],
        [
            format!("unshare {ALL:#x}"),
            format!("write /proc/42/uid_map {map:?}"),
            format!("write /proc/42/gid_map {map:?}"),
        ]
    );
    let tail = &calls[calls.len() - 8..];
    assert_eq!(
        tail,
        [
            "dumpable true",
            "become 1:1 no-groups",
            &format!("unshare {:#x}", libc::CLONE_NEWUSER | libc::CLONE_NEWNS),
            r#"write /proc/43/uid_map "0 1 65536""#,
            r#"write /proc/43/gid_map "0 1 65536""#,
            "setsid",
            "no-new-privs",
            "cloexec 3..",
        ]
    );
}

#[test]
fn the_root_is_built_under_the_staging_dir_then_pivoted_into_then_locked() {
    let setup = Setup::new(&ops(), Path::new("/stage"), IDS, false).expect("setup");
    let (calls, _) = recorded(&setup, None);
    let private = libc::MS_REC | libc::MS_PRIVATE;
    let bind = libc::MS_BIND | libc::MS_REC;
    let expected = [
        format!("mount - / - {private:#x} -"),
        format!("mount tmpfs /stage tmpfs {:#x} mode=0755", libc::MS_NOSUID),
        "mkdir /stage/opt".into(),
        "mkdir /stage/opt/go".into(),
        "mkdir /stage/opt/go/bin".into(),
        format!("mount /opt/go/bin /stage/opt/go/bin - {bind:#x} -"),
        "read-only-rec /stage/opt/go/bin".into(),
        "symlink /stage/bin -> usr/bin".into(),
        "mount proc /stage/proc proc 0x0 -".into(),
        "sethostname localhost".into(),
        "loopback-up".into(),
        "pivot-root /stage".into(),
        "chdir /src".into(),
        "dumpable false".into(),
        // The script's process: its own user and mount namespace.
        "dumpable true".into(),
        format!("unshare {:#x}", libc::CLONE_NEWUSER | libc::CLONE_NEWNS),
        r#"write /proc/43/uid_map "0 0 1""#.into(),
        r#"write /proc/43/gid_map "0 0 1""#.into(),
        "setsid".into(),
        "no-new-privs".into(),
        "cloexec 3..".into(),
    ];
    assert_eq!(calls[4..], expected);
}

#[test]
fn a_networked_job_keeps_the_host_network() {
    let setup = Setup::new(&ops(), Path::new("/stage"), IDS, true).expect("setup");
    let (calls, _) = recorded(&setup, None);
    let Step::Unshare(flags) = setup.namespaces[0] else {
        panic!("unshare first")
    };
    assert_eq!(flags & libc::CLONE_NEWNET, 0);
    assert!(!calls.iter().any(|c| c == "loopback-up"));
}

#[test]
fn the_first_failing_step_stops_the_setup_and_is_named() {
    let setup = Setup::new(&ops(), Path::new("/stage"), IDS, false).expect("setup");
    let (calls, failed) = recorded(&setup, Some("mount proc"));
    let index = failed.expect("the proc mount fails");
    assert_eq!(setup.describe(index), "mount `proc` on `/stage/proc`");
    assert_eq!(
        calls.last().map(String::as_str),
        Some("mount proc /stage/proc proc 0x0 -")
    );
    let (_, failed) = recorded(&setup, Some("write /proc/42/uid_map"));
    let index = failed.expect("the map fails");
    assert_eq!(setup.describe(index), "write the namespace's `uid_map`");
    let (_, failed) = recorded(&setup, Some("write /proc/43/gid_map"));
    let index = failed.expect("the script's map fails");
    assert_eq!(setup.describe(index), "write the script's `gid_map`");
    let (_, failed) = recorded(&setup, Some("setsid"));
    let index = failed.expect("setsid fails");
    assert_eq!(setup.describe(index), "start a new session");
    assert_eq!(
        setup.describe(u32::MAX - 1),
        "fork pid 1 of the new pid namespace"
    );
}

#[test]
fn a_proc_path_is_built_without_allocating() {
    let mut buf = [0u8; 64];
    assert_eq!(
        proc_path(&mut buf, 4_194_304, c"uid_map"),
        c"/proc/4194304/uid_map"
    );
    let mut buf = [0u8; 64];
    assert_eq!(proc_path(&mut buf, 7, c"setgroups"), c"/proc/7/setgroups");
}

#[test]
fn a_failure_report_survives_the_pipe() {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let e = reported(fds[1], 7, io::Error::from_raw_os_error(libc::EPERM));
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let mut record = [0u8; 8];
    // SAFETY: reads into a live 8-byte buffer; both fds are ours to close.
    let n = unsafe {
        let n = libc::read(fds[0], record.as_mut_ptr().cast(), 8);
        libc::close(fds[0]);
        libc::close(fds[1]);
        n
    };
    assert_eq!(n, 8);
    let (index, err) = decode_report(&record).expect("a record");
    assert_eq!((index, err.raw_os_error()), (7, Some(libc::EPERM)));
    assert!(decode_report(&[]).is_none());
}

#[test]
fn a_path_with_a_nul_byte_is_refused_before_anything_runs() {
    let ops = [MountOp::Mkdir {
        path: "/a\0b".into(),
    }];
    let err = Setup::new(&ops, Path::new("/stage"), IDS, false).expect_err("NUL");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
