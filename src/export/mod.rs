//! Export: an `image` of the spec → a deterministic OCI image.
//!
//! CONTRACT: owned by the export helper.
