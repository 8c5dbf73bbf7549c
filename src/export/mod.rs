//! Export: an `image` of the spec → a deterministic OCI image.
//!
//! The last step of the pipeline. Each `copy`/`add` of an image becomes one
//! layer ([`plan`]), and the runtime closure of copied ELF programs becomes
//! layers of its own ([`runtime`], closure-extra paths through [`extra`]);
//! `layers max=N` merges the smallest adjacent ones ([`merge`]). Entries are
//! planned from disk ([`walk`]), keyed, and packed into
//! a deterministic tar that streams through a compressor while being hashed
//! ([`layer`]); packed blobs are cached by layer key ([`cache`]) so an
//! unchanged layer is never packed twice. The OCI config, manifest and index
//! are pure functions of that data ([`config`]). [`check`] refuses an image
//! whose entrypoint cannot start. What leaves kiln is written by [`archive`]
//! (one tar that is both an OCI layout and a docker-archive, or an OCI layout
//! directory) or piped into an engine by [`load`]; [`inspect`] describes it
//! and [`why`] says why a path is in it.
//!
//! Identical inputs give identical bytes: entries are sorted, times are
//! `source_date_epoch`, owners come from the spec, JSON keys are sorted.

mod archive;
mod assemble;
mod base;
mod cache;
mod check;
mod config;
mod error;
mod extra;
mod inspect;
mod layer;
mod load;
mod merge;
mod plan;
mod runtime;
mod walk;
mod why;

#[cfg(test)]
mod testutil;

pub use archive::{check_blobs, write_archive, write_oci_dir};
pub use assemble::{
    Assembled, Compression, ExportOptions, Layer, StageOutput, assemble, assemble_with_roots,
};
pub use cache::{
    collect as collect_layer_cache, count as count_layer_cache, verify as verify_layer_cache,
};
pub use config::ConfigSummary;
pub use error::ExportError;
pub use inspect::{ClosureSummary, Inspection, LayerSummary, inspect};
pub use load::{Engine, load};
pub use plan::Role;
pub use why::{Origin, Via, Why, why};
