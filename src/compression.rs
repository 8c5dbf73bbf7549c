//! How an image layer's tar is compressed: one type for the layers kiln
//! writes (export) and the layers it reads (base images, image roots).

mod gunzip;

use std::io::{self, Read};

use oci_spec::image::MediaType;

/// A layer blob's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    /// The default for layers kiln writes: Docker before 23.0 (Debian 12
    /// ships 20.10) cannot load zstd layers, and an archive that
    /// `docker load` refuses is no default.
    #[default]
    Gzip,
    None,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    /// Recognises gzip and zstd by their magic numbers; anything else is
    /// taken for a plain tar (the tar reader reports it if it is not one).
    /// docker-archive layers carry no media type, and a wrong one must not
    /// mislead the unpacker.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The OCI layer media type for a tar compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub(crate) fn oci_media_type(self) -> MediaType {
        match self {
            Compression::Zstd => MediaType::ImageLayerZstd,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::None => MediaType::ImageLayer,
        }
    }

    /// A reader of the uncompressed stream.
    pub(crate) fn decoder<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            // 64 KiB: the deflate decoder takes its input a buffer at a time.
            Compression::Gzip => Box::new(gunzip::Gunzip::new(io::BufReader::with_capacity(
                64 << 10,
                r,
            ))),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }

    /// Runs `consume` on the uncompressed stream of `r`, decompressing on a
    /// thread of its own, so that decompressing and what `consume` does
    /// with the bytes (hash a tar, list it) run at once. A decompression
    /// error reaches `consume` as a read error.
    pub(crate) fn decode_beside<T>(
        self,
        r: impl Read + Send,
        consume: impl FnOnce(&mut dyn Read) -> T,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut decoder = match self.decoder(r) {
                    Ok(decoder) => decoder,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let mut chunk = vec![0; CHUNK];
                    let read = read_full(&mut decoder, &mut chunk);
                    let more = matches!(read, Ok(n) if n == CHUNK);
                    let sent = read.map(|n| {
                        chunk.truncate(n);
                        chunk
                    });
                    // Stops when the reader is done, or gone (it stopped early).
                    if tx.send(sent).is_err() || !more {
                        return;
                    }
                }
            });
            consume(&mut Received {
                rx,
                chunk: Vec::new(),
                at: 0,
            })
        })
    }
}

/// Decompressed chunks in flight between the two threads, and their size.
const AHEAD: usize = 8;
const CHUNK: usize = 256 << 10;

/// Reads until `buf` is full or the stream ends.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The chunks [`Compression::decode_beside`]'s thread sends, as a reader.
struct Received {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk?, 0),
                // The thread is done: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("in memory");
        gz.finish().expect("in memory")
    }

    #[test]
    fn decoding_beside_yields_the_stream_an_error_and_stops_with_its_reader() {
        // Several chunks' worth, not a multiple of a chunk.
        let data: Vec<u8> = (0..3 * CHUNK + 7).map(|i| (i % 251) as u8).collect();
        let gz = gzip(&data);
        let read = Compression::Gzip.decode_beside(&gz[..], |r| {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map(|_| all)
        });
        assert_eq!(read.expect("decodes"), data);

        let mut cut = gz.clone();
        cut.truncate(gz.len() / 2);
        cut.extend_from_slice(&[0xff; 64]);
        let read = Compression::Gzip.decode_beside(&cut[..], |r| r.read_to_end(&mut Vec::new()));
        assert!(read.is_err(), "a damaged stream is a read error");

        // A reader that stops early does not leave the thread blocked.
        let head = Compression::Gzip.decode_beside(&gz[..], |r| {
            let mut head = [0; 10];
            r.read_exact(&mut head).map(|()| head)
        });
        assert_eq!(head.expect("ten bytes")[..], data[..10]);
    }
}
