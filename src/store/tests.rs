//! The store's behaviour as builders and `kiln store` rely on it, on real
//! temp directories (and, for locking, real threads and processes).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use super::layout::root_from_env;
use super::*;

fn key(s: &str) -> Key {
    Key::from(blake3::hash(s.as_bytes()))
}

fn name(s: &str) -> Name {
    Name::new(s).expect("a valid test name")
}

fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

/// Builds `key` as a builder does: lock, look up, build on a miss.
/// Returns the entry and whether this call built it.
fn build(store: &Store, k: &Key, n: &str, content: &str) -> (Entry, bool) {
    let lock = store.lock(k).expect("lock");
    if let Some(entry) = store.lookup(k).expect("lookup") {
        return (entry, false);
    }
    let pending = store.begin(k, &name(n), &lock).expect("begin");
    fs::write(pending.out_dir().join("hello"), content).expect("write output");
    fs::create_dir(pending.out_dir().join("bin")).expect("mkdir");
    fs::write(pending.out_dir().join("bin/tool"), "#!/bin/sh\n").expect("write tool");
    (pending.commit(BTreeMap::new(), 0, 1).expect("commit"), true)
}

/// Sets an entry's last use `days` days back.
fn age(store: &Store, k: &Key, days: u64) {
    let meta = store.layout.meta_file(&k.short());
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 60 * 60);
    let file = fs::File::options()
        .write(true)
        .open(&meta)
        .expect("open meta");
    file.set_modified(then).expect("set mtime");
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).expect("read dir").next().is_none()
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

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
            .ends_with(format!("v1/store/{}-server", k.short()))
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

/// Run by [`processes_racing_for_a_key_build_it_once`] in child processes.
#[test]
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
                    "store::tests::child_process_builder",
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

#[test]
fn verify_reports_a_tampered_entry_only() {
    let (_dir, store) = open_temp();
    let (tampered, _) = build(&store, &key("t"), "tampered", "a");
    build(&store, &key("i"), "intact", "a");
    assert!(store.verify().unwrap().is_empty());

    let file = tampered.path.as_path().join("hello");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&file, "b").unwrap();
    let bad = store.verify().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0.meta.name, "tampered");
    assert_ne!(bad[0].1, tampered.meta.output_hash);
}

#[test]
fn list_is_sorted_by_name_then_key() {
    let (_dir, store) = open_temp();
    for (k, n) in [("1", "b"), ("2", "a"), ("3", "b")] {
        build(&store, &key(k), n, k);
    }
    let listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.meta.name, e.meta.key))
        .collect();
    let mut expected = vec![
        ("a".to_owned(), key("2")),
        ("b".to_owned(), key("1")),
        ("b".to_owned(), key("3")),
    ];
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn gc_deletes_old_entries_and_keeps_recent_and_locked_ones() {
    let (_dir, store) = open_temp();
    let (old, _) = build(&store, &key("old"), "old", "x");
    build(&store, &key("recent"), "recent", "x");
    build(&store, &key("busy"), "busy", "x");
    age(&store, &key("old"), 10);
    age(&store, &key("recent"), 2);
    age(&store, &key("busy"), 10);
    fs::write(store.log_path(&key("old"), &name("old")), "log").unwrap();
    let busy = store.lock(&key("busy")).unwrap();

    let deleted = store.gc(7).unwrap();
    assert_eq!(
        deleted
            .iter()
            .map(|e| e.meta.name.as_str())
            .collect::<Vec<_>>(),
        ["old"]
    );
    assert!(!old.path.as_path().exists());
    assert!(!store.log_path(&key("old"), &name("old")).exists());
    assert!(store.lookup(&key("old")).unwrap().is_none());
    assert!(store.lookup(&key("recent")).unwrap().is_some());
    drop(busy);
    assert!(store.lookup(&key("busy")).unwrap().is_some());
    assert!(is_empty_dir(&store.layout.tmp_dir()));
}

#[test]
fn gc_removes_garbage_of_interrupted_builds_but_not_live_ones() {
    let (_dir, store) = open_temp();
    let dead = key("dead");
    let lock = store.lock(&dead).unwrap();
    std::mem::forget(store.begin(&dead, &name("dead"), &lock).unwrap());
    drop(lock);
    let live = key("live");
    let live_lock = store.lock(&live).unwrap();
    let pending = store.begin(&live, &name("live"), &live_lock).unwrap();
    // A commit cut short between writing the meta and the rename.
    let (orphan, _) = build(&store, &key("orphan"), "orphan", "x");
    crate::tree::set_readonly(orphan.path.as_path(), false).unwrap();
    fs::remove_dir_all(orphan.path.as_path()).unwrap();

    assert!(store.gc(0).unwrap().is_empty());
    assert!(
        pending.out_dir().is_dir(),
        "a build in progress is untouched"
    );
    let left: Vec<_> = fs::read_dir(store.layout.tmp_dir()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the live build dir remains");
    assert!(!store.layout.meta_file(&key("orphan").short()).exists());
}

#[test]
fn refs_round_trip_per_project_and_stage() {
    let (dir, store) = open_temp();
    let project = dir.path().join("project");
    fs::create_dir(&project).unwrap();
    assert_eq!(store.get_ref(&project, &name("server")).unwrap(), None);
    store.set_ref(&project, &name("server"), &key("1")).unwrap();
    store.set_ref(&project, &name("server"), &key("2")).unwrap();
    assert_eq!(
        store.get_ref(&project, &name("server")).unwrap(),
        Some(key("2"))
    );
    // The same directory spelled differently is the same project.
    let spelled = project.join("..").join("project");
    assert_eq!(
        store.get_ref(&spelled, &name("server")).unwrap(),
        Some(key("2"))
    );
    assert_eq!(store.get_ref(&project, &name("client")).unwrap(), None);
    assert_eq!(store.get_ref(dir.path(), &name("server")).unwrap(), None);
}

#[test]
fn default_root_honours_kiln_home_then_xdg_then_home() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let home = Some(PathBuf::from("/home/u"));
    let both = env(&[("KILN_HOME", "/k"), ("XDG_CACHE_HOME", "/x")]);
    assert_eq!(root_from_env(both, home.clone()), PathBuf::from("/k"));
    let xdg = env(&[("KILN_HOME", ""), ("XDG_CACHE_HOME", "/x")]);
    assert_eq!(root_from_env(xdg, home.clone()), PathBuf::from("/x/kiln"));
    let relative_xdg = env(&[("XDG_CACHE_HOME", "x")]);
    assert_eq!(
        root_from_env(relative_xdg, home.clone()),
        PathBuf::from("/home/u/.cache/kiln")
    );
    assert_eq!(
        root_from_env(env(&[]), home),
        PathBuf::from("/home/u/.cache/kiln")
    );
}
