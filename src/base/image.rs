//! What an import yields: the verified config and layers of a base image,
//! with their blobs in kiln's blob store.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;

use crate::hash::Digest;

/// A base image whose every blob has been verified and stored.
#[derive(Debug, Clone)]
pub struct ImportedImage {
    /// sha256 of `config_json`: the image ID, what `digest=` in kiln.kdl pins.
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    /// The config blob exactly as the archive held it (its sha256 is
    /// `config_digest`); kept because re-serialising `config` would not be.
    pub config_json: Vec<u8>,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
}

/// One layer of an imported image, reusable verbatim by an exported image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// sha256 of the blob as stored (compressed or not): the manifest digest.
    pub digest: Digest,
    /// sha256 of the uncompressed tar: what the config's `rootfs.diff_ids` lists.
    pub diff_id: Digest,
    /// The OCI media type matching the blob's actual compression.
    pub media_type: String,
    pub compression: Compression,
    /// Size of the blob in bytes.
    pub size: u64,
    /// `<blobs_dir>/sha256/<hex of digest>`.
    pub blob: PathBuf,
}

pub use crate::compression::Compression;

/// A writer that computes the sha256 and length of what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        use sha2::Digest as _;
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            len: 0,
        }
    }

    pub(crate) fn finish(self) -> (W, Digest, u64) {
        use sha2::Digest as _;
        let digest = Digest::from_bytes(self.hasher.finalize().into());
        (self.inner, digest, self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that computes the sha256 and length of what is read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        use sha2::Digest as _;
        HashingReader {
            inner,
            hasher: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// The digest and length of what was read so far.
    pub(crate) fn so_far(&self) -> (Digest, u64) {
        use sha2::Digest as _;
        let digest = Digest::from_bytes(self.hasher.clone().finalize().into());
        (digest, self.len)
    }

    /// Reads what is left, then the digest and length of the whole stream.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        use sha2::Digest as _;
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_bytes(self.hasher.finalize().into()), self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Which side of a [`copy`] failed.
pub(crate) enum CopyFailed {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `r` into `w` like `io::copy`, but says which side failed: a full
/// disk is the fault of the file being written (in the store), a truncated
/// stream that of the archive being read, and errors must name the right one.
pub(crate) fn copy(mut r: impl Read, w: &mut impl Write) -> Result<u64, CopyFailed> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFailed::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyFailed::Write)?;
        total += n as u64;
    }
}

/// sha256 and length of everything `r` yields.
pub(crate) fn hash_reader(mut r: impl Read) -> io::Result<(Digest, u64)> {
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    let (_, digest, len) = w.finish();
    Ok((digest, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_read_from_magic_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"layer").expect("in memory");
        let gz = gz.finish().expect("in memory");
        let zst = zstd::encode_all(&b"layer"[..], 1).expect("in memory");
        assert_eq!(Compression::sniff(&gz), Compression::Gzip);
        assert_eq!(Compression::sniff(&zst), Compression::Zstd);
        assert_eq!(Compression::sniff(b"bin/"), Compression::None);
        for (blob, c) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
            let mut out = Vec::new();
            c.decoder(&blob[..])
                .and_then(|mut d| d.read_to_end(&mut out))
                .expect("decodes");
            assert_eq!(out, b"layer");
        }
    }

    #[test]
    fn hashing_writer_matches_digest_of() {
        let (digest, len) = hash_reader(&b"kiln"[..]).expect("in memory");
        assert_eq!((digest, len), (Digest::of(b"kiln"), 4));
    }
}
