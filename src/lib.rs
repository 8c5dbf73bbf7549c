//! kiln: Docker multi-stage builds, the Nix way.
//!
//! The pipeline, one module per step, data flowing one way:
//!
//! ```text
//! kiln.kdl ──spec──▶ Spec ──eval──▶ Plan (keyed stages) ──build──▶ store entries ──export──▶ OCI image
//! ```
//!
//! `tree` (hashing and copying file trees) and `store` (the content-addressed
//! cache on disk) serve several steps; `cli` only wires the steps together.
//! ARCHITECTURE.md walks through it.

pub mod base;
pub mod build;
pub mod cli;
pub mod closure;
pub mod compression;
pub mod eval;
pub mod export;
pub mod hash;
pub mod spec;
pub mod store;
pub mod tree;
