//! Identities and keys: the hashes kiln computes, each its own type so they
//! cannot be mixed up, and the one mechanism every key is computed by.
//!
//! - [`Key`]: blake3 of everything that can change a stage's output (its inputs).
//! - [`OutputHash`]: blake3 of a stage's output tree (what it produced).
//! - [`LayerKey`]: blake3 of everything that decides a packed layer's bytes.
//! - [`Digest`]: sha256 of an OCI blob, written `sha256:<hex>`; what every
//!   registry and engine checks. blake3 never leaves kiln, sha256 never enters
//!   its keys except where an OCI digest is itself an input (a base image).
//!
//! Every blake3 key is a [`Family`]'s hash of a value's [`StableHash`]
//! encoding, written by a [`KeyWriter`]: labelled, length-prefixed,
//! versioned, and optionally recorded as `label → value` for `kiln explain`.
//! The families, with their tags and versions, are in `family.rs`.
//!
//! [`Sha256Writer`] and [`Sha256Reader`] hash and count a stream on its way
//! through (a blob being stored, a layer being packed or checked).
//!
//! [`fresh`] remembers the blobs this process wrote and hashed, so that it
//! does not hash them again.
//!
//! Pure data and hashing; no IO of its own (the sha256 adapters wrap a
//! reader or writer that does).

mod family;
pub mod fresh;
mod identity;
mod sha256;
mod stable;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod writer;

pub use family::{BASE, FETCH, Family, IMAGE, LAYER, SPEC, STAGE, STORED_FILE, TREE};
pub use identity::{Digest, HashParseError, Key, LayerKey, OutputHash};
pub use sha256::{Sha256Reader, Sha256Writer, sha256_of};
pub use writer::{KeyWriter, Shown, StableHash};
