//! Reading files out of an image archive, whatever carries it: a tar
//! (docker-archive or oci-archive, optionally gzip/zstd-compressed) or a
//! directory (an OCI layout). Tars are streamed once into a staging
//! directory inside the blob store, hashing every file on the way, so a
//! verified blob is then moved into the store, not copied a second time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

use tempfile::{TempDir, TempPath};

use super::blobs::BlobStore;
use super::error::{BaseError, Unsafe};
use super::image::Compression;
use crate::hash::Digest;

/// The files of an image archive, by their normalised path inside it.
pub(crate) enum Source {
    Dir(PathBuf),
    Tar(Staged),
}

pub(crate) struct Staged {
    files: BTreeMap<String, StagedFile>,
    /// Symlink entries (docker save links repeated layers), already resolved
    /// lexically against the archive root.
    links: BTreeMap<String, String>,
    _dir: TempDir,
}

struct StagedFile {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// A blob taken from the archive into a temporary file of the blob store.
pub(crate) enum Taken {
    /// Written to a temp file the caller commits (or drops) after verifying.
    Temp(TempPath, Digest, u64),
    /// A staged tar member: already hashed; committing moves it.
    Staged(PathBuf, Digest, u64),
}

impl Taken {
    pub(crate) fn digest(&self) -> (Digest, u64) {
        match self {
            Taken::Temp(_, d, n) | Taken::Staged(_, d, n) => (*d, *n),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Taken::Temp(p, ..) => p,
            Taken::Staged(p, ..) => p,
        }
    }
}

impl Source {
    pub(crate) fn open(archive: &Path, store: &BlobStore) -> Result<Source, BaseError> {
        let meta = std::fs::metadata(archive).map_err(BaseError::io(archive))?;
        if meta.is_dir() {
            return Ok(Source::Dir(archive.to_owned()));
        }
        stage_tar(archive, store).map(Source::Tar)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(name).is_file(),
            Source::Tar(t) => t.resolve(name).is_some(),
        }
    }

    /// The bytes of a small file (a manifest, index or config).
    pub(crate) fn read(&self, archive: &Path, name: &str) -> Result<Vec<u8>, BaseError> {
        let path = self.locate(archive, name)?;
        std::fs::read(&path).map_err(BaseError::io(path))
    }

    /// Takes a blob out of the archive, hashed, ready to commit to the store.
    pub(crate) fn take(
        &self,
        archive: &Path,
        name: &str,
        store: &BlobStore,
    ) -> Result<Taken, BaseError> {
        match self {
            Source::Tar(t) => {
                let f = t.resolve(name).ok_or_else(|| missing(archive, name))?;
                Ok(Taken::Staged(f.path.clone(), f.digest, f.size))
            }
            Source::Dir(_) => {
                let path = self.locate(archive, name)?;
                let file = File::open(&path).map_err(BaseError::io(&path))?;
                let (tmp, digest, size) = store.write(BufReader::new(file))?;
                Ok(Taken::Temp(tmp, digest, size))
            }
        }
    }

    fn locate(&self, archive: &Path, name: &str) -> Result<PathBuf, BaseError> {
        match self {
            Source::Dir(dir) => {
                let rel = normalise(name).map_err(|_| missing(archive, name))?;
                let path = dir.join(rel);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(missing(archive, name))
                }
            }
            Source::Tar(t) => t
                .resolve(name)
                .map(|f| f.path.clone())
                .ok_or_else(|| missing(archive, name)),
        }
    }
}

impl Staged {
    fn resolve(&self, name: &str) -> Option<&StagedFile> {
        let mut name = normalise(name).ok()?;
        // A bound on link chains: docker save links at most once; cycles stop here.
        for _ in 0..8 {
            if let Some(f) = self.files.get(&name) {
                return Some(f);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

fn missing(archive: &Path, name: &str) -> BaseError {
    BaseError::MissingBlob {
        archive: archive.to_owned(),
        blob: name.to_owned(),
    }
}

/// `./a//b` → `a/b`; `..` may step back but never above the archive root.
pub(crate) fn normalise(name: &str) -> Result<String, Unsafe> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().ok_or(Unsafe::ParentDir)?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or(Unsafe::ParentDir)?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(Unsafe::Absolute),
        }
    }
    Ok(parts.join("/"))
}

fn stage_tar(archive: &Path, store: &BlobStore) -> Result<Staged, BaseError> {
    let unknown = || BaseError::UnknownFormat {
        archive: archive.to_owned(),
    };
    let tmp_root = store.tmp_dir();
    let dir = tempfile::Builder::new()
        .prefix("archive-")
        .tempdir_in(&tmp_root)
        .map_err(BaseError::io(&tmp_root))?;
    let mut file = BufReader::new(File::open(archive).map_err(BaseError::io(archive))?);
    let head = std::io::BufRead::fill_buf(&mut file).map_err(BaseError::io(archive))?;
    let decoder = Compression::sniff(head)
        .decoder(file)
        .map_err(BaseError::io(archive))?;
    let mut tar = tar::Archive::new(decoder);
    let mut staged = Staged {
        files: BTreeMap::new(),
        links: BTreeMap::new(),
        _dir: dir,
    };
    let entries = tar.entries().map_err(|_| unknown())?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|_| unknown())?;
        let raw = entry.path().map_err(|_| unknown())?.into_owned();
        let unsafe_entry = |reason| BaseError::UnsafeEntry {
            within: archive.display().to_string(),
            entry: raw.clone(),
            reason,
        };
        let name = normalise(&raw.to_string_lossy()).map_err(unsafe_entry)?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = staged._dir.path().join(i.to_string());
                let out = File::create(&path).map_err(BaseError::io(&path))?;
                let mut w = super::image::HashingWriter::new(out);
                std::io::copy(&mut entry, &mut w).map_err(BaseError::io(archive))?;
                let (_, digest, size) = w.finish();
                staged.files.insert(name, StagedFile { path, digest, size });
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|_| unknown())?
                    .unwrap_or_default();
                let base = if entry.header().entry_type() == tar::EntryType::Link {
                    String::new()
                } else {
                    Path::new(&name)
                        .parent()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                let outside = || unsafe_entry(Unsafe::LinkOutside(target.to_path_buf()));
                if target.is_absolute() {
                    return Err(outside());
                }
                let resolved = normalise(&Path::new(&base).join(&target).to_string_lossy())
                    .map_err(|_| outside())?;
                staged.links.insert(name, resolved);
            }
            _ => {}
        }
    }
    if staged.files.is_empty() {
        return Err(unknown());
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_inside_the_archive_root() {
        assert_eq!(
            normalise("./blobs//sha256/ab").as_deref(),
            Ok("blobs/sha256/ab")
        );
        assert_eq!(normalise("a/../b/layer.tar").as_deref(), Ok("b/layer.tar"));
        assert_eq!(normalise("../etc/passwd"), Err(Unsafe::ParentDir));
        assert_eq!(normalise("/etc/passwd"), Err(Unsafe::Absolute));
    }
}
