//! The uncompressed sha256 of a layer (its `diff_id`), computed on its own
//! thread from the chunks a download passes it: the layer is hashed as it
//! arrives, never read back from disk.

use std::io::{BufRead, BufReader, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::compression::Compression;
use crate::hash::{Digest, sha256_of};

/// Chunks in flight to the hashing thread: a download waits (without
/// blocking the runtime) when decompression falls behind.
const QUEUE: usize = 32;

/// Feeds a layer's compressed bytes to a thread that decompresses and
/// hashes them.
pub(super) struct DiffIdHasher {
    tx: mpsc::Sender<Bytes>,
    thread: std::thread::JoinHandle<std::io::Result<(Compression, Digest)>>,
}

impl DiffIdHasher {
    pub fn start() -> DiffIdHasher {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(Chunks {
                rx,
                current: Bytes::new(),
            });
            // The blob says what it is: its first bytes, not its media type.
            let compression = Compression::sniff(reader.fill_buf()?);
            let (digest, _) = sha256_of(compression.decoder(reader)?)?;
            Ok((compression, digest))
        });
        DiffIdHasher { tx, thread }
    }

    /// Passes one chunk on; `false` if the thread has stopped (a blob that
    /// does not decompress: the result says why).
    pub async fn feed(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// The compression and diff_id of everything fed; an error if it does
    /// not decompress.
    pub fn finish(self) -> std::io::Result<(Compression, Digest)> {
        drop(self.tx);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the layer hashing thread panicked")))
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
    fn a_gzip_layer_fed_in_pieces_hashes_to_its_tar() {
        let tar = b"pretend this is a tar".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let blob = gz.finish().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let hasher = DiffIdHasher::start();
        runtime.block_on(async {
            for piece in blob.chunks(7) {
                assert!(hasher.feed(Bytes::copy_from_slice(piece)).await);
            }
        });
        let (compression, digest) = hasher.finish().unwrap();
        assert_eq!((compression, digest), (Compression::Gzip, Digest::of(&tar)));
    }
}
