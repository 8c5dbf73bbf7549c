//! The store's behaviour as builders and `kiln store` rely on it, on real
//! temp directories (and, for locking, real threads and processes).

mod build;
mod maintenance;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;

pub(super) fn key(s: &str) -> Key {
    Key::from(blake3::hash(s.as_bytes()))
}

pub(super) fn name(s: &str) -> Name {
    Name::new(s).expect("a valid test name")
}

pub(super) fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

/// Builds `key` as a builder does: lock, look up, build on a miss.
/// Returns the entry and whether this call built it.
pub(super) fn build(store: &Store, k: &Key, n: &str, content: &str) -> (Entry, bool) {
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
pub(super) fn age(store: &Store, k: &Key, days: u64) {
    let meta = store.layout.meta_file(&k.short());
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 60 * 60);
    let file = fs::File::options()
        .write(true)
        .open(&meta)
        .expect("open meta");
    file.set_modified(then).expect("set mtime");
}

pub(super) fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).expect("read dir").next().is_none()
}

pub(super) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
