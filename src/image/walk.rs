//! Plans a layer's entries from disk: what a `copy`/`add` puts where in the
//! image, with the spec's modes and owner applied and the missing parent
//! directories added. Reads the filesystem (metadata, and file contents to
//! hash them); the result is the exact list the layer tar is made of, so its
//! hash is the layer's cache key.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::error::ExportError;
use super::model::{Entry, Kind};
use crate::fsx::IoContext;
use crate::hash::{KeyWriter, OutputHash, STORED_FILE, StableHash};
use crate::spec::{ContentAttrs, Owner};

/// Where copied files come from, which decides how their content is known.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A file or directory of the build context: hashed, it may change.
    Context,
    /// Of the build context, limited to `keep` (on-disk paths): what
    /// `.gitignore`/`.kilnignore` leave of an `add`.
    Added {
        keep: &'a std::collections::HashSet<PathBuf>,
    },
    /// Inside a store entry whose output hash is `output`, at `path` within
    /// it. Store entries never change and `output` covers every byte, so a
    /// file's identity is (output, its path): nothing needs to be read.
    Stored {
        output: &'a OutputHash,
        path: &'a str,
    },
}

/// The entries that copying `source` (a file, directory or symlink on disk)
/// to the absolute image path `attrs.to` produces, sorted by path (parents
/// before children), each file's content identified.
pub(crate) fn plan(
    source: &Path,
    attrs: &ContentAttrs,
    origin: Source<'_>,
) -> Result<Vec<Entry>, ExportError> {
    let dest = attrs.to.value.trim_matches('/').to_owned();
    let mut entries = parents(&dest);
    let keep = match origin {
        Source::Added { keep } => Some(keep),
        Source::Context | Source::Stored { .. } => None,
    };
    collect(source, &dest, attrs, keep, &mut entries)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    // A later entry for the same path (the copied root over a parent) wins.
    entries.reverse();
    entries.dedup_by(|later, earlier| later.path == earlier.path);
    entries.reverse();
    match origin {
        Source::Context | Source::Added { .. } => {
            entries.par_iter_mut().try_for_each(hash_content)?
        }
        Source::Stored { output, path } => {
            for entry in &mut entries {
                stored_identity(entry, source, output, path);
            }
        }
    }
    Ok(entries)
}

/// `a/b/c` needs `a` and `a/b`: root-owned, 0o755, as an engine would make them.
fn parents(dest: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = dest[at..].find('/') {
        at += i;
        out.push(Entry {
            path: dest[..at].to_owned(),
            kind: Kind::Dir,
            mode: 0o755,
            owner: Owner::default(),
        });
        at += 1;
    }
    out
}

fn collect(
    disk: &Path,
    path: &str,
    attrs: &ContentAttrs,
    keep: Option<&std::collections::HashSet<PathBuf>>,
    out: &mut Vec<Entry>,
) -> Result<(), ExportError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(disk).at(disk)?;
    let ft = meta.file_type();
    let entry = |kind, mode| Entry {
        path: path.to_owned(),
        kind,
        mode,
        owner: attrs.owner,
    };
    if ft.is_symlink() {
        let target = std::fs::read_link(disk).at(disk)?;
        let target = target.to_string_lossy().into_owned();
        out.push(entry(Kind::Symlink { target }, 0o777));
    } else if ft.is_file() {
        let executable = meta.permissions().mode() & 0o111 != 0;
        let mode = attrs.mode.unwrap_or(if executable { 0o755 } else { 0o644 });
        let kind = Kind::File {
            disk: disk.to_owned(),
            size: meta.len(),
            content: [0; 32],
        };
        out.push(entry(kind, mode));
    } else if ft.is_dir() {
        // The image root itself is not an entry: engines own `/`.
        if !path.is_empty() {
            out.push(entry(Kind::Dir, 0o755));
        }
        let read = std::fs::read_dir(disk).at(disk)?;
        for child in read {
            let child = child.at(disk)?;
            let name = child.file_name();
            let name = name.to_string_lossy();
            let sub = if path.is_empty() {
                name.into_owned()
            } else {
                format!("{path}/{name}")
            };
            if keep.is_some_and(|keep| !keep.contains(&child.path())) {
                continue;
            }
            collect(&child.path(), &sub, attrs, keep, out)?;
        }
    } else {
        return Err(ExportError::Special {
            path: disk.to_owned(),
        });
    }
    Ok(())
}

fn stored_identity(entry: &mut Entry, source: &Path, output: &OutputHash, path: &str) {
    if let Kind::File { disk, content, .. } = &mut entry.kind {
        let within = disk.strip_prefix(source).unwrap_or(disk);
        *content = STORED_FILE.key(&StoredFile {
            output,
            path,
            within,
        });
    }
}

/// A file of a store entry, by where it is: stands for its content hash.
struct StoredFile<'a> {
    output: &'a OutputHash,
    /// The copied path, inside the entry.
    path: &'a str,
    /// The file, under the copied path (empty when that is the file).
    within: &'a Path,
}

impl StableHash for StoredFile<'_> {
    fn write_key(&self, w: &mut KeyWriter) {
        let StoredFile {
            output,
            path,
            within,
        } = self;
        w.field("output", output);
        w.field("path", path);
        w.field("within", within);
    }
}

fn hash_content(entry: &mut Entry) -> Result<(), ExportError> {
    if let Kind::File { disk, content, .. } = &mut entry.kind {
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap(&*disk).at(&*disk)?;
        *content = *hasher.finalize().as_bytes();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::attrs;

    #[test]
    fn a_single_file_gets_its_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("goapp"), "bin").unwrap();
        let entries = plan(
            &dir.path().join("goapp"),
            &attrs("/app/bin/goapp"),
            Source::Context,
        )
        .unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["app", "app/bin", "app/bin/goapp"]);
        assert_eq!(entries[2].mode, 0o644);
    }

    #[test]
    fn a_directory_copied_to_root_is_sorted_with_modes_and_owner_applied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/x"), "x").unwrap();
        std::fs::write(dir.path().join("a-run"), "#!").unwrap();
        let perm = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(dir.path().join("a-run"), perm).unwrap();
        std::os::unix::fs::symlink("b/x", dir.path().join("c")).unwrap();
        let mut a = attrs("/");
        a.owner = Owner {
            uid: 1000,
            gid: 100,
        };
        let entries = plan(dir.path(), &a, Source::Context).unwrap();
        let got: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        assert_eq!(
            got,
            [("a-run", 0o755), ("b", 0o755), ("b/x", 0o644), ("c", 0o777)]
        );
        assert!(entries.iter().all(|e| e.owner
            == Owner {
                uid: 1000,
                gid: 100
            }));
        assert_eq!(
            entries[3].kind,
            Kind::Symlink {
                target: "b/x".into()
            }
        );
    }

    #[test]
    fn an_explicit_mode_overrides_the_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "f").unwrap();
        let mut a = attrs("/f");
        a.mode = Some(0o4711);
        let entries = plan(&dir.path().join("f"), &a, Source::Context).unwrap();
        assert_eq!(entries[0].mode, 0o4711);
    }
}
