//! `kiln store` and `kiln explain`: list, verify, gc, refs, and where the store is.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::super::layout::root_from_env;
use super::*;

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
    assert!(
        matches!(bad[0].1, Modified::Content(found) if found != tampered.meta.output_hash),
        "{:?}",
        bad[0].1
    );
}

#[test]
fn verify_reports_an_entry_made_writable_or_setuid_with_its_content_intact() {
    let (_dir, store) = open_temp();
    let (entry, _) = build(&store, &key("m"), "modes", "a");
    let file = entry.path.as_path().join("hello");
    for mode in [0o4444, 0o644] {
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        let bad = store.verify().unwrap();
        let expected = Modified::Metadata {
            path: "hello".into(),
            what: format!("mode {mode:04o}"),
        };
        assert_eq!(bad.iter().map(|(_, m)| m).collect::<Vec<_>>(), [&expected]);
    }
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    assert!(store.verify().unwrap().is_empty());
    fs::set_permissions(entry.path.as_path(), fs::Permissions::from_mode(0o777)).unwrap();
    let bad = store.verify().unwrap();
    assert_eq!(
        bad.iter().map(|(_, m)| m.to_string()).collect::<Vec<_>>(),
        ["`.` has mode 0777"]
    );
    fs::set_permissions(entry.path.as_path(), fs::Permissions::from_mode(0o555)).unwrap();
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

    let deleted = store.gc(7).unwrap().entries;
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

    assert!(store.gc(0).unwrap().entries.is_empty());
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

#[test]
fn a_lookup_counts_as_a_use_for_gc() {
    let (_dir, store) = open_temp();
    build(&store, &key("used"), "used", "x");
    age(&store, &key("used"), 10);
    assert!(store.lookup(&key("used")).unwrap().is_some());
    assert!(store.gc(7).unwrap().entries.is_empty());
    assert!(store.lookup(&key("used")).unwrap().is_some());
}

#[test]
fn gc_keeps_what_another_open_store_looked_up_until_that_store_is_dropped() {
    let (dir, store) = open_temp();
    build(&store, &key("used"), "used", "x");
    let user = Store::open(dir.path()).unwrap();
    // `user` plays a running build: it found the entry and uses it.
    assert!(user.lookup(&key("used")).unwrap().is_some());
    age(&store, &key("used"), 10);
    assert!(store.gc(0).unwrap().entries.is_empty());
    assert!(user.lookup(&key("used")).unwrap().is_some());
    // Its roots end with it (as they do when a process dies: its lock goes).
    drop(user);
    assert_eq!(store.gc(0).unwrap().entries.len(), 1);
}

/// `kiln export` builds (opening and dropping a store), then reads the
/// image it was handed: the report's hold must outlive that store.
#[test]
fn a_hold_keeps_its_entry_from_gc_after_its_store_is_dropped() {
    let (dir, store) = open_temp();
    build(&store, &key("used"), "used", "x");
    let user = Store::open(dir.path()).unwrap();
    let hold = user.hold(&key("used")).unwrap();
    assert!(user.lookup(&key("used")).unwrap().is_some());
    drop(user);
    age(&store, &key("used"), 10);
    assert!(
        store.gc(0).unwrap().entries.is_empty(),
        "gc took a held entry"
    );
    drop(hold);
    assert_eq!(store.gc(0).unwrap().entries.len(), 1);
}

#[test]
fn a_hit_waits_for_no_builder_and_a_hold_blocks_no_builder() {
    let (dir, store) = open_temp();
    build(&store, &key("k"), "k", "x");
    let other = Store::open(dir.path()).unwrap();
    // Another store builds the key (as after a miss of its own): a hit here
    // neither waits for it nor keeps it from building.
    let building = other.lock(&key("k")).unwrap();
    let hold = store.hold(&key("k")).unwrap();
    assert!(store.lookup(&key("k")).unwrap().is_some());
    drop((building, hold));
}

#[test]
fn a_dead_process_s_roots_protect_nothing_and_gc_removes_them() {
    let (_dir, store) = open_temp();
    build(&store, &key("old"), "old", "x");
    age(&store, &key("old"), 10);
    // A roots file no one holds locked: its process died (kill -9).
    let roots = store.layout.roots_dir();
    fs::create_dir_all(&roots).unwrap();
    let dead = roots.join("4194304-0");
    fs::write(&dead, format!("{}\n", key("old").short())).unwrap();
    assert_eq!(store.gc(0).unwrap().entries.len(), 1);
    assert!(!dead.exists());
}
