//! An archive base's content, hashed when planning: what pins every byte
//! of the base's store entry, so that an image made from the base is keyed
//! without importing it (a build whose cache has the image leaves the base
//! where it is). Reads the filesystem through the stat cache, as sources
//! are read: an unchanged archive costs a `stat` per file.
//!
//! Importing is a function of the bytes the importer reads (the archive
//! tar, or the files of an image directory), the pinned config digest and
//! kiln's importer (the `BASE` family's version): never of the archive's
//! path, mtime or owner. The content is what is read: a tar file as a
//! whole (after following a link to it, as the importer opens it), an
//! image directory as a tree of every entry, ignore rules or not (the
//! importer reads past them).

use std::path::Path;

use crate::fsx::IoContext;
use crate::hash::{KeyWriter, OutputHash, StableHash};
use crate::tree::{self, StatCache, TreeError};

/// What an archive base is read from, by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArchiveContent {
    /// A docker-archive or oci-archive tar (compressed or not): the blake3
    /// of the file's bytes.
    Tar([u8; 32]),
    /// An OCI layout directory: the tree hash of everything under it.
    Dir(OutputHash),
}

/// Shown as `tar <blake3>` or `dir <tree hash>`.
impl StableHash for ArchiveContent {
    fn write_key(&self, w: &mut KeyWriter) {
        match self {
            ArchiveContent::Tar(content) => {
                w.tag("tar");
                content.write_key(w);
            }
            ArchiveContent::Dir(tree) => {
                w.tag("dir");
                tree.write_key(w);
            }
        }
    }
}

/// The content of the archive at `path` (a tar file or an image
/// directory), through `cache`.
pub(super) fn content_of(path: &Path, cache: &StatCache) -> Result<ArchiveContent, TreeError> {
    // Both the importer and this follow a link to the archive itself.
    let real = std::fs::canonicalize(path).at(path)?;
    let meta = std::fs::metadata(&real).at(&real)?;
    if meta.is_dir() {
        Ok(ArchiveContent::Dir(tree::scan_whole(&real, cache)?.hash()))
    } else {
        Ok(ArchiveContent::Tar(tree::hash_one(&real, cache)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> StatCache {
        StatCache::load(dir.join("statcache"))
    }

    #[test]
    fn a_tar_is_its_bytes_wherever_it_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = cache(dir.path());
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        std::fs::write(&a, b"tar bytes").expect("write");
        std::fs::write(&b, b"tar bytes").expect("write");
        let content = content_of(&a, &cache).expect("hashed");
        assert_eq!(content, content_of(&b, &cache).expect("hashed"));
        std::fs::write(&b, b"tar bytez").expect("write");
        assert_ne!(content, content_of(&b, &cache).expect("hashed"));
        // Through a link, what it points to.
        let link = dir.path().join("link.tar");
        std::os::unix::fs::symlink(&a, &link).expect("symlink");
        assert_eq!(content, content_of(&link, &cache).expect("hashed"));
    }

    #[test]
    fn a_directory_is_every_entry_under_it_ignore_rules_or_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = cache(dir.path());
        let layout = |name: &str| {
            let root = dir.path().join(name);
            std::fs::create_dir_all(root.join("blobs/sha256")).expect("mkdir");
            std::fs::write(root.join("index.json"), b"{}").expect("write");
            std::fs::write(root.join("blobs/sha256/ab"), b"blob").expect("write");
            root
        };
        let (a, b) = (layout("a"), layout("b"));
        let content = content_of(&a, &cache).expect("hashed");
        assert!(matches!(content, ArchiveContent::Dir(_)), "{content:?}");
        assert_eq!(content, content_of(&b, &cache).expect("hashed"));
        std::fs::write(b.join(".gitignore"), b"blobs/\n").expect("write");
        std::fs::write(a.join(".gitignore"), b"blobs/\n").expect("write");
        let ignoring = content_of(&a, &cache).expect("hashed");
        std::fs::write(b.join("blobs/sha256/ab"), b"bolb").expect("write");
        assert_ne!(ignoring, content_of(&b, &cache).expect("hashed"));
    }

    #[test]
    fn a_tar_and_a_directory_are_told_apart() {
        let tar = ArchiveContent::Tar([1; 32]);
        let dir = ArchiveContent::Dir(OutputHash::from_bytes([1; 32]));
        let key = |c: &ArchiveContent| crate::hash::TREE.key(c);
        assert_ne!(key(&tar), key(&dir));
    }
}
