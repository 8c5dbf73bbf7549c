//! kiln.lock: what the inputs of a kiln.kdl resolved to, beside it.
//!
//! kiln.kdl may give a registry base by tag (`image "host/repo:1.19"`);
//! `kiln lock` resolves each tag to its manifest or index digest and records
//! it here, with what else a build pins: every base's digest, every fetch's
//! sha256, every host tool's content hash. Builds pin each base by tag with
//! its entry ([`pin`]), so re-tagging in the registry changes nothing until
//! `kiln lock` runs again; `--locked` ([`verify`]) fails before building when
//! an input no longer matches, as `cargo --locked` does.
//!
//! A module of its own, not part of `spec`: the lock is a second input file
//! that `kiln lock` writes, and keeping it out of spec loading keeps the spec
//! (and its cache, keyed by kiln.kdl's text) a function of kiln.kdl alone.
//! A locked digest enters a base's key as a digest written in kiln.kdl does.
//!
//! `format` (model, writing) and `parse` (reading back) are pure, and so is
//! `apply`; this file reads and writes the lock on disk.

mod apply;
mod error;
mod format;
mod parse;

pub use apply::{pin, verify};
pub use error::LockError;
pub use format::{LockedBase, LockedSource, Lockfile, VERSION};
pub use parse::parse;

use std::path::{Path, PathBuf};

/// The lock of the spec at `spec_file`: beside it, with its extension
/// `.lock` (`kiln.kdl` → `kiln.lock`), so two specs in one directory do not
/// share one.
pub fn path_beside(spec_file: &Path) -> PathBuf {
    spec_file.with_extension("lock")
}

/// The lock at `path`, or `None` if there is no file there.
pub fn read(path: &Path) -> Result<Option<Lockfile>, LockError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(path, source)),
    };
    let name = path.display().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => parse(&name, &text).map(Some),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            Err(LockError::Malformed {
                message: "it is not UTF-8".to_owned(),
                help: "delete it and run `kiln lock` to write it again".to_owned(),
                src: std::sync::Arc::new(miette::NamedSource::new(name, text)),
                span: (at, 1).into(),
            })
        }
    }
}

/// Writes `lock` to `path` atomically, unless the file holds those bytes
/// already (then it is not touched). Whether it wrote.
pub fn write(path: &Path, lock: &Lockfile) -> Result<bool, LockError> {
    let text = lock.render();
    match std::fs::read(path) {
        Ok(old) if old == text.as_bytes() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io(path, source)),
    }
    crate::fsx::write_atomic(path, text.as_bytes())?;
    Ok(true)
}

fn io(path: &Path, source: std::io::Error) -> LockError {
    LockError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests;
