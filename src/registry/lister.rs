//! A layer listed (its files, for the stored image) and its tar hashed
//! (its `diff_id`) on a thread of its own from the chunks a download passes
//! it: the layer is decompressed once, as it arrives, never read back.

use std::io::{BufRead, BufReader, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::base::Layer;
use crate::compression::Compression;
use crate::hash::Digest;
use crate::image::{ListError, Listing};

/// Chunks in flight to the hashing thread: a download waits (without
/// blocking the runtime) when decompression falls behind.
const QUEUE: usize = 32;

/// Feeds a layer's compressed bytes to a thread that decompresses, lists
/// and hashes them.
pub(super) struct LayerLister {
    tx: mpsc::Sender<Bytes>,
    thread: std::thread::JoinHandle<Result<(Compression, Listing), ListError>>,
}

impl LayerLister {
    /// For the layer blob `digest`, being written to `tmp` (for messages).
    pub fn start(digest: Digest, tmp: std::path::PathBuf) -> LayerLister {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(Chunks {
                rx,
                current: Bytes::new(),
            });
            // The blob says what it is: its first bytes, not its media type.
            let compression = Compression::sniff(reader.fill_buf().map_err(ListError::Io)?);
            let layer = Layer {
                digest,
                diff_id: digest,
                media_type: compression.media_type().to_owned(),
                compression,
                size: 0,
                blob: tmp,
            };
            Ok((compression, crate::image::list_from(&layer, &mut reader)?))
        });
        LayerLister { tx, thread }
    }

    /// Passes one chunk on; `false` if the thread has stopped (a blob that
    /// does not decompress: the result says why).
    pub async fn feed(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// The compression and listing (with the tar's sha256) of everything
    /// fed; an error if it is no tar or holds an entry kiln refuses.
    pub fn finish(self) -> Result<(Compression, Listing), ListError> {
        drop(self.tx);
        self.thread.join().unwrap_or_else(|_| {
            Err(ListError::Io(std::io::Error::other(
                "the layer listing thread panicked",
            )))
        })
    }
}

/// The chunks received, as a reader; end of stream when the sender is gone.
struct Chunks {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_gzip_layer_fed_in_pieces_is_listed_and_hashes_to_its_tar() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "etc/motd", &b"hi!\n"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let blob = gz.finish().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let hasher = LayerLister::start(Digest::of(&blob), "blob".into());
        runtime.block_on(async {
            for piece in blob.chunks(7) {
                assert!(hasher.feed(Bytes::copy_from_slice(piece)).await);
            }
        });
        let Ok((compression, listing)) = hasher.finish() else {
            panic!("the layer lists");
        };
        assert_eq!(
            (compression, listing.tar),
            (Compression::Gzip, Digest::of(&tar))
        );
        assert_eq!(listing.paths(), ["etc/motd"]);
    }
}
