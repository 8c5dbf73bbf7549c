//! OCI registries: a base pulled by digest into the store's blob area
//! ([`pull`]), an image pushed to a registry ([`push`]). Does network IO
//! (through `oci-client`, on a tokio runtime of its own: the rest of kiln
//! is synchronous) and writes only the blob area it is given.
//!
//! Trust flows from the pinned digest, as for an archive base: the
//! manifest (or index) bytes must hash to it, every blob to its
//! descriptor's digest, every layer's tar to the config's `diff_ids`.
//!
//! Which registry speaks what: plain HTTP for one given as insecure and
//! for a loopback one (`127.0.0.1:5000`, `localhost:5000`) with no CA
//! configured, HTTPS for any other (the rule is in `client.rs`);
//! credentials from Docker's `config.json` ([`auth`]).

mod auth;
mod client;
mod error;
mod lister;
mod manifest;
mod pinned;
mod pull;
mod push;
mod repo;
mod resolve;
mod sources;

use std::path::PathBuf;

pub use error::{RegistryError, printable};

/// How registries are reached beyond the defaults (loopback over HTTP,
/// the rest over HTTPS with the system's roots): set from the command line
/// (`cli::args::Global::registry_access`). The protocol rule that uses it
/// is in `client.rs`.
#[derive(Debug, Clone)]
pub struct Access {
    /// Registries spoken to over plain HTTP (`--insecure-registry`):
    /// `host:port` for that port, a name alone for every port.
    pub insecure: Vec<String>,
    /// PEM CA files trusted for every registry (`--registry-ca`).
    pub ca_files: Vec<PathBuf>,
    /// Docker's per-registry CA directory: every `*.crt` in
    /// `<certs_d>/HOST[:PORT]/` is trusted for that registry.
    /// `/etc/docker/certs.d` unless `KILN_CERTS_D` says otherwise (the
    /// tests point it at a temp dir).
    pub certs_d: PathBuf,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            certs_d: PathBuf::from(DOCKER_CERTS_D),
        }
    }
}

/// Where Docker keeps per-registry CAs.
pub const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";
pub use pinned::config_of;
pub use pull::{Pulled, pull};
pub use push::{PushTarget, push};
pub use repo::Repository;
pub use resolve::resolve;
pub use sources::Sources;
