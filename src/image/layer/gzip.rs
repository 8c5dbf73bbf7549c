//! Block-parallel gzip, as pigz writes it: the layer's tar is cut into
//! blocks of [`BLOCK`] (512 KiB) bytes, each deflated on a worker thread with the
//! previous block's last 32 KiB as its dictionary and ended with a sync
//! flush (the last one with the stream's end), and the pieces are written in
//! order as one deflate stream in one gzip member, its crc32 combined from
//! the blocks' own.
//!
//! The bytes depend on the input and zlib-rs's level-6 deflate only: the cut
//! points depend on the input's length, never on the writes that carry it,
//! on `flush` or on the number of workers, and each block's deflate sees
//! only its dictionary and its data. So a layer is the same for any number
//! of threads on any machine, and any gzip decoder reads it (one member, one
//! stream). With the dictionary the ratio stays a serial deflate's (for
//! bench/export.sh's tree, 364.9 MB against `pigz -6`'s 368.4 MB); each
//! sync flush costs a few bytes.
//!
//! Written here rather than taken from the `gzp` crate: gzp's writer needs
//! `W: Send + 'static` (kiln's layer writer is a borrowed `&mut dyn Write`),
//! its `ZBuilder` writes a plain serial stream for one thread (other bytes
//! than with two), and it chooses flate2's backend by its own features,
//! while kiln's must stay zlib-rs.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Crc, FlushCompress, Status};

/// Bytes of input per block. Part of the output's format: changing it
/// changes every gzip layer (bump `hash::LAYER`). Four times pigz's
/// default: priming each block with a 32 KiB dictionary costs less CPU
/// (9.25 s against 10.1 s of user time for bench/export.sh's tree; 1 MiB
/// saved nothing more), and a layer of a few MiB still spreads over cores.
pub(super) const BLOCK: usize = 512 << 10;

/// Deflate's window: the most of the previous block a match can reach.
const WINDOW: usize = 32 << 10;

/// A gzip encoder that deflates blocks on `workers` threads. `finish`
/// writes the last block and the trailer; dropped without it, the output
/// is cut short and the threads stop after their current block.
pub(super) struct ParGzEncoder<W: Write> {
    out: W,
    /// The block being filled.
    block: Vec<u8>,
    /// The block sent before it: the next one's dictionary.
    prev: Option<Arc<Vec<u8>>>,
    jobs: Sender<Job>,
    /// Blocks sent and not yet written, in order.
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    max_pending: usize,
    crc: Crc,
}

struct Job {
    dictionary: Option<Arc<Vec<u8>>>,
    data: Arc<Vec<u8>>,
    last: bool,
    done: SyncSender<io::Result<Deflated>>,
}

struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
}

impl<W: Write> ParGzEncoder<W> {
    /// Writes the gzip header (mtime 0, no name, OS "unknown", as flate2's
    /// `GzBuilder` wrote it for kiln) and starts the workers.
    pub(super) fn new(mut out: W, level: flate2::Compression, workers: usize) -> io::Result<Self> {
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = workers.max(1);
        for _ in 0..workers {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name("kiln-gzip".into())
                .spawn(move || work(&queue, level))?;
        }
        Ok(ParGzEncoder {
            out,
            block: Vec::with_capacity(BLOCK),
            prev: None,
            jobs,
            pending: VecDeque::new(),
            // Slack for the thread writing the tar, which shares the
            // cores with the workers and comes in bursts.
            max_pending: 4 * workers + 8,
            crc: Crc::new(),
        })
    }

    /// Deflates what is left, writes the trailer and returns the output.
    pub(super) fn finish(mut self) -> io::Result<W> {
        self.send(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let ParGzEncoder { mut out, crc, .. } = self;
        out.write_all(&crc.sum().to_le_bytes())?;
        out.write_all(&crc.amount().to_le_bytes())?;
        Ok(out)
    }

    fn send(&mut self, last: bool) -> io::Result<()> {
        let data = Arc::new(std::mem::replace(
            &mut self.block,
            Vec::with_capacity(BLOCK),
        ));
        // The whole block is kept: the worker reads its last 32 KiB.
        let dictionary = self.prev.replace(Arc::clone(&data));
        let (done, result) = mpsc::sync_channel(1);
        let job = Job {
            dictionary,
            data,
            last,
            done,
        };
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("kiln bug: the gzip workers are gone"))?;
        self.pending.push_back(result);
        // Write what is ready, and wait when too much is in flight.
        while let Some(front) = self.pending.front() {
            match front.try_recv() {
                Ok(deflated) => {
                    self.pending.pop_front();
                    self.write_deflated(deflated)?;
                }
                Err(TryRecvError::Empty) if self.pending.len() > self.max_pending => {
                    self.write_oldest()?;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(worker_died()),
            }
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let front = self
            .pending
            .pop_front()
            .expect("kiln bug: no gzip block pending");
        let deflated = front.recv().map_err(|_| worker_died())?;
        self.write_deflated(deflated)
    }

    fn write_deflated(&mut self, deflated: io::Result<Deflated>) -> io::Result<()> {
        let Deflated { bytes, crc } = deflated?;
        self.crc.combine(&crc);
        self.out.write_all(&bytes)
    }
}

fn worker_died() -> io::Error {
    io::Error::other("kiln bug: a gzip worker stopped before its block was done")
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.send(false)?;
        }
        Ok(n)
    }

    /// Flushes what is already deflated. It does not cut a block: the
    /// bytes must not depend on when a writer flushes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A worker: one deflate state, reset for each block it takes.
fn work(queue: &Mutex<Receiver<Job>>, level: flate2::Compression) {
    let mut z = Compress::new(level, false);
    loop {
        // The guard is dropped at the end of the statement: the others take
        // jobs while this one deflates.
        let job = queue.lock().map(|q| q.recv());
        let Ok(Ok(job)) = job else { return };
        let result = deflate(&mut z, &job);
        // The encoder may be gone (an error elsewhere): nothing to do then.
        let _ = job.done.send(result);
    }
}

fn deflate(z: &mut Compress, job: &Job) -> io::Result<Deflated> {
    z.reset();
    if let Some(dictionary) = &job.dictionary {
        let tail = &dictionary[dictionary.len().saturating_sub(WINDOW)..];
        z.set_dictionary(tail).map_err(io::Error::other)?;
    }
    let data = job.data.as_slice();
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Room for a stored (incompressible) block and the flush markers.
    let mut bytes = Vec::with_capacity(data.len() + data.len() / 64 + 64);
    let start = z.total_in();
    loop {
        let read = usize::try_from(z.total_in() - start).expect("kiln bug: block > usize");
        let status = z
            .compress_vec(&data[read..], &mut bytes, flush)
            .map_err(io::Error::other)?;
        let consumed = z.total_in() - start == data.len() as u64;
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A sync flush is complete when it left room unused.
            _ => consumed && bytes.len() < bytes.capacity(),
        };
        if done {
            break;
        }
        bytes.reserve(data.len() / 8 + 64);
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok(Deflated { bytes, crc })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gzip(workers: usize, input: &[u8], write_size: usize) -> Vec<u8> {
        let mut enc = ParGzEncoder::new(Vec::new(), flate2::Compression::default(), workers)
            .expect("encoder");
        for chunk in input.chunks(write_size) {
            enc.write_all(chunk).unwrap();
            enc.flush().unwrap();
        }
        enc.finish().unwrap()
    }

    fn flate2_decode(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // A single-member decoder: it must read everything in one member.
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_output_is_the_same_for_any_number_of_threads_and_writes() {
        let input = super::super::tests::mixed_input(5 * BLOCK + 12_345);
        let one = gzip(1, &input, 10_000);
        assert_eq!(flate2_decode(&one), input);
        assert!(one.len() < input.len() * 3 / 4, "the text half compresses");
        for (workers, write_size) in [(2, 7_777), (8, 1 << 20)] {
            assert!(
                gzip(workers, &input, write_size) == one,
                "{workers} threads, writes of {write_size} bytes differ"
            );
        }
        // One byte per write (and a flush after each), on a shorter input.
        let short = &input[..2 * BLOCK + 5];
        assert!(gzip(8, short, 1) == gzip(1, short, short.len()));
    }

    #[test]
    fn gzip_output_of_empty_and_block_sized_inputs_decodes() {
        let input = super::super::tests::mixed_input(2 * BLOCK);
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK] {
            assert_eq!(flate2_decode(&gzip(2, &input[..len], 4096)), &input[..len]);
        }
    }

    #[test]
    fn gzip_output_is_read_by_gzip_d() {
        use std::process::{Command, Stdio};
        let input = super::super::tests::mixed_input(5 * BLOCK + 99);
        let gz = gzip(2, &input, 65536);
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip is installed");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip -d failed");
        assert!(out.stdout == input, "gzip -d read other bytes");
    }
}
