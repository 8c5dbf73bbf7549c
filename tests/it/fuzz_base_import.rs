//! Base-archive import on hostile bytes, on stable Rust: the seed corpus in
//! `fuzz/corpus/base_import/` (each must be accepted or refused as its name
//! says), then seeded random mutations of it for a bounded time
//! (`KILN_FUZZ_SECS`, default 20). No input may panic, take longer than
//! `INPUT_SECS`, or write outside its work directory. The same harness runs
//! under cargo-fuzz: `cargo +nightly fuzz run base_import` in `fuzz/`.
//!
//! A failing input is saved to `target/fuzz-failures/base_import-<hash>`;
//! replay it with `KILN_FUZZ_REPLAY=<path> cargo test --test it fuzz_base_import`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../fuzz/harness/base_import.rs"]
mod harness;

/// The most one input may take (debug build, sha256 unoptimised).
const INPUT_SECS: u64 = 30;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/base_import")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("fuzz/corpus/base_import exists")
        .map(|e| {
            let path = e.expect("corpus entry").path();
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read a seed"))
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "the seed corpus is there");
    seeds
}

/// Runs one input in its own directory and thread, within the time bound;
/// returns whether it imported. A panic, a hang or an escape fails the
/// test, with the input saved for replay.
fn run_one(data: &[u8], label: &str) -> bool {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dirs = harness::Dirs::new(tmp.path());
    let (tx, rx) = mpsc::channel();
    let input = data.to_vec();
    let worker = std::thread::spawn(move || {
        let ok = harness::run(&input, &dirs).is_ok();
        harness::check(&dirs);
        let _ = tx.send(ok);
    });
    match rx.recv_timeout(Duration::from_secs(INPUT_SECS)) {
        Ok(ok) => {
            worker.join().expect("the worker finished");
            ok
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let saved = save(data);
            panic!(
                "{label} took over {INPUT_SECS}s; saved as {}",
                saved.display()
            )
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let saved = save(data);
            panic!("{label} panicked (above); saved as {}", saved.display())
        }
    }
}

fn save(data: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(format!(
        "base_import-{}",
        &kiln::hash::Digest::of(data).hex()[..16]
    ));
    std::fs::write(&path, data).expect("save the input");
    path
}

#[test]
fn every_seed_is_accepted_or_refused_as_named_without_escaping() {
    if let Some(path) = std::env::var_os("KILN_FUZZ_REPLAY") {
        let data = std::fs::read(&path).expect("read the replayed input");
        run_one(&data, &path.to_string_lossy());
        return;
    }
    for (name, data) in seeds() {
        let started = Instant::now();
        let imported = run_one(&data, &name);
        let expected = name.starts_with("ok-");
        assert_eq!(imported, expected, "{name}: imported = {imported}");
        eprintln!("{name}: {:?}", started.elapsed());
    }
}

#[test]
fn mutated_archives_never_panic_hang_or_escape() {
    let secs: u64 = std::env::var("KILN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("KILN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b69_6c6e);
    let corpus = seeds();
    let valid: Vec<_> = (corpus.iter())
        .filter(|(name, _)| name.starts_with("ok-"))
        .cloned()
        .collect();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut imported) = (0u64, 0u64);
    while Instant::now() < deadline {
        // Valid seeds half the time: their mutations get past the checks
        // into verification and unpacking, where the hostile seeds stop.
        let pool = if rng.below(2) == 0 { &valid } else { &corpus };
        let base = &pool[rng.below(pool.len())].1;
        let other = &corpus[rng.below(corpus.len())].1;
        let input = mutate(&mut rng, base, other);
        imported += u64::from(run_one(&input, &format!("mutation {runs} (seed {seed})")));
        runs += 1;
    }
    eprintln!("{runs} mutated inputs in {secs}s, {imported} imported and unpacked");
    assert!(runs > 0);
}

/// splitmix64: a seeded, dependency-free generator (reproducible runs).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four byte-level mutations of `base` (splicing from `other`),
/// then, half the time, tar header checksums recomputed so the mutation
/// reaches past the tar reader's checksum test.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len().max(1);
        let at = rng.below(len).min(data.len());
        match rng.below(8) {
            0 if !data.is_empty() => data[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if !data.is_empty() => {
                const BYTES: &[u8] = &[0, 0xff, 0x7f, 0x80, b'0', b'7', b'/', b'.', b' '];
                data[at.min(len - 1)] = BYTES[rng.below(BYTES.len())];
            }
            2 => {
                let chunk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                data.splice(at..at, chunk);
            }
            3 => {
                let end = (at + rng.below(512)).min(data.len());
                data.drain(at..end);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + rng.below(1024)).min(other.len());
                let until = (at + (end - from)).min(data.len());
                data.splice(at..until, other[from..end].iter().copied());
            }
            5 => data.truncate(at),
            6 => {
                // A tar numeric field (size, mode, mtime) set to an extreme.
                let block = 1 + rng.below(len / 512 + 1) * 512;
                let field = [124usize, 100, 136, 108][rng.below(4)];
                const TEXT: &[&[u8]] = &[
                    b"77777777777\0",
                    b"0\0",
                    b"\x80\0\0\0\0\0\0\0\x7f\x7f\x7f\x7f",
                    b"1\0",
                ];
                let text = TEXT[rng.below(TEXT.len())];
                if block + field + text.len() <= data.len() {
                    data[block + field..block + field + text.len()].copy_from_slice(text);
                }
            }
            _ => data.extend((0..rng.below(600)).map(|_| rng.next() as u8)),
        }
    }
    if rng.below(2) == 0 && data.len() > 1 {
        fix_checksums(&mut data[1..]);
    }
    data
}

/// Recomputes the checksum of every 512-byte block that looks like a ustar
/// or GNU tar header.
fn fix_checksums(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
}

/// Regenerates the seed corpus: `cargo test --test it fuzz_base_import --
/// --ignored write_seed_corpus`. Names say what import must do: `ok-` ones
/// import and unpack, `bad-` ones are refused.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, bytes) in seed_corpus::all() {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}

mod seed_corpus;
