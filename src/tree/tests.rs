//! Behaviour of the tree module as its callers rely on it: scanning real
//! directories, the stat cache across scans, copying and locking trees.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::spec::SrcPath;

fn write(root: &Path, rel: &str, data: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Makes `rel` look untouched for an hour, so the stat cache may trust it.
fn age(root: &Path, rel: &str) {
    let file = fs::File::options()
        .write(true)
        .open(root.join(rel))
        .expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("set mtime");
}

fn srcs(paths: &[&str]) -> Vec<SrcPath> {
    paths
        .iter()
        .map(|p| SrcPath::new(p).expect("valid src"))
        .collect()
}

fn scan(root: &Path, paths: &[&str]) -> Tree {
    let cache = StatCache::load(root.join("../statcache"));
    scan_sources(root, &srcs(paths), &cache).expect("scan")
}

fn paths(tree: &Tree) -> Vec<&str> {
    tree.entries.iter().map(|e| e.path.as_str()).collect()
}

/// A small project: nested dirs, an executable, a symlink, a hidden file.
fn project(root: &Path) {
    write(root, "src/main.c", "int main() { return 0; }\n");
    write(root, "src/lib/util.c", "void util() {}\n");
    write(root, "run.sh", "#!/bin/sh\necho hi\n");
    chmod(root, "run.sh", 0o755);
    write(root, ".hidden", "h");
    symlink("src/main.c", root.join("main")).expect("symlink");
}

#[test]
fn the_same_tree_hashes_the_same_in_two_places() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    project(a.path());
    project(b.path());
    chmod(b.path(), "src/main.c", 0o600); // only the executable bit counts
    let (ta, tb) = (scan(a.path(), &["."]), scan(b.path(), &["."]));
    assert_eq!(ta, tb);
    assert_eq!(ta.hash(), tb.hash());
    assert_eq!(scan_dir(a.path()).expect("scan").hash(), ta.hash());
    assert_eq!(
        paths(&ta),
        [
            ".hidden",
            "main",
            "run.sh",
            "src",
            "src/lib",
            "src/lib/util.c",
            "src/main.c"
        ]
    );
}

#[test]
fn content_exec_bit_symlink_target_and_name_change_the_hash() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    project(root);
    let mut seen = vec![scan(root, &["."]).hash()];
    let mut changed = |what: &str| {
        let h = scan(root, &["."]).hash();
        assert!(!seen.contains(&h), "{what} did not change the hash");
        seen.push(h);
    };
    write(root, "src/main.c", "int main() { return 1; }\n");
    changed("content");
    chmod(root, "src/main.c", 0o744);
    changed("exec bit");
    fs::remove_file(root.join("main")).expect("rm");
    symlink("src/lib/util.c", root.join("main")).expect("symlink");
    changed("symlink target");
    fs::rename(root.join("run.sh"), root.join("run2.sh")).expect("rename");
    changed("file name");
    fs::create_dir(root.join("empty")).expect("mkdir");
    changed("new empty directory");
}

#[test]
fn mtime_alone_does_not_change_the_hash() {
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path());
    let before = scan(dir.path(), &["."]).hash();
    age(dir.path(), "src/main.c");
    assert_eq!(scan(dir.path(), &["."]).hash(), before);
}

#[test]
fn gitignore_and_kilnignore_exclude_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    write(root, ".gitignore", "*.o\ntarget/\nkeep.log\n");
    write(root, "app/.kilnignore", "secret.txt\n!keep.log\n");
    for f in [
        "app/a.c",
        "app/a.o",
        "app/secret.txt",
        "app/keep.log",
        "app/target/x",
        "b.o",
    ] {
        write(root, f, f);
    }
    // No git repository here, and git's own per-repository excludes are not ours.
    write(root, ".git/info/exclude", "app/a.c\n");
    let tree = scan(root, &["."]);
    assert_eq!(
        paths(&tree),
        [
            ".gitignore",
            "app",
            "app/.kilnignore",
            "app/a.c",
            "app/keep.log"
        ]
    );
    // The context's rules apply to a nested src too.
    assert_eq!(
        paths(&scan(root, &["app"])),
        ["app", "app/.kilnignore", "app/a.c", "app/keep.log"]
    );
    // A src named explicitly is taken even if a rule ignores it.
    assert_eq!(paths(&scan(root, &["app/a.o"])), ["app", "app/a.o"]);
}

#[test]
fn nested_srcs_bring_their_parents_once() {
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path());
    let tree = scan(dir.path(), &["src/lib/util.c", "src/lib", "run.sh"]);
    assert_eq!(paths(&tree), ["run.sh", "src", "src/lib", "src/lib/util.c"]);
    assert_eq!(tree.entries[1].kind, EntryKind::Dir);
}

#[test]
fn symlinks_are_recorded_not_followed() {
    let (dir, outside) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write(outside.path(), "big/file", "not a source");
    symlink(outside.path().join("big"), dir.path().join("out")).expect("symlink");
    let tree = scan(dir.path(), &["out"]);
    let target = outside
        .path()
        .join("big")
        .to_str()
        .expect("utf-8")
        .to_owned();
    assert_eq!(
        tree.entries,
        [Entry {
            path: "out".into(),
            kind: EntryKind::Symlink { target }
        }]
    );
    // A src that goes through a symlink would escape the context.
    let err = scan_sources(
        dir.path(),
        &srcs(&["out/file"]),
        &StatCache::load(dir.path().join("c")),
    );
    assert!(matches!(err, Err(TreeError::NotADir { .. })), "{err:?}");
}

#[test]
fn odd_entries_are_errors_naming_the_path() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let name = std::ffi::OsStr::from_bytes(b"bad\xff");
    fs::write(dir.path().join(name), "x").expect("write");
    assert!(
        matches!(scan_dir(dir.path()), Err(TreeError::NonUtf8 { path }) if path.ends_with(name))
    );
    fs::remove_file(dir.path().join(name)).expect("rm");
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("no nul");
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    assert!(matches!(scan_dir(dir.path()), Err(TreeError::Special { path }) if path == fifo));
}

#[test]
fn a_warm_scan_reads_no_file_and_survives_save_and_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let (root, cache_file) = (dir.path().join("p"), dir.path().join("cache/stat"));
    project(&root);
    for f in ["src/main.c", "src/lib/util.c", "run.sh", ".hidden"] {
        age(&root, f);
    }
    let cache = StatCache::load(cache_file.clone());
    let cold = scan_sources(&root, &srcs(&["."]), &cache).expect("scan");
    assert_eq!(cache.files_hashed(), 4);
    let warm = scan_sources(&root, &srcs(&["."]), &cache).expect("scan");
    assert_eq!((cache.files_hashed(), &warm), (4, &cold));
    cache.save().expect("save");

    let loaded = StatCache::load(cache_file);
    assert_eq!(
        scan_sources(&root, &srcs(&["."]), &loaded).expect("scan"),
        cold
    );
    assert_eq!(loaded.files_hashed(), 0);
    write(&root, "src/main.c", "changed");
    let changed = scan_sources(&root, &srcs(&["."]), &loaded).expect("scan");
    assert_eq!(loaded.files_hashed(), 1);
    assert_ne!(changed.hash(), cold.hash());
}

#[test]
fn a_file_rewritten_within_the_same_tick_is_seen() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("p");
    write(&root, "f", "one");
    let mtime = fs::metadata(root.join("f"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let cache = StatCache::load(dir.path().join("stat"));
    let first = scan_sources(&root, &srcs(&["f"]), &cache).expect("scan");
    // Same size, same mtime: only the content differs, as after two writes
    // within one tick of the filesystem's clock.
    write(&root, "f", "two");
    fs::File::options()
        .write(true)
        .open(root.join("f"))
        .and_then(|f| f.set_modified(mtime))
        .expect("mtime");
    let second = scan_sources(&root, &srcs(&["f"]), &cache).expect("scan");
    assert_ne!(first.hash(), second.hash());
    assert_eq!(cache.files_hashed(), 2);
}

#[test]
fn copy_tree_round_trips_even_from_a_read_only_tree() {
    let dir = tempfile::tempdir().expect("tmp");
    let (root, dest) = (dir.path().join("p"), dir.path().join("dest"));
    project(&root);
    let tree = scan(&root, &["src/lib", "run.sh", "main"]);
    set_readonly(&root, true).expect("lock");
    copy_tree(&tree, &root, &dest).expect("copy");
    assert_eq!(scan_dir(&dest).expect("scan"), tree);
    let mode = fs::metadata(dest.join("run.sh"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    fs::write(dest.join("src/lib/util.c"), "the copy is writable").expect("write");
    set_readonly(&root, false).expect("unlock");
}

#[test]
fn set_readonly_locks_and_unlocks_a_tree() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("p");
    project(&root);
    set_readonly(&root, true).expect("lock");
    let mode = |rel: &str| {
        fs::symlink_metadata(root.join(rel))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        [mode("src"), mode("src/main.c"), mode("run.sh")],
        [0o555, 0o444, 0o555]
    );
    // SAFETY: geteuid has no preconditions. Root ignores permission bits.
    if unsafe { libc::geteuid() } != 0 {
        assert!(fs::write(root.join("src/main.c"), "x").is_err());
        assert!(fs::remove_file(root.join("src/main.c")).is_err());
    }
    set_readonly(&root, false).expect("unlock");
    assert_eq!([mode("src"), mode("src/main.c")], [0o755, 0o644]);
    fs::remove_dir_all(&root).expect("a writable tree can be deleted");
}

#[test]
fn unlocking_opens_a_directory_a_script_left_unreadable_before_reading_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("out");
    fs::create_dir_all(root.join("d")).expect("mkdir");
    fs::write(root.join("d/f"), "x").expect("write");
    fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o000)).expect("chmod");
    set_readonly(&root, false).expect("unlock");
    let mode = fs::metadata(root.join("d"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o700, 0o700, "{mode:o}");
    fs::remove_dir_all(&root).expect("deletable");
}

#[test]
fn a_source_edited_between_scan_and_copy_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("ctx");
    write(&root, "main.c", "int main(void) { return 0; }\n");
    let tree = scan(&root, &["main.c"]);
    write(&root, "main.c", "int main(void) { return 1; }\n");
    let err = copy_tree(&tree, &root, &dir.path().join("build")).expect_err("changed");
    assert!(
        matches!(&err, TreeError::Changed { path } if path.ends_with("main.c")),
        "{err:?}"
    );
}
