//! File trees: walking, hashing and copying them.
//!
//! Used for a stage's declared sources (input side: `.gitignore`/`.kilnignore`
//! respected, stat cache consulted) and for a stage's output (output side: every
//! entry, no ignore rules). A tree's hash covers each entry's relative path,
//! type, executable bit, content and symlink target; never mtimes, owners or
//! the absolute location, so the same tree hashes the same anywhere.
//!
//! - [`model`]: [`Tree`], [`Entry`] and the canonical hash encoding (pure).
//! - [`walk`]: finding the entries on disk ([`scan_sources`], [`scan_dir`],
//!   [`scan_whole`] for an image directory a base is read from).
//! - [`content`]: hashing one file's bytes (mmap + rayon for big files).
//! - [`statcache`]: [`StatCache`], so a no-op run costs a `stat` per file.
//! - [`copy`]: [`copy_tree`] into a build directory, [`set_readonly`] for the store.
//! - [`at`]: walking an output by directory descriptors, for any depth, and
//!   [`remove_tree`].

mod at;
mod content;
mod copy;
mod error;
mod model;
mod statcache;
mod walk;

pub use at::{disk_usage, remove_tree};
pub use copy::{copy_tree, give_tree, not_read_only, set_readonly};
pub use error::TreeError;
pub use model::{Entry, EntryKind, Tree};
pub use statcache::StatCache;
pub use walk::{hash_one, scan_dir, scan_sources, scan_whole, source_paths};

#[cfg(test)]
mod tests;
