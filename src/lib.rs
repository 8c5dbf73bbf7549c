//! kiln: Docker multi-stage builds, the Nix way.
//!
//! The pipeline, one module per step, data flowing one way:
//!
//! ```text
//! kiln.kdl ──spec──▶ Spec ──eval──▶ Plan (one graph) ──build──▶ store entries ──export──▶ OCI image
//! ```
//!
//! Every node of kiln.kdl (stage, fetch, base, image) is a node of the one
//! graph the build walks; `image` makes images (for the build, which stores
//! them), `export` ships stored ones. `tree` (hashing and copying file
//! trees) and `store` (the content-addressed cache on disk) serve several
//! steps; `fsx` holds the filesystem helpers they share (atomic writes,
//! paths on IO errors); `cli` only wires the steps together.
//! ARCHITECTURE.md walks through it.

/// `eprintln!` that never panics. Progress and diagnostics go to stderr; if
/// stderr is a closed pipe (`kiln build 2>&1 | head -1`) or a full disk,
/// there is nowhere left to report that, so the line is dropped.
#[macro_export]
#[doc(hidden)]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod base;
pub mod build;
pub mod cache;
pub mod cli;
pub mod closure;
pub mod compression;
pub mod eval;
pub mod export;
pub mod fsx;
pub mod hash;
pub mod image;
pub mod lock;
pub mod registry;
pub mod spec;
pub mod store;
pub mod tree;
