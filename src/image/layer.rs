//! Packs a planned layer into a blob in one streaming pass:
//! tar writer → sha256 (diff_id, uncompressed size) → compressor → sha256
//! (blob digest, size) → the output. Also derives the layer's cache key,
//! whose version is `hash::LAYER`'s.
//!
//! The tar is GNU format with every header field set by hand: mtime is the
//! source date epoch, owners are numeric, names empty, modes from the plan;
//! long names use GNU long-name records, which the `tar` crate writes with
//! fixed fields. Nothing from the packing machine leaks in.

mod gzip;

use std::io::{self, Write};

use self::gzip::ParGzEncoder;
use super::error::ExportError;
use super::model::{Compression, Entry, Kind, Packed};
use crate::fsx::IoContext;
use crate::hash::{KeyWriter, LAYER, LayerKey, Sha256Writer, StableHash};
use crate::spec::Owner;

/// The cache key of a layer: the [`LAYER`] family's hash of everything
/// that decides the blob's bytes.
pub(crate) fn key(entries: &[Entry], compression: Compression, epoch: u64) -> LayerKey {
    LAYER.key(&LayerInputs {
        entries,
        compression,
        epoch,
    })
}

/// What a layer blob is a function of.
struct LayerInputs<'a> {
    entries: &'a [Entry],
    compression: Compression,
    /// Every header's mtime.
    epoch: u64,
}

impl StableHash for LayerInputs<'_> {
    fn write_key(&self, w: &mut KeyWriter) {
        let LayerInputs {
            entries,
            compression,
            epoch,
        } = self;
        w.field("compression", compression.name());
        w.field("epoch", epoch);
        w.field("entries", entries);
    }
}

impl StableHash for Entry {
    fn write_key(&self, w: &mut KeyWriter) {
        let Entry {
            path,
            kind,
            mode,
            owner,
        } = self;
        let Owner { uid, gid } = owner;
        w.field("path", path);
        w.field("mode", mode);
        w.field("uid", uid);
        w.field("gid", gid);
        w.field("kind", kind);
    }
}

impl StableHash for Kind {
    fn write_key(&self, w: &mut KeyWriter) {
        match self {
            Kind::Dir => w.tag("dir"),
            Kind::File {
                // Where the bytes are read from when packing: `content`
                // identifies them, wherever they are.
                disk: _,
                size,
                content,
            } => {
                w.tag("file");
                w.field("size", size);
                w.field("content", content);
            }
            Kind::Symlink { target } => {
                w.tag("symlink");
                w.field("target", target);
            }
        }
    }
}

/// Writes the compressed layer to `out`, hashing on the way.
pub(crate) fn pack(
    entries: &[Entry],
    compression: Compression,
    epoch: u64,
    out: impl Write,
) -> Result<Packed, ExportError> {
    let write_err = |source| ExportError::Write { source };
    let compressed = Sha256Writer::new(out);
    let compressor = Compressor::new(compression, compressed).map_err(write_err)?;
    let mut tar = tar::Builder::new(Sha256Writer::new(compressor));
    for entry in entries {
        append(&mut tar, entry, epoch)?;
    }
    let uncompressed = tar.into_inner().map_err(write_err)?;
    let (compressor, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = compressor.finish().map_err(write_err)?;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(write_err)?;
    Ok(Packed {
        digest,
        size,
        diff_id,
        uncompressed_size,
    })
}

fn append<W: Write>(tar: &mut tar::Builder<W>, e: &Entry, epoch: u64) -> Result<(), ExportError> {
    let write_err = |source| ExportError::Write { source };
    let mut h = tar::Header::new_gnu();
    h.set_mtime(epoch);
    h.set_uid(e.owner.uid.into());
    h.set_gid(e.owner.gid.into());
    h.set_mode(e.mode);
    h.set_size(0);
    match &e.kind {
        Kind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, format!("{}/", e.path), io::empty())
                .map_err(write_err)
        }
        Kind::File { disk, size, .. } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(*size);
            let file = std::fs::File::open(disk).at(disk)?;
            // `take`: a file that grew since planning must not corrupt the tar.
            // The buffer: `tar` copies in 8 KiB pieces, one `read` each without it.
            let data = io::BufReader::with_capacity(256 << 10, io::Read::take(file, *size));
            tar.append_data(&mut h, &e.path, data).map_err(write_err)
        }
        Kind::Symlink { target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            tar.append_link(&mut h, &e.path, target).map_err(write_err)
        }
    }
}

/// The compressors, each configured so its output depends on the input only.
enum Compressor<W: Write> {
    /// Level 3, multithreaded, no checksum, no content size (unknown when
    /// streaming): the frame bytes depend on the input and zstd's version.
    /// zstd's streaming multithreaded mode cuts the input into jobs whose
    /// size depends on the parameters only, so its output is the same for
    /// any number of workers ≥ 1 (zstd issues #2238, #2327; tested below),
    /// though not the same as single-threaded mode (0 workers), never used.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// Default level (6), header with mtime 0, no file name, OS
    /// "unknown", deflated in blocks on every core (`gzip.rs`): the bytes
    /// are the same for any number of threads (tested there).
    Gzip(ParGzEncoder<W>),
    None(W),
}

impl<W: Write> Compressor<W> {
    fn new(compression: Compression, out: W) -> io::Result<Self> {
        Self::with_workers(compression, out, workers())
    }

    fn with_workers(compression: Compression, out: W, workers: u32) -> io::Result<Self> {
        Ok(match compression {
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                enc.multithread(workers.max(1))?;
                enc.include_checksum(false)?;
                enc.include_contentsize(false)?;
                Compressor::Zstd(enc)
            }
            // zlib-rs (flate2's `zlib-rs` backend) deflates each block:
            // about twice miniz_oxide's speed here, and like zlib its bytes
            // depend only on the input and the level.
            Compression::Gzip => Compressor::Gzip(ParGzEncoder::new(
                out,
                flate2::Compression::default(),
                usize::try_from(workers).unwrap_or(usize::MAX),
            )?),
            Compression::None => Compressor::None(out),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Zstd(enc) => enc.finish(),
            Compressor::Gzip(enc) => enc.finish(),
            Compressor::None(w) => Ok(w),
        }
    }
}

/// One compression worker per core: the output does not depend on it.
fn workers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores).unwrap_or(u32::MAX).max(1)
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Zstd(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Zstd(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod key_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Half text-like, half pseudo-random: enough for several zstd jobs
    /// (level 3 cuts jobs of 8 MiB), so the workers really split the work.
    pub(super) fn mixed_input(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let words = ["kiln ", "layer ", "tar ", "image ", "stage ", "zstd\n"];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            if (out.len() / 65536) % 2 == 0 {
                out.extend_from_slice(words[(next() % 6) as usize].as_bytes());
            } else {
                out.extend_from_slice(&next().to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn zstd_with(workers: u32, input: &[u8]) -> Vec<u8> {
        let mut c = Compressor::with_workers(Compression::Zstd, Vec::new(), workers).unwrap();
        // Uneven writes, as a tar stream makes them.
        for chunk in input.chunks(10_000) {
            c.write_all(chunk).unwrap();
        }
        c.finish().unwrap()
    }

    #[test]
    fn zstd_output_is_the_same_for_any_number_of_workers() {
        let input = mixed_input(40 << 20);
        let one = zstd_with(1, &input);
        assert_eq!(zstd::decode_all(one.as_slice()).unwrap(), input);
        assert!(one.len() < input.len() * 3 / 4, "the text half compresses");
        for workers in [2, 4] {
            assert!(
                zstd_with(workers, &input) == one,
                "{workers} workers differ"
            );
        }
    }
}
