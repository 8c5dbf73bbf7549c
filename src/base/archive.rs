//! Reading files out of an image archive, whatever carries it: a tar
//! (docker-archive or oci-archive, optionally gzip/zstd-compressed) or a
//! directory (an OCI layout). Tars are streamed once into a staging
//! directory inside the blob store, hashing every file on the way, so a
//! verified blob is then moved into the store, not copied a second time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use tempfile::{TempDir, TempPath};

use super::blobs::BlobStore;
use super::dir::{ImageDir, Refused};
use super::error::{BaseError, Unsafe};
use super::image::{Compression, CopyFailed};
use crate::fsx::IoContext;
use crate::hash::Digest;

/// The files of an image archive, by their normalised path inside it.
pub(crate) enum Source {
    /// An image directory, every file opened without following a symlink.
    Dir(ImageDir),
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

/// The most kiln reads of an index, manifest or config: real ones are a few
/// kilobytes; a hostile archive must not make kiln read gigabytes into memory.
const METADATA_MAX: u64 = 16 << 20;

impl Source {
    pub(crate) fn open(archive: &Path, store: &BlobStore) -> Result<Source, BaseError> {
        let meta = std::fs::metadata(archive).at(archive)?;
        if meta.is_dir() {
            let dir = ImageDir::open(archive).at(archive)?;
            return Ok(Source::Dir(dir));
        }
        stage_tar(archive, store).map(Source::Tar)
    }

    /// Whether the archive has anything at `name`; in a directory, a symlink
    /// counts, so that reading it is refused rather than the format unknown.
    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => !matches!(dir.open_file(name), Err(Refused::Missing)),
            Source::Tar(t) => t.resolve(name).is_some(),
        }
    }

    /// The bytes of a small file (a manifest, index or config).
    pub(crate) fn read(&self, archive: &Path, name: &str) -> Result<Vec<u8>, BaseError> {
        let (file, path) = match self {
            Source::Dir(dir) => (open_in(dir, archive, name)?, archive.join(name)),
            Source::Tar(t) => {
                let f = t.resolve(name).ok_or_else(|| missing(archive, name))?;
                (File::open(&f.path).at(&f.path)?, f.path.clone())
            }
        };
        let mut bytes = Vec::new();
        file.take(METADATA_MAX + 1)
            .read_to_end(&mut bytes)
            .at(path)?;
        if bytes.len() as u64 > METADATA_MAX {
            return Err(BaseError::TooLarge {
                archive: archive.to_owned(),
                file: name.to_owned(),
                limit: METADATA_MAX,
            });
        }
        Ok(bytes)
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
            Source::Dir(dir) => {
                let file = open_in(dir, archive, name)?;
                let (tmp, digest, size) = store.write(BufReader::new(file), &archive.join(name))?;
                Ok(Taken::Temp(tmp, digest, size))
            }
        }
    }
}

/// The regular file `name` of an image directory; anything else is refused
/// without being read, so no error can tell its content or its hash.
fn open_in(dir: &ImageDir, archive: &Path, name: &str) -> Result<File, BaseError> {
    let rel = normalise(name).map_err(|_| missing(archive, name))?;
    let refused = |why: String| BaseError::NotRegular {
        archive: archive.to_owned(),
        file: rel.clone(),
        why,
    };
    match dir.open_file(&rel) {
        Ok(file) => Ok(file),
        Err(Refused::Missing) => Err(missing(archive, name)),
        Err(Refused::Symlink(link)) if link == rel => Err(refused("is a symlink".into())),
        Err(Refused::Symlink(link)) => {
            Err(refused(format!("is reached through the symlink `{link}`")))
        }
        Err(Refused::NotDirectory(p)) => Err(refused(format!(
            "is reached through `{p}`, which is not a directory"
        ))),
        Err(Refused::NotRegular) => Err(refused("is not a regular file".into())),
        Err(Refused::Io(e)) => Err(BaseError::io(archive.join(&rel))(e)),
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
        .at(&tmp_root)?;
    let mut file = BufReader::new(File::open(archive).at(archive)?);
    let head = std::io::BufRead::fill_buf(&mut file).at(archive)?;
    let decoder = Compression::sniff(head).decoder(file).at(archive)?;
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
                let out = File::create(&path).at(&path)?;
                let mut w = crate::hash::Sha256Writer::new(out);
                super::image::copy(&mut entry, &mut w).map_err(|e| match e {
                    CopyFailed::Read(e) => BaseError::io(archive)(e),
                    CopyFailed::Write(e) => BaseError::io(&path)(e),
                })?;
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
