//! [`Sha256Writer`] and [`Sha256Reader`]: the sha256 and byte count of a
//! stream, computed as it passes through ("hash while you write"). They do
//! no IO of their own: they wrap a writer or reader that does.

use std::io::{self, Read, Write};

use sha2::Digest as _;

use super::Digest;

/// A writer that computes the sha256 and length of what passes through it.
pub struct Sha256Writer<W> {
    inner: W,
    sha: sha2::Sha256,
    len: u64,
}

impl<W: Write> Sha256Writer<W> {
    pub fn new(inner: W) -> Self {
        Sha256Writer {
            inner,
            sha: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer (not flushed), and the digest and length of what
    /// was written through.
    pub fn finish(self) -> (W, Digest, u64) {
        let digest = Digest::from_bytes(self.sha.finalize().into());
        (self.inner, digest, self.len)
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that computes the sha256 and length of what is read through it.
pub struct Sha256Reader<R> {
    inner: R,
    sha: sha2::Sha256,
    len: u64,
}

impl<R: Read> Sha256Reader<R> {
    pub fn new(inner: R) -> Self {
        Sha256Reader {
            inner,
            sha: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// The digest and length of what was read so far.
    pub fn so_far(&self) -> (Digest, u64) {
        let digest = Digest::from_bytes(self.sha.clone().finalize().into());
        (digest, self.len)
    }

    /// Reads what is left, then the digest and length of the whole stream.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_bytes(self.sha.finalize().into()), self.len))
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// sha256 and length of everything `r` yields.
pub fn sha256_of(r: impl Read) -> io::Result<(Digest, u64)> {
    Sha256Reader::new(r).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree_with_digest_of() {
        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"kiln").expect("in memory");
        let (out, digest, len) = w.finish();
        assert_eq!(
            (out.as_slice(), digest, len),
            (&b"kiln"[..], Digest::of(b"kiln"), 4)
        );
        assert_eq!(sha256_of(&b"kiln"[..]).expect("in memory"), (digest, 4));
    }

    #[test]
    fn reader_so_far_counts_only_what_was_read() {
        let mut r = Sha256Reader::new(&b"kiln"[..]);
        let mut two = [0u8; 2];
        r.read_exact(&mut two).expect("in memory");
        assert_eq!(r.so_far(), (Digest::of(b"ki"), 2));
        assert_eq!(r.finish().expect("in memory"), (Digest::of(b"kiln"), 4));
    }
}
