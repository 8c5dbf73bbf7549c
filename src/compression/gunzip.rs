//! gzip decoding without the CRC-32: every gzip stream kiln reads is a blob
//! whose sha256 is checked (against its digest, as it is read or when it
//! was stored), so the trailer's CRC adds nothing but a pass over the
//! output (7% of a pull's samples). Reads every member of a stream, as
//! pigz and other writers may make several.

use std::io::{self, BufRead, Read};

use flate2::bufread::DeflateDecoder;

/// The uncompressed bytes of the gzip stream `inner` yields.
pub(super) struct Gunzip<R: BufRead> {
    state: State<R>,
}

enum State<R: BufRead> {
    /// Before a member's header (or the end of the stream).
    Between(R),
    Member(DeflateDecoder<R>),
    /// Taken while moving from one state to the next.
    Moving,
}

impl<R: BufRead> Gunzip<R> {
    pub fn new(inner: R) -> Self {
        Gunzip {
            state: State::Between(inner),
        }
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Moving) {
                State::Member(mut deflate) => {
                    let n = deflate.read(buf)?;
                    if n > 0 {
                        self.state = State::Member(deflate);
                        return Ok(n);
                    }
                    // The member's deflate stream ended: its trailer
                    // (CRC-32, size) follows; the decoder took no byte past it.
                    let mut inner = deflate.into_inner();
                    skip(&mut inner, 8)?;
                    self.state = State::Between(inner);
                }
                State::Between(mut inner) => {
                    if inner.fill_buf()?.is_empty() {
                        self.state = State::Between(inner);
                        return Ok(0);
                    }
                    header(&mut inner)?;
                    self.state = State::Member(DeflateDecoder::new(inner));
                }
                State::Moving => return Err(io::Error::other("a gzip read failed before")),
            }
        }
    }
}

/// Reads one member header (RFC 1952, 2.3), leaving `r` at its deflate data.
fn header(r: &mut impl BufRead) -> io::Result<()> {
    let mut fixed = [0u8; 10];
    r.read_exact(&mut fixed)?;
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a gzip member (bad magic or method)",
        ));
    }
    let flags = fixed[3];
    if flags & 0x04 != 0 {
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        skip(r, u64::from(u16::from_le_bytes(len)))?;
    }
    for field in [0x08, 0x10] {
        if flags & field != 0 {
            let mut name = Vec::new();
            r.read_until(0, &mut name)?;
            if name.last() != Some(&0) {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
    if flags & 0x02 != 0 {
        skip(r, 2)?;
    }
    Ok(())
}

fn skip(r: &mut impl BufRead, n: u64) -> io::Result<()> {
    let skipped = io::copy(&mut r.take(n), &mut io::sink())?;
    match skipped == n {
        true => Ok(()),
        false => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn member(data: &[u8], builder: flate2::GzBuilder) -> Vec<u8> {
        let mut gz = builder.write(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("in memory");
        gz.finish().expect("in memory")
    }

    fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gunzip::new(bytes).read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn every_member_is_read_whatever_its_header_holds() {
        let plain = member(b"one ", flate2::GzBuilder::new());
        let named = member(
            b"two ",
            flate2::GzBuilder::new()
                .filename("f")
                .comment("c")
                .extra(vec![1, 2, 3]),
        );
        let empty = member(b"", flate2::GzBuilder::new());
        let stream = [
            plain,
            named,
            empty,
            member(b"three", flate2::GzBuilder::new()),
        ]
        .concat();
        assert_eq!(gunzip(&stream).expect("decodes"), b"one two three");
        assert_eq!(gunzip(b"").expect("nothing"), b"");
    }

    #[test]
    fn a_cut_or_foreign_stream_is_an_error() {
        let whole = member(&[7u8; 100_000], flate2::GzBuilder::new());
        assert!(
            gunzip(&whole[..whole.len() / 2]).is_err(),
            "cut in the data"
        );
        assert!(
            gunzip(&whole[..whole.len() - 3]).is_err(),
            "cut in the trailer"
        );
        assert!(gunzip(&whole[..5]).is_err(), "cut in the header");
        assert!(gunzip(b"PK\x03\x04 not gzip").is_err());
    }
}
