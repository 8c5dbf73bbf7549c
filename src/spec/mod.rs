//! Spec: kiln.kdl → a validated, typed [`Spec`] with source spans.
//!
//! KDL is parsed by the `kdl` crate (KDL v2) into nodes that keep every span,
//! then checked once into the model types: args first (so `${arg}` resolves
//! anywhere), then the one namespace of stages, bases, fetches and images (so
//! references resolve whatever the order), then each node, then cycles.
//! Every mistake is a [`Problem`] pointing into kiln.kdl with a help line; all
//! problems found come back together in one [`SpecError`]. Reads kiln.kdl
//! itself (within limits, `read`) and otherwise the filesystem only to check
//! that sources exist inside the build context. Hostile input is bounded
//! before the `kdl` crate sees it (`scan`) and when it is reported (`source`,
//! at most [`MAX_SHOWN`] problems rendered). The language reference is
//! `spec/language.md`.
//!
//! [`load_cached`] skips the parse when a directory of validated specs
//! holds this one (`cache.rs`, `stored.rs`; written and read there, and
//! every source checked again), since parsing dominates a no-op build.

mod args;
mod cache;
mod cache_dir;
mod content;
mod cx;
mod error;
mod files;
mod graph;
mod help;
mod image;
mod image_ref;
mod import;
mod instance;
mod load;
mod loader;
mod model;
mod name;
mod name_table;
mod names;
mod nodes;
mod paths;
mod qualify;
mod read;
mod report;
mod scan;
mod source;
mod stage;
mod stored;
mod syntax;
mod template;
mod values;

pub use error::{CachePathError, Escape, MAX_SHOWN, Problem, ProblemKind};
pub use files::{Local, SpecFile};
pub use image_ref::{ImageRef, Platform, RefError, RegistryRef, TaggedRef};
pub use load::{load, load_cached, load_str};
pub use model::*;
pub use nodes::*;
pub use read::MAX_SPEC_BYTES;
pub use report::SpecError;
pub use values::parse_duration;
