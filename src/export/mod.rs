//! Export: what leaves kiln. An assembled image ([`crate::image`]) written as
//! one tar that is both an OCI layout and a docker-archive, or as an OCI
//! layout directory ([`archive`]), or piped into an engine ([`load`]);
//! [`inspect`] describes it and [`why`] says why a path is in it.
//!
//! Depends on the image model only: nothing here plans or packs a layer.

mod archive;
mod inspect;
mod load;
mod why;

pub use archive::{check_blobs, write_archive, write_oci_dir};
pub use inspect::{Inspection, LayerSummary, bytes as human_size, inspect};
pub use load::{Engine, load};
pub use why::{Why, why};
