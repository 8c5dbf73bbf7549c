//! A store entry's output tree ↔ one zstd tar blob. Packing reads the
//! entry; unpacking treats the blob as untrusted (`base::unpack_layer`).

use std::io::Write;
use std::path::Path;

use super::CacheError;
use super::entry::{Contents, TREE_TYPE, TreeBlob};
use crate::base::{Budget, Compression, Layer};
use crate::fsx::IoContext;
use crate::hash::Sha256Writer;
use crate::tree::EntryKind;

/// A packed tree in a temporary file (deleted when dropped).
pub(super) struct Packed {
    file: tempfile::TempPath,
    pub layer: TreeBlob,
    pub contents: Contents,
}

impl Packed {
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// Packs the tree at `dir` into a file in `scratch`: entries in the
/// tree's order (sorted), owned by root, mtime 0, modes 0755/0644 by the
/// executable bit: what the output hash covers, and nothing else.
pub(super) fn pack(dir: &Path, scratch: &Path) -> Result<Packed, CacheError> {
    let tree = crate::tree::scan_dir(dir)?;
    let file = tempfile::NamedTempFile::new_in(scratch).at(scratch)?;
    let tmp = file.path().to_owned();
    let mut zstd = zstd::Encoder::new(Sha256Writer::new(file), 3).at(&tmp)?;
    // Several threads: a large output is compressed at the speed of the disk.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    zstd.multithread(threads).at(&tmp)?;
    let mut tar = tar::Builder::new(zstd);
    for entry in &tree.entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        let path = dir.join(&entry.path);
        match &entry.kind {
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, &entry.path, std::io::empty())
                    .at(&tmp)?;
            }
            EntryKind::File {
                executable, size, ..
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if *executable { 0o755 } else { 0o644 });
                h.set_size(*size);
                let f = std::fs::File::open(&path).at(&path)?;
                tar.append_data(&mut h, &entry.path, std::io::Read::take(f, *size))
                    .at(&tmp)?;
            }
            EntryKind::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, &entry.path, target).at(&tmp)?;
            }
        }
    }
    let zstd = tar.into_inner().at(&tmp)?;
    let (mut file, digest, size) = zstd.finish().at(&tmp)?.finish();
    file.flush().at(&tmp)?;
    let contents = Contents {
        entries: tree.entries.len() as u64,
        bytes: (tree.entries.iter())
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum(),
    };
    Ok(Packed {
        file: file.into_temp_path(),
        layer: TreeBlob { digest, size },
        contents,
    })
}

/// Unpacks the blob at `blob` (already checked against `tree.digest` as it
/// was downloaded; checked again as it is read) into `out`.
pub(super) fn unpack(
    blob: &Path,
    tree: &TreeBlob,
    contents: Contents,
    out: &Path,
) -> Result<(), CacheError> {
    let layer = Layer {
        digest: tree.digest,
        // Not a layer of an image: nothing reads its diff_id.
        diff_id: tree.digest,
        media_type: TREE_TYPE.to_owned(),
        compression: Compression::Zstd,
        size: tree.size,
        blob: blob.to_owned(),
    };
    let budget = Budget {
        entries: contents.entries,
        bytes: contents.bytes,
    };
    Ok(crate::base::unpack_layer(&layer, out, budget)?)
}
