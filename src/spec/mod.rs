//! Spec: kiln.kdl → a validated, typed [`Spec`] with source spans.
//!
//! KDL is parsed by the `kdl` crate into a raw layer that keeps every span,
//! then checked once (names, references, cycles, sources, args, value types)
//! into the model types. Every mistake is a miette diagnostic pointing into
//! kiln.kdl with a help line. The language reference is `spec/language.md`.
//!
//! CONTRACT (owned by the spec helper; `load`'s signature is fixed).

mod model;

pub use model::*;

use std::path::Path;

/// Why kiln.kdl could not become a [`Spec`]: one or more diagnostics.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("kiln.kdl is not valid")]
pub struct SpecError {}

/// Reads and validates the kiln.kdl at `path`; `overrides` are `--arg k=v`.
pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Spec, SpecError> {
    let _ = (path, overrides);
    todo!()
}
