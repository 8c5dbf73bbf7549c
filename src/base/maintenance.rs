//! Looking after what imports and unpacking leave in the store: `kiln store
//! verify` re-hashes every blob and unpacked root filesystem, `kiln store gc`
//! deletes those unused for the keep period and the leftovers of interrupted
//! imports and unpacks. Does filesystem IO.
//!
//! Last use is an mtime, as for store entries: an import that finds a blob
//! (or its import record) touches it, and so does every use of an unpacked
//! rootfs. gc runs only while no other kiln process has the store open
//! (`Store::lock_caches`), so anything in `tmp/` or `.unpacking-*` is dead.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use super::unpack::{TREE_EXT, UNPACKING};
use crate::hash::sha256_of;
use crate::hash::{Digest, OutputHash};
use crate::store::{Damage, Swept};

/// Every blob whose sha256 is not its name, and every unpacked rootfs that
/// no longer hashes to what was recorded when it was unpacked.
pub fn verify(blobs_dir: &Path, rootfs_dir: &Path) -> Vec<Damage> {
    let blobs = files(&blobs_dir.join("sha256"));
    let mut damage: Vec<Damage> = blobs
        .par_iter()
        .filter_map(|path| verify_blob(path).err())
        .collect();
    let roots: Vec<PathBuf> = files(rootfs_dir)
        .into_iter()
        .filter(|p| p.is_dir() && !hidden(p))
        .collect();
    damage.par_extend(roots.par_iter().filter_map(|dir| verify_rootfs(dir).err()));
    damage
}

/// How many blobs and root filesystems [`verify`] looks at.
pub fn count(blobs_dir: &Path, rootfs_dir: &Path) -> (usize, usize) {
    let roots = files(rootfs_dir);
    let roots = roots.iter().filter(|p| p.is_dir() && !hidden(p)).count();
    (files(&blobs_dir.join("sha256")).len(), roots)
}

fn verify_blob(path: &Path) -> Result<(), Damage> {
    let damage = |problem: String| Damage {
        path: path.to_owned(),
        problem,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Ok(named) = format!("sha256:{name}").parse::<Digest>() else {
        return Err(damage(
            "not a blob kiln stored (its name is no sha256)".into(),
        ));
    };
    let file = std::fs::File::open(path).map_err(|e| damage(format!("unreadable: {e}")))?;
    let (actual, _) =
        sha256_of(std::io::BufReader::new(file)).map_err(|e| damage(format!("unreadable: {e}")))?;
    if actual != named {
        return Err(damage(format!("its sha256 is {actual}, not {named}")));
    }
    Ok(())
}

fn verify_rootfs(dir: &Path) -> Result<(), Damage> {
    let damage = |problem: String| Damage {
        path: dir.to_owned(),
        problem,
    };
    let record = tree_record(dir);
    let recorded: OutputHash = std::fs::read_to_string(&record)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            damage(format!(
                "no readable record of its tree hash (`{}`): delete it and kiln unpacks it again",
                record.display()
            ))
        })?;
    let found = crate::tree::scan_dir(dir)
        .map_err(|e| damage(format!("cannot be hashed: {e}")))?
        .hash();
    if found != recorded {
        return Err(damage(format!(
            "modified since it was unpacked: its tree hash is {found}, not {recorded}"
        )));
    }
    Ok(())
}

/// `rootfs/<hex>.tree`: the tree hash of `rootfs/<hex>/` when unpacked.
pub(super) fn tree_record(rootfs: &Path) -> PathBuf {
    rootfs.with_extension(TREE_EXT)
}

/// Deletes blobs, import records and root filesystems unused for `keep`,
/// and every leftover of an interrupted import or unpack. The caller holds
/// the store's caches lock (no import or unpack runs meanwhile).
pub fn collect(blobs_dir: &Path, rootfs_dir: &Path, keep: Duration) -> Swept {
    let now = SystemTime::now();
    let unused = |path: &Path| {
        std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|used| now.duration_since(used).unwrap_or_default() >= keep)
    };
    let mut swept = Swept::default();
    for sub in ["sha256", "imports"] {
        for path in files(&blobs_dir.join(sub)) {
            if unused(&path) {
                let removed = std::fs::remove_file(&path).map(|()| true);
                swept.note(path, removed);
            }
        }
    }
    for path in files(&blobs_dir.join("tmp")) {
        let removed = crate::tree::remove_tree(&path).map(|()| true);
        swept.note(path, removed);
    }
    for path in files(rootfs_dir) {
        if std::fs::symlink_metadata(&path).is_err() {
            continue; // a record, removed above with its rootfs
        }
        let removed = if hidden(&path) {
            crate::tree::remove_tree(&path).map(|()| true)
        } else if path.is_dir() && unused(&path) {
            remove_rootfs(rootfs_dir, &path)
        } else if path.extension().is_some_and(|e| e == TREE_EXT)
            && !path.with_extension("").is_dir()
        {
            // A record whose rootfs is gone (an unpack cut short).
            crate::tree::remove_tree(&path).map(|()| true)
        } else {
            Ok(false)
        };
        swept.note(path, removed);
    }
    swept
}

/// Renames the rootfs out of the way first, so a deletion cut short never
/// leaves a partial tree where an unpacked one is looked for; then its
/// record, which without the tree means nothing.
fn remove_rootfs(rootfs_dir: &Path, dir: &Path) -> Result<bool, crate::tree::TreeError> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let trash = rootfs_dir.join(format!("{UNPACKING}gc-{name}"));
    std::fs::rename(dir, &trash).map_err(|source| crate::tree::TreeError::Write {
        path: dir.to_owned(),
        source,
    })?;
    crate::tree::remove_tree(&trash)?;
    let record = tree_record(dir);
    match std::fs::remove_file(&record) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(crate::tree::TreeError::Write {
            path: record,
            source: e,
        }),
        _ => Ok(true),
    }
}

/// A leftover of an unpack (or of gc) in progress: `.unpacking-*`.
fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(UNPACKING))
}

/// The paths in `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Marks `path` used now; best effort (a read-only shared store still
/// serves what it holds). Opened read-only: a blob is read-only, and the
/// owner may set its times anyway.
pub(super) fn touch(path: &Path) {
    let _ = std::fs::File::open(path).and_then(|f| f.set_modified(SystemTime::now()));
}
