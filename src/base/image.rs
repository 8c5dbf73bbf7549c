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
}
