//! `hashtree DIR [--cache FILE]`: scans DIR as `src "."` and prints its tree
//! hash and entry count; what bench/hash-throughput.sh times.
//!
//! Without `--cache` every run is cold (an empty stat cache, never saved);
//! with it, the cache is loaded from FILE and saved back, as `kiln build` does.

use std::path::PathBuf;
use std::process::ExitCode;

use kiln::spec::SrcPath;
use kiln::tree::{StatCache, scan_sources};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, cache_file) = match args.as_slice() {
        [dir] => (dir, None),
        [dir, flag, file] if flag == "--cache" => (dir, Some(PathBuf::from(file))),
        _ => {
            eprintln!("usage: hashtree DIR [--cache FILE]");
            return ExitCode::from(2);
        }
    };
    let cache = StatCache::load(
        cache_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/nonexistent/kiln-statcache")),
    );
    let srcs = [SrcPath::new(".").expect("`.` is a valid src")];
    let tree = match scan_sources(std::path::Path::new(dir), &srcs, &cache) {
        Ok(tree) => tree,
        Err(err) => {
            eprintln!("hashtree: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(err) = cache_file.and_then(|_| cache.save().err()) {
        eprintln!("hashtree: {err}");
        return ExitCode::FAILURE;
    }
    println!("{} {}", tree.hash(), tree.entries.len());
    ExitCode::SUCCESS
}
