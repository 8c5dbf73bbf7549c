//! Image: an `image` of the spec → its layers, config and manifest, ready
//! to be stored, used as a stage's root, or shipped by `export`.
//!
//! [`model`] holds the value types every other file shares. Each `copy`/`add`
//! becomes one layer ([`plan`], entries from disk through [`walk`]), the
//! runtime closure of copied ELF programs becomes layers of its own
//! ([`runtime`], closure-extra paths through [`extra`]), a base image's
//! layers are reused as the bottom ones ([`parent`]), and `layers max=N`
//! merges the smallest adjacent ones ([`merge`]). Each layer is keyed and
//! packed into a deterministic tar that streams through a compressor while
//! being hashed ([`layer`]); packed blobs are cached by layer key ([`cache`])
//! so an unchanged layer is never packed twice. The OCI config, manifest and
//! index are pure functions of that data ([`config`]). [`check`] refuses an
//! image whose entrypoint cannot start. [`assemble`] runs these steps.
//!
//! Identical inputs give identical bytes: entries are sorted, times are
//! `source_date_epoch`, owners come from the spec, JSON keys are sorted.
//!
//! The files form layers: `model` imports none of its siblings, and each
//! file imports only files below it (`assemble` at the top).

mod assemble;
mod cache;
mod check;
pub(crate) mod config;
mod error;
mod extra;
mod layer;
mod merge;
pub(crate) mod model;
mod parent;
mod plan;
mod runtime;
pub mod stored;
mod walk;

#[cfg(test)]
pub(crate) mod testutil;

pub use assemble::assemble;
pub use cache::{
    collect as collect_layer_cache, count as count_layer_cache, verify as verify_layer_cache,
};
pub use error::ExportError;
pub use model::{
    Assembled, ClosureSummary, Compression, ConfigSummary, Layer, LayerSettings, Origin, Role,
    StageOutput, Via,
};
pub use parent::{ListError, Listing, from_base, from_base_listed, list_from};
