//! One registry connection: an `oci-client` client for a host, the
//! credentials for it, and the runtime its futures run on.

use std::net::IpAddr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use super::{Access, RegistryError};

pub(super) struct Registry {
    pub client: oci_client::Client,
    pub auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
}

impl Registry {
    /// A client for `host` (`registry.example:5000`, `docker.io`).
    pub fn connect(host: &str, access: &Access) -> Result<Registry, RegistryError> {
        let Access {} = access;
        let config = ClientConfig {
            protocol: match is_loopback(host) {
                true => ClientProtocol::Http,
                false => ClientProtocol::Https,
            },
            ..ClientConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Failed {
                reference: host.to_owned(),
                message: format!("cannot start the network runtime: {e}"),
            })?;
        Ok(Registry {
            client: oci_client::Client::new(config),
            auth: super::auth::for_registry(host),
            runtime,
        })
    }

    /// Runs `f` to completion on this connection's runtime.
    pub fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// `127.0.0.1:5000`, `localhost:5000`, `[::1]:5000`: a registry on this
/// machine, which Docker too talks to over plain HTTP.
fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "127.8.0.1",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example:5000",
            "ghcr.io",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
