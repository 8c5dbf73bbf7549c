//! Base images: `base NAME { archive "…" digest="sha256:…" }` in kiln.kdl.
//!
//! [`import`] reads an image archive (docker-archive, oci-archive or an OCI
//! layout directory), verifies it against the config digest the user pinned,
//! and puts its blobs in a sha256 blob store, where export reuses them
//! verbatim. [`rootfs`] unpacks the layers, as untrusted input, into a
//! directory a `from NAME` stage runs in. Both touch the filesystem only
//! under the directories they are given, and both are idempotent.
//! [`verify`] and [`collect`] are `kiln store verify` and `gc` for them.
//!
//! ```text
//! <blobs_dir>/sha256/<hex>              every blob, verified (see blobs.rs)
//! <rootfs_dir>/<config hex>/            an unpacked image, complete or absent
//! <rootfs_dir>/<config hex>.tree        its tree hash when unpacked (verify)
//! <rootfs_dir>/.unpacking-*             being unpacked (or deleted by gc)
//! ```

mod archive;
mod blobs;
mod dir;
mod error;
mod formats;
mod image;
mod import;
mod index;
mod maintenance;
mod unpack;
mod whiteout;

pub(crate) use blobs::BlobStore;
pub use error::{BaseError, Unsafe};
pub use image::{Compression, ImportedImage, Layer};
pub use import::import;
pub(crate) use import::{checked_layer, layer_of};
pub use maintenance::{collect, count, verify};
pub use unpack::{Budget, rootfs, unpack_layer};
pub use whiteout::{LayerPath, classify};
