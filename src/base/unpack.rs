//! `rootfs`: an imported image's layers → a directory a sandbox can use as `/`.
//!
//! A layer is untrusted input. Every entry's path is relative and free of
//! `..`; every directory on the way to it is checked with `symlink_metadata`
//! and must be a real directory inside the rootfs, so an earlier symlink
//! entry (`a -> /etc`) can never carry a later one (`a/passwd`) outside;
//! the final component is removed before it is created (`O_EXCL`), so no
//! write ever follows a link. Hardlinks must point at a file already inside
//! the rootfs; device nodes and fifos are refused (an unprivileged build
//! could not create them anyway). Ownership is not applied: we are not root.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{BufReader, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::error::{BaseError, Unsafe};
use super::image::{CopyFailed, ImportedImage, Layer};
use super::whiteout::{LayerPath, classify};
use crate::fsx::{AtomicFile, IoContext};
use crate::hash::Sha256Reader;

/// Prefix of a rootfs being unpacked (or deleted by gc): never used as one.
pub(super) const UNPACKING: &str = ".unpacking-";

/// `rootfs/<config hex>.tree` records the tree hash of `rootfs/<config hex>/`
/// as unpacked, for `kiln store verify`.
pub(super) const TREE_EXT: &str = "tree";

/// Unpacks the layers, bottom first, into `rootfs_dir/<config hex>/`, built
/// in a temporary directory beside it and renamed into place, so the rootfs
/// is never seen half-unpacked; an existing one is reused as is (and marked
/// used, for gc). Each layer blob is hashed as it is read and must match its
/// digest: a damaged blob in the store never becomes a root filesystem.
pub fn rootfs(image: &ImportedImage, rootfs_dir: &Path) -> Result<PathBuf, BaseError> {
    let dest = rootfs_dir.join(image.config_digest.hex());
    if dest.is_dir() {
        super::maintenance::touch(&dest);
        return Ok(dest);
    }
    std::fs::create_dir_all(rootfs_dir).at(rootfs_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(UNPACKING)
        .tempdir_in(rootfs_dir)
        .at(rootfs_dir)?;
    let mut dirs = BTreeMap::new();
    for layer in &image.layers {
        apply(layer, tmp.path(), &mut dirs, Names::Whiteouts)?;
    }
    finish_dirs(tmp.path(), &dirs)?;
    std::fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).at(tmp.path())?;
    record_tree(tmp.path(), &dest)?;
    let built = tmp.keep();
    match std::fs::rename(&built, &dest) {
        Ok(()) => Ok(dest),
        // Another process unpacked the same image meanwhile: use theirs.
        Err(_) if dest.is_dir() => {
            let _ = crate::tree::remove_tree(&built);
            Ok(dest)
        }
        Err(e) => Err(BaseError::io(dest)(e)),
    }
}

/// Unpacks one tar into `root`, an existing empty directory, with the same
/// checks as a rootfs (the blob's digest, every path), every name taken as
/// it is (`.wh.` names are files here, not whiteouts): for a tree that
/// arrives as a layer from a source kiln does not trust (the remote cache).
///
/// `budget`: how many entries and file bytes the tree was said to hold; an
/// entry past either is refused before it is written (a small blob can
/// inflate to fill the disk).
pub fn unpack_layer(layer: &Layer, root: &Path, budget: Budget) -> Result<(), BaseError> {
    let mut dirs = BTreeMap::new();
    apply(layer, root, &mut dirs, Names::Literal(budget))?;
    finish_dirs(root, &dirs)
}

/// Writes the tree hash of `built` as the record of `dest`, before `dest`
/// exists (a record without its rootfs is garbage gc removes). A tree kiln
/// cannot hash (a name that is not UTF-8) gets no record: verify reports it.
fn record_tree(built: &Path, dest: &Path) -> Result<(), BaseError> {
    let record = super::maintenance::tree_record(dest);
    let Ok(tree) = crate::tree::scan_dir(built) else {
        return Ok(());
    };
    let dir = record.parent().expect("kiln bug: a rootfs has a parent");
    let mut tmp = AtomicFile::create_in(&record, dir, UNPACKING)?;
    writeln!(tmp, "{}", tree.hash()).at(tmp.tmp_path())?;
    tmp.commit()?;
    Ok(())
}

/// Where an entry is being unpacked, for error messages.
struct Ctx<'a> {
    within: String,
    entry: &'a Path,
}

impl Ctx<'_> {
    fn refuse(&self, reason: Unsafe) -> BaseError {
        BaseError::UnsafeEntry {
            within: self.within.clone(),
            entry: self.entry.to_owned(),
            reason,
        }
    }
}

/// How many entries, and bytes of files, a tree may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub entries: u64,
    pub bytes: u64,
}

/// How an entry's name is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// An image layer's: `.wh.` names delete what the layers below hold.
    Whiteouts,
    /// A plain tree's: every name is a file or directory of its own, and
    /// the tree holds at most so much.
    Literal(Budget),
}

fn apply(
    layer: &Layer,
    root: &Path,
    dirs: &mut BTreeMap<PathBuf, u32>,
    names: Names,
) -> Result<(), BaseError> {
    let file = File::open(&layer.blob).at(&layer.blob)?;
    let mut hashing = Sha256Reader::new(BufReader::new(file));
    let unpacked = entries_of(layer, &mut hashing, root, dirs, names);
    // A damaged blob is said to be one, whatever it made the tar reader do.
    let (actual, _) = hashing.finish().at(&layer.blob)?;
    if actual != layer.digest {
        return Err(BaseError::Damaged {
            blob: layer.blob.clone(),
            expected: layer.digest,
            actual,
        });
    }
    unpacked
}

/// Unpacks the entries of one layer, read from `blob`.
fn entries_of(
    layer: &Layer,
    blob: &mut impl std::io::Read,
    root: &Path,
    dirs: &mut BTreeMap<PathBuf, u32>,
    names: Names,
) -> Result<(), BaseError> {
    let bad_tar = |source| BaseError::BadTar {
        blob: layer.blob.clone(),
        source,
    };
    let mut tar = tar::Archive::new(layer.compression.decoder(blob).map_err(bad_tar)?);
    // Paths this layer wrote: an opaque marker hides lower layers only.
    let mut written: HashSet<PathBuf> = HashSet::new();
    // Directories this layer found real (or made): not checked again for
    // every entry below them. Whatever removes a path forgets them all.
    let mut known: HashSet<PathBuf> = HashSet::new();
    let (mut entries, mut bytes) = (0u64, 0u64);
    for entry in tar.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        let ctx = Ctx {
            within: format!("layer {}", layer.digest),
            entry: &raw,
        };
        let rel = relative(&raw).map_err(|r| ctx.refuse(r))?;
        if let Names::Literal(budget) = names {
            entries += 1;
            bytes += entry.header().size().unwrap_or(0);
            if entries > budget.entries || bytes > budget.bytes {
                let said = format!("{} entries, {} bytes", budget.entries, budget.bytes);
                return Err(ctx.refuse(Unsafe::OverBudget(said)));
            }
        }
        let classified = match names {
            Names::Whiteouts => classify(&rel).map_err(|r| ctx.refuse(r))?,
            Names::Literal(_) => match (rel.parent(), rel.file_name()) {
                (Some(dir), Some(name)) => LayerPath::Entry { dir, name },
                _ => LayerPath::Root,
            },
        };
        let (parent, name) = match classified {
            LayerPath::Root => continue,
            LayerPath::Opaque { dir: parent } => {
                if let Some(dir) = walk(root, parent, false, &ctx, &mut known)? {
                    clear_lower(&dir, parent, &written)?;
                }
                known.clear();
                continue;
            }
            LayerPath::Whiteout { dir: parent, name } => {
                if let Some(dir) = walk(root, parent, false, &ctx, &mut known)? {
                    remove(&dir.join(name))?;
                }
                known.clear();
                continue;
            }
            LayerPath::Entry { dir, name } => (dir, name),
        };
        let dir = walk(root, parent, true, &ctx, &mut known)?
            .expect("kiln bug: walk creates missing parents");
        let target = dir.join(name);
        let mode = entry.header().mode().unwrap_or(0o644);
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Directory && known.contains(&rel) {
            // A directory is about to be replaced, and what was under it.
            known.clear();
        }
        match kind {
            tar::EntryType::Directory => {
                if !known.contains(&rel) && !is_real_dir(&target) {
                    remove(&target)?;
                    std::fs::create_dir(&target).at(&target)?;
                }
                known.insert(rel.clone());
                dirs.insert(rel.clone(), mode);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove(&target)?;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .at(&target)?;
                super::image::copy(&mut entry, &mut out).map_err(|e| match e {
                    CopyFailed::Read(e) => bad_tar(e),
                    CopyFailed::Write(e) => BaseError::io(&target)(e),
                })?;
                // setuid/setgid dropped: the file belongs to whoever runs kiln.
                out.set_permissions(Permissions::from_mode(mode & 0o777 | 0o400))
                    .at(&target)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(bad_tar)?
                    .unwrap_or_default()
                    .into_owned();
                remove(&target)?;
                // Kept as is: it is only ever resolved inside the sandbox.
                std::os::unix::fs::symlink(&link, &target).at(&target)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(bad_tar)?
                    .unwrap_or_default()
                    .into_owned();
                let source = hardlink_source(root, &link, &ctx)?;
                remove(&target)?;
                std::fs::hard_link(&source, &target).at(&target)?;
            }
            tar::EntryType::Char => return Err(ctx.refuse(Unsafe::Special("character device"))),
            tar::EntryType::Block => return Err(ctx.refuse(Unsafe::Special("block device"))),
            tar::EntryType::Fifo => return Err(ctx.refuse(Unsafe::Special("fifo"))),
            // pax/GNU metadata the tar reader did not fold in, sparse files: nothing to write.
            _ => continue,
        }
        written.insert(rel);
    }
    Ok(())
}

/// The entry's path relative to the rootfs: `./` prefixes dropped, absolute
/// paths and any `..` refused.
fn relative(raw: &Path) -> Result<PathBuf, Unsafe> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err(Unsafe::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(Unsafe::Absolute),
        }
    }
    Ok(out)
}

/// `root/rel`, checking that every component is a real directory (creating
/// missing ones when `create`); `None` when one is missing and not `create`.
/// Components in `known` are taken as checked; checked ones are added.
fn walk(
    root: &Path,
    rel: &Path,
    create: bool,
    ctx: &Ctx,
    known: &mut HashSet<PathBuf>,
) -> Result<Option<PathBuf>, BaseError> {
    let mut cur = root.to_owned();
    let mut seen = PathBuf::new();
    for c in rel.components() {
        cur.push(c);
        seen.push(c);
        if known.contains(&seen) {
            continue;
        }
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ctx.refuse(Unsafe::ThroughSymlink(seen)));
            }
            Ok(_) => return Err(ctx.refuse(Unsafe::ThroughNonDirectory(seen))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&cur).at(&cur)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BaseError::io(cur)(e)),
        }
        known.insert(seen.clone());
    }
    Ok(Some(cur))
}

/// A hardlink's target: an existing non-directory inside the rootfs,
/// reached without crossing a symlink.
fn hardlink_source(root: &Path, link: &Path, ctx: &Ctx) -> Result<PathBuf, BaseError> {
    let outside = || ctx.refuse(Unsafe::HardlinkTarget(link.to_owned()));
    let rel = relative(link).map_err(|_| outside())?;
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(outside());
    };
    let dir = walk(root, parent, false, ctx, &mut HashSet::new())?.ok_or_else(outside)?;
    let source = dir.join(name);
    match std::fs::symlink_metadata(&source) {
        Ok(m) if !m.is_dir() => Ok(source),
        _ => Err(outside()),
    }
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Removes whatever is at `path` (never following a symlink); absent is fine.
fn remove(path: &Path) -> Result<(), BaseError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(BaseError::io(path))
}

/// An opaque directory: removes what lower layers put in `dir`, keeping
/// what this layer already wrote there.
fn clear_lower(dir: &Path, rel: &Path, written: &HashSet<PathBuf>) -> Result<(), BaseError> {
    for child in std::fs::read_dir(dir).at(dir)? {
        let child = child.at(dir)?;
        let child_rel = rel.join(child.file_name());
        if !written.contains(&child_rel) {
            remove(&child.path())?;
        } else if is_real_dir(&child.path()) {
            clear_lower(&child.path(), &child_rel, written)?;
        }
    }
    Ok(())
}

/// Applies directory modes last, so a read-only directory does not stop a
/// later entry or layer from writing into it. The owner keeps `rwx`: kiln
/// must be able to traverse and, on gc, delete what it unpacked.
fn finish_dirs(root: &Path, dirs: &BTreeMap<PathBuf, u32>) -> Result<(), BaseError> {
    let ctx = Ctx {
        within: root.display().to_string(),
        entry: root,
    };
    for (rel, mode) in dirs {
        // A later layer may have replaced a parent with a symlink: re-check
        // the whole path rather than chmod through it.
        if walk(root, rel, false, &ctx, &mut HashSet::new()).is_ok_and(|d| d.is_some()) {
            let path = root.join(rel);
            std::fs::set_permissions(&path, Permissions::from_mode(mode & 0o1777 | 0o700))
                .at(&path)?;
        }
    }
    Ok(())
}
