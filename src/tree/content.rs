//! Hashing one file's bytes with blake3.
//!
//! Small files are read in one call; big ones are memory-mapped and hashed on
//! several threads (what `b3sum` does), since a single big file would
//! otherwise keep one core busy while the others wait.

use std::path::Path;

use super::TreeError;

/// From this size on, mmap and a multi-threaded hash beat a plain read.
const BIG_FILE: u64 = 128 * 1024;

/// The size and blake3 of the file at `path`; `size_hint` (from `stat`) only
/// picks the strategy, the size returned is what was actually read.
pub(super) fn hash_file(path: &Path, size_hint: u64) -> Result<(u64, [u8; 32]), TreeError> {
    let mut hasher = blake3::Hasher::new();
    if size_hint >= BIG_FILE {
        hasher
            .update_mmap_rayon(path)
            .map_err(TreeError::io(path))?;
    } else {
        let data = std::fs::read(path).map_err(TreeError::io(path))?;
        hasher.update(&data);
    }
    Ok((hasher.count(), *hasher.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_files_hash_like_b3sum() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0, 100, BIG_FILE as usize + 1, 3 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).expect("write");
            let (size, hash) = hash_file(&path, len as u64).expect("hash");
            assert_eq!(size, len as u64);
            assert_eq!(&hash, blake3::hash(&data).as_bytes());
        }
    }
}
