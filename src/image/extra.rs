//! `closure-extra` paths looked up inside a stage's root the way the
//! kernel resolves them after `chroot(root)`: `..` stops at the root and an
//! absolute symlink target starts again at the root, so nothing outside it
//! is read. Every symlink met on the way is kept, as the closure keeps its
//! own, so the path works in the image as it did in the root. The walk is
//! `closure`'s (`closure::lookup_in`), the one the closure's own lookups
//! use; this says what it found in the terms of an image. Reads the disk.

use std::path::{Path, PathBuf};

use crate::closure::{self, ClosureError};

/// Where an extra path led: each symlink on the way, then the real path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lookup {
    /// (absolute path in the root, where it is on disk), links first.
    pub steps: Vec<(String, PathBuf)>,
}

/// Why a lookup failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Failure {
    Missing,
    Loop,
}

/// Resolves the absolute `path` inside `root` (`closure`'s rooted lookup).
/// A path kiln cannot read (unreadable, not UTF-8) is missing too: what
/// the image gets is only what the lookup could follow.
pub(super) fn lookup(root: &Path, path: &str) -> Result<Lookup, Failure> {
    let found = match closure::lookup_in(root, path) {
        Ok(Some(found)) => found,
        Err(ClosureError::SymlinkLoop { .. }) => return Err(Failure::Loop),
        Ok(None) | Err(_) => return Err(Failure::Missing),
    };
    let links = found.links.into_iter().map(|l| (l.image, l.disk));
    Ok(Lookup {
        steps: links.chain([(found.image, found.disk)]).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_kept_and_absolute_targets_stay_in_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/share/ca")).unwrap();
        std::fs::create_dir_all(r.join("etc/ssl")).unwrap();
        std::fs::write(r.join("usr/share/ca/bundle.crt"), "pem").unwrap();
        symlink("/usr/share/ca/bundle.crt", r.join("etc/ssl/cert.pem")).unwrap();
        symlink("ssl", r.join("etc/tls")).unwrap();
        let found = lookup(r, "/etc/tls/cert.pem").unwrap();
        let images: Vec<&str> = found.steps.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(
            images,
            ["/etc/tls", "/etc/ssl/cert.pem", "/usr/share/ca/bundle.crt"]
        );
        assert_eq!(found.steps[2].1, r.join("usr/share/ca/bundle.crt"));
    }

    #[test]
    fn dotdot_cannot_leave_the_root_and_missing_paths_fail() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/f"), "x").unwrap();
        let found = lookup(root.path(), "/../../../etc/f").unwrap();
        assert_eq!(found.steps, [("/etc/f".into(), root.path().join("etc/f"))]);
        assert_eq!(lookup(root.path(), "/etc/nope"), Err(Failure::Missing));
        symlink("a", root.path().join("b")).unwrap();
        symlink("b", root.path().join("a")).unwrap();
        assert_eq!(lookup(root.path(), "/a"), Err(Failure::Loop));
    }
}
