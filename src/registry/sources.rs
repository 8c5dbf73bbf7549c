//! Where each blob is known to live: the repositories kiln pulled it from
//! or pushed it to (`<blobs_dir>/sources/<hex>`, one `host/repository` per
//! line). A push to another repository of the same registry asks it to
//! mount the blob from there instead of sending it (Docker does the same).
//! Reads and appends small files; losing one only costs an upload.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::hash::Digest;

pub struct Sources {
    dir: PathBuf,
}

impl Sources {
    /// The record under `blobs_dir` (the store's blob area).
    pub fn at(blobs_dir: &Path) -> Sources {
        Sources {
            dir: blobs_dir.join("sources"),
        }
    }

    /// Records that `repository` (`host/repository`) has `digest`.
    pub fn add(&self, digest: &Digest, repository: &str) {
        if self.of(digest).iter().any(|r| r == repository) {
            return;
        }
        // Best effort, and appends of one short line do not interleave.
        let _ = std::fs::create_dir_all(&self.dir);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(digest.hex()));
        if let Ok(mut file) = file {
            let _ = file.write_all(format!("{repository}\n").as_bytes());
        }
    }

    /// The repositories known to have `digest`.
    pub fn of(&self, digest: &Digest) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(digest.hex()))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_recorded_once_per_blob() {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources::at(dir.path());
        let d = Digest::of(b"layer");
        assert!(sources.of(&d).is_empty());
        sources.add(&d, "r.example/a");
        sources.add(&d, "r.example/a");
        sources.add(&d, "r.example/b");
        assert_eq!(sources.of(&d), ["r.example/a", "r.example/b"]);
        assert!(sources.of(&Digest::of(b"other")).is_empty());
    }
}
