//! Building: commit, lookup, interrupted builds, and builders racing for a key.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;

#[test]
fn commit_then_lookup_round_trips_a_read_only_entry() {
    let (_dir, store) = open_temp();
    let k = key("a");
    assert!(
        store.lookup(&k).unwrap().is_none(),
        "no entry before commit"
    );

    let (built, fresh) = build(&store, &k, "server", "hi");
    assert!(fresh);
    let found = store.lookup(&k).unwrap().expect("entry after commit");
    assert_eq!(found.path, built.path);
    assert_eq!(found.meta, built.meta);
    assert_eq!(found.meta.name, "server");
    assert_eq!(
        found.meta.output_hash,
        crate::tree::scan_dir(found.path.as_path()).unwrap().hash()
    );
    assert!(
        found
            .path
            .as_path()
            .ends_with(format!("v2/store/{}-server", k.short()))
    );
    assert_eq!(
        fs::read_to_string(found.path.as_path().join("hello")).unwrap(),
        "hi"
    );

    let file = found.path.as_path().join("hello");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o222, 0);
    assert_eq!(
        fs::metadata(found.path.as_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o222,
        0
    );
    if !running_as_root() {
        assert!(
            fs::write(&file, "tampered").is_err(),
            "store files are read-only"
        );
    }
    assert!(
        is_empty_dir(&store.layout.tmp_dir()),
        "commit leaves no build dir"
    );
}

#[test]
fn an_empty_output_is_a_valid_entry() {
    let (_dir, store) = open_temp();
    let k = key("empty");
    let lock = store.lock(&k).unwrap();
    let pending = store.begin(&k, &name("nothing"), &lock).unwrap();
    let entry = pending.commit(BTreeMap::new(), 0, 0).unwrap();
    assert!(is_empty_dir(entry.path.as_path()));
    assert!(store.lookup(&k).unwrap().is_some());
}

#[test]
fn a_dropped_pending_leaves_nothing() {
    let (_dir, store) = open_temp();
    let k = key("dropped");
    let lock = store.lock(&k).unwrap();
    let pending = store.begin(&k, &name("web"), &lock).unwrap();
    assert!(
        pending.work_dir().is_dir() && pending.out_dir().is_dir() && pending.tmp_dir().is_dir()
    );
    fs::write(pending.out_dir().join("half"), "x").unwrap();
    // Builds can leave read-only trees (Go's module cache does).
    fs::set_permissions(pending.work_dir(), fs::Permissions::from_mode(0o555)).unwrap();
    drop(pending);

    assert!(store.lookup(&k).unwrap().is_none());
    assert!(is_empty_dir(&store.layout.tmp_dir()));
    assert!(is_empty_dir(&store.layout.store_dir()));
    assert!(is_empty_dir(&store.layout.meta_dir()));
}

#[test]
fn a_killed_build_does_not_block_the_next_one() {
    let (_dir, store) = open_temp();
    let k = key("killed");
    {
        let lock = store.lock(&k).unwrap();
        let pending = store.begin(&k, &name("web"), &lock).unwrap();
        fs::write(pending.out_dir().join("half"), "x").unwrap();
        // What kill -9 leaves: the build dir, no cleanup (the lock itself is
        // released by the kernel, here by dropping `lock`).
        std::mem::forget(pending);
    }
    assert!(
        store.lookup(&k).unwrap().is_none(),
        "a killed build is no entry"
    );

    let (entry, fresh) = build(&store, &k, "web", "whole");
    assert!(fresh);
    assert!(!entry.path.as_path().join("half").exists());
    assert!(
        is_empty_dir(&store.layout.tmp_dir()),
        "the leftover was removed"
    );
}

#[test]
fn a_corrupt_meta_is_a_miss_and_the_rebuild_replaces_the_entry() {
    let (_dir, store) = open_temp();
    let k = key("corrupt");
    build(&store, &k, "web", "one");
    fs::write(store.layout.meta_file(&k.short()), "{not json").unwrap();
    assert!(store.lookup(&k).unwrap().is_none());

    let (entry, fresh) = build(&store, &k, "web", "two");
    assert!(fresh);
    assert_eq!(
        fs::read_to_string(entry.path.as_path().join("hello")).unwrap(),
        "two"
    );
    assert!(store.lookup(&k).unwrap().is_some());
}

#[test]
fn threads_racing_for_a_key_build_it_once() {
    let (_dir, store) = open_temp();
    let store = Arc::new(store);
    let builds = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(4));
    let k = key("raced");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, builds, barrier) = (store.clone(), builds.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let lock = store.lock(&k).unwrap();
                if let Some(entry) = store.lookup(&k).unwrap() {
                    return entry;
                }
                builds.fetch_add(1, Ordering::SeqCst);
                let pending = store.begin(&k, &name("web"), &lock).unwrap();
                // Long enough that the others are waiting on the lock.
                std::thread::sleep(Duration::from_millis(100));
                fs::write(pending.out_dir().join("out"), "x").unwrap();
                pending.commit(BTreeMap::new(), 0, 0).unwrap()
            })
        })
        .collect();
    let entries: Vec<Entry> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    assert!(
        entries
            .iter()
            .all(|e| e.path == entries[0].path && e.meta == entries[0].meta)
    );
}

/// Set to a store root, this makes [`child_process_builder`] build a key
/// there; otherwise that test does nothing.
const CHILD_ENV: &str = "KILN_STORE_TEST_CHILD_ROOT";

/// Run by [`processes_racing_for_a_key_build_it_once`] in child processes,
/// with `--ignored`; ignored in a normal run, where it would test nothing.
#[test]
#[ignore = "a child process of processes_racing_for_a_key_build_it_once"]
fn child_process_builder() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let store = Store::open(&root).unwrap();
    let k = key("two-processes");
    let lock = store.lock(&k).unwrap();
    if store.lookup(&k).unwrap().is_some() {
        return;
    }
    let pending = store.begin(&k, &name("web"), &lock).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs::write(pending.out_dir().join("out"), "x").unwrap();
    let mut log = fs::File::options()
        .create(true)
        .append(true)
        .open(root.join("builds"))
        .unwrap();
    std::io::Write::write_all(&mut log, format!("{}\n", std::process::id()).as_bytes()).unwrap();
    pending.commit(BTreeMap::new(), 0, 0).unwrap();
}

#[test]
fn processes_racing_for_a_key_build_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::tests::build::child_process_builder",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let builds = fs::read_to_string(dir.path().join("builds")).unwrap();
    assert_eq!(
        builds.lines().count(),
        1,
        "exactly one process built: {builds:?}"
    );
    let store = Store::open(dir.path()).unwrap();
    assert!(store.lookup(&key("two-processes")).unwrap().is_some());
}
