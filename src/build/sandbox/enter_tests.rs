use super::*;
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

fn recorded(setup: &Setup, fail_on: Option<&'static str>) -> (Vec<String>, Option<u32>) {
    let sys = Recording {
        fail_on,
        ..Recording::default()
    };
    let result = apply(&setup.namespaces, 0, &sys)
        .and_then(|()| apply(&setup.root, setup.namespaces.len(), &sys));
    (sys.calls.into_inner(), result.err().map(|(i, _)| i))
}

#[test]
fn namespaces_come_first_with_uid_and_gid_0_mapped_to_the_invoking_user() {
    let setup = Setup::new(&ops(), Path::new("/stage"), IDS, false).expect("setup");
    let (calls, failed) = recorded(&setup, None);
    assert_eq!(failed, None);
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWNET;
    assert_eq!(
        calls[..4],
        [
            format!("unshare {flags:#x}"),
            r#"write /proc/self/setgroups "deny""#.into(),
            r#"write /proc/self/uid_map "0 1000 1""#.into(),
            r#"write /proc/self/gid_map "0 100 1""#.into(),
        ]
    );
}

#[test]
fn the_root_is_built_under_the_staging_dir_then_pivoted_into() {
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
    assert_eq!(
        setup.describe(FORK_STEP),
        "fork pid 1 of the new pid namespace"
    );
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
