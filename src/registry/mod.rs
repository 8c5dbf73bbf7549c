//! OCI registries: a base pulled by digest into the store's blob area
//! ([`pull`]), an image pushed to a registry ([`push`]). Does network IO
//! (through `oci-client`, on a tokio runtime of its own: the rest of kiln
//! is synchronous) and writes only the blob area it is given.
//!
//! Trust flows from the pinned digest, as for an archive base: the
//! manifest (or index) bytes must hash to it, every blob to its
//! descriptor's digest, every layer's tar to the config's `diff_ids`.
//!
//! Which registry speaks what: a loopback registry (`127.0.0.1:5000`,
//! `localhost:5000`) plain HTTP, any other HTTPS; credentials from Docker's
//! `config.json` ([`auth`]).

mod auth;
mod client;
mod error;
mod pull;
mod push;
mod resolve;

pub use error::RegistryError;

/// How registries are reached beyond the defaults (loopback over HTTP,
/// the rest over HTTPS with the system's roots): set from the command line.
#[derive(Debug, Clone, Default)]
pub struct Access {}
pub use pull::pull;
pub use push::{PushTarget, push};
pub use resolve::resolve;
