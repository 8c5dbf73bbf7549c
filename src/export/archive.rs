//! Writes an assembled image out of kiln: one tar that is at once an OCI
//! image layout and a docker-archive (both indexes point at the same
//! `blobs/sha256/…`), or an OCI layout directory. The tar is deterministic:
//! sorted entries, mtime = source date epoch, root-owned, fixed modes.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsx::IoContext;
use crate::hash::Digest;
use crate::hash::Sha256Reader;
use crate::image::config;
use crate::image::{Assembled, ExportError};

/// Where a blob's bytes are. A file (a base layer, a cached layer) is
/// hashed as it is copied out and must match the digest the manifest
/// gives it: the store's copy may have been damaged since it was verified,
/// and an image must never carry a layer that does not match its digest.
enum Blob<'a> {
    Memory(&'a [u8]),
    File {
        path: &'a Path,
        size: u64,
        digest: Digest,
    },
}

impl Blob<'_> {
    fn size(&self) -> u64 {
        match self {
            Blob::Memory(bytes) => bytes.len() as u64,
            Blob::File { size, .. } => *size,
        }
    }

    fn open(&self) -> Result<Box<dyn Read + '_>, ExportError> {
        Ok(match self {
            Blob::Memory(bytes) => Box::new(*bytes),
            Blob::File { path, size, digest } => {
                let file = std::fs::File::open(path).at(*path)?;
                Box::new(Checked {
                    inner: Sha256Reader::new(file.take(*size)),
                    path,
                    size: *size,
                    digest: *digest,
                })
            }
        })
    }
}

/// A blob file read through a hash: at its end, an error if the bytes read
/// are not `size` bytes with sha256 `digest`.
struct Checked<'a, R> {
    inner: Sha256Reader<io::Take<R>>,
    path: &'a Path,
    size: u64,
    digest: Digest,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let (actual, len) = self.inner.so_far();
        if actual == self.digest && len == self.size {
            return Ok(0);
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            Damaged {
                path: self.path.to_path_buf(),
                expected: self.digest,
                actual,
                size: len,
            },
        ))
    }
}

/// What [`Checked`] found, carried through the tar writer's `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("`{path}` does not match its digest")]
struct Damaged {
    path: PathBuf,
    expected: Digest,
    actual: Digest,
    size: u64,
}

/// The export error for a failed copy of a blob into the archive.
fn copy_err(e: io::Error) -> ExportError {
    damage_of(&e).unwrap_or(ExportError::Write { source: e })
}

fn damage_of(e: &io::Error) -> Option<ExportError> {
    let d = e.get_ref()?.downcast_ref::<Damaged>()?;
    Some(ExportError::DamagedBlob {
        path: d.path.clone(),
        expected: d.expected,
        actual: d.actual,
        size: d.size,
    })
}

/// Every file of the OCI layout plus docker's `manifest.json`, by path.
fn files(img: &Assembled) -> BTreeMap<String, Blob<'_>> {
    let blob = |d: &crate::hash::Digest| format!("blobs/sha256/{}", d.hex());
    let mut files = BTreeMap::new();
    for layer in &img.layers {
        files.insert(
            blob(&layer.digest),
            Blob::File {
                path: &layer.blob,
                size: layer.size,
                digest: layer.digest,
            },
        );
    }
    files.insert(blob(&img.config_digest), Blob::Memory(&img.config_json));
    files.insert(blob(&img.manifest_digest), Blob::Memory(&img.manifest_json));
    files
}

fn indexes(img: &Assembled) -> [(&'static str, Vec<u8>); 3] {
    let index = config::index_json(
        &img.manifest_digest,
        img.manifest_json.len() as u64,
        &img.tags,
    );
    let docker = config::docker_manifest_json(&img.config_digest, &img.tags, &img.layers);
    [
        ("index.json", index),
        ("manifest.json", docker),
        ("oci-layout", config::OCI_LAYOUT.to_vec()),
    ]
}

/// Hashes every blob file the archive would copy, writing nothing: before
/// a stream (`-o -`, `kiln load`), where bytes once written cannot be taken
/// back, a damaged blob must fail the export before its first byte goes
/// out. (A file or directory output is written aside and renamed, so a
/// blob found damaged while copying leaves nothing.)
pub fn check_blobs(img: &Assembled) -> Result<(), ExportError> {
    for blob in files(img).values() {
        if let Blob::File { .. } = blob {
            io::copy(&mut blob.open()?, &mut io::sink()).map_err(copy_err)?;
        }
    }
    Ok(())
}

/// Writes the combined OCI layout + docker-archive tar to `out`.
pub fn write_archive(img: &Assembled, out: impl Write) -> Result<(), ExportError> {
    let write_err = |source| ExportError::Write { source };
    // Layers are copied through this buffer (io::copy reads straight into
    // it): 1 MiB, not 8 KiB, makes the copy of a cached layer cheap.
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, out));
    let header = |mode: u32, size: u64, kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(img.epoch);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(mode);
        h.set_size(size);
        h.set_entry_type(kind);
        h
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(0o755, 0, tar::EntryType::Directory);
        tar.append_data(&mut h, dir, io::empty())
            .map_err(write_err)?;
    }
    for (path, blob) in files(img) {
        let mut h = header(0o644, blob.size(), tar::EntryType::Regular);
        tar.append_data(&mut h, path, blob.open()?)
            .map_err(copy_err)?;
    }
    for (path, bytes) in indexes(img) {
        let mut h = header(0o644, bytes.len() as u64, tar::EntryType::Regular);
        tar.append_data(&mut h, path, bytes.as_slice())
            .map_err(write_err)?;
    }
    let mut out = tar.into_inner().map_err(write_err)?;
    out.flush().map_err(write_err)
}

/// Writes the OCI image layout as `dir`: built beside it and renamed into
/// place, so `dir` is never half written and holds no blobs of an earlier
/// export. An existing `dir` is replaced only if it is an OCI layout.
pub fn write_oci_dir(img: &Assembled, dir: &Path) -> Result<(), ExportError> {
    let occupied = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied && !dir.join("oci-layout").is_file() {
        return Err(ExportError::NotALayout {
            dir: dir.to_path_buf(),
        });
    }
    crate::fsx::replace_dir(dir, "oci", |tmp| fill_oci_dir(img, tmp))
}

fn fill_oci_dir(img: &Assembled, dir: &Path) -> Result<(), ExportError> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).at(&blobs)?;
    for (path, blob) in files(img) {
        let dest: PathBuf = dir.join(path);
        let mut file = std::fs::File::create(&dest).at(&dest)?;
        io::copy(&mut blob.open()?, &mut file).map_err(|e| match damage_of(&e) {
            Some(d) => d,
            None => ExportError::io(&dest)(e),
        })?;
    }
    for (path, bytes) in indexes(img) {
        if path == "manifest.json" {
            continue; // docker-archive's index; not part of an OCI layout
        }
        let dest = dir.join(path);
        std::fs::write(&dest, bytes).at(&dest)?;
    }
    Ok(())
}
