//! One registry connection: an `oci-client` client for a host, the
//! credentials for it (and where they came from), and the runtime its
//! futures run on. Reads CA files and Docker's `certs.d`.
//!
//! Which protocol, the rule ([`protocol`]):
//! - plain HTTP for a host given with `--insecure-registry`;
//! - plain HTTP for a registry on this machine (`127.0.0.0/8`, `localhost`,
//!   `::1`) that has no CA configured: no `certs.d` directory for it and no
//!   `--registry-ca` (Docker too talks to those over HTTP);
//! - HTTPS otherwise, trusting the system's roots, every `--registry-ca`
//!   and every `*.crt` in `<certs.d>/HOST[:PORT]/`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::auth::Source;
use super::{Access, RegistryError};

pub(super) struct Registry {
    pub client: oci_client::Client,
    pub auth: RegistryAuth,
    /// Where `auth` came from, for a "denied" message.
    source: Source,
    host: String,
    runtime: tokio::runtime::Runtime,
    /// For what `oci-client` would read whole (`manifest.rs`): set up as
    /// `client` is, and how each repository's requests are authorized.
    pub http: reqwest::Client,
    https: bool,
    pub authorizations: super::manifest::Authorizations,
}

impl Registry {
    /// A client for `host` (`registry.example:5000`, `docker.io`).
    pub fn connect(host: &str, access: &Access) -> Result<Registry, RegistryError> {
        let host_dir = certs_d_dir(&access.certs_d, host);
        let (protocol, roots) = match protocol(host, access, host_dir.is_some()) {
            Protocol::Http => (ClientProtocol::Http, Vec::new()),
            Protocol::Https => {
                let mut files = access.ca_files.clone();
                if let Some(dir) = &host_dir {
                    files.extend(crt_files(dir)?);
                }
                let mut roots = Vec::new();
                for file in &files {
                    roots.extend(read_ca(file)?);
                }
                (ClientProtocol::Https, roots)
            }
        };
        let failed = |message: String| RegistryError::Failed {
            reference: host.to_owned(),
            message,
        };
        let http =
            http_client(&roots).map_err(|e| failed(format!("cannot set up its client: {e}")))?;
        let https = matches!(protocol, ClientProtocol::Https);
        let config = ClientConfig {
            protocol,
            extra_root_certificates: roots,
            // A registry that accepts a connection and never answers must
            // not hang a build: no connection, or no byte of an answer, for
            // this long is a failure (the cache's: a warning).
            connect_timeout: Some(timeout()),
            read_timeout: Some(timeout()),
            ..ClientConfig::default()
        };
        // Not `Client::new`: on an error it falls back to a default client,
        // which would drop the CAs asked for without a word.
        let client = oci_client::Client::try_from(config)
            .map_err(|e| failed(format!("cannot set up its client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start the network runtime: {e}")))?;
        let (auth, source) = super::auth::for_registry(host);
        Ok(Registry {
            client,
            auth,
            source,
            host: host.to_owned(),
            runtime,
            http,
            https,
            authorizations: Default::default(),
        })
    }

    /// `http` or `https`, as the protocol rule chose for this host.
    pub fn scheme(&self) -> &'static str {
        match self.https {
            true => "https",
            false => "http",
        }
    }

    /// Runs `f` to completion on this connection's runtime.
    pub fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The error for a failed request about `reference` over this
    /// connection.
    pub fn error(
        &self,
        reference: &str,
        e: oci_client::errors::OciDistributionError,
    ) -> RegistryError {
        RegistryError::of(reference, &self.host, &self.source, e).sanitized(&self.secrets())
    }

    /// The blob `digest` of `reference`'s repository, passed to `sink` as
    /// it arrives: an error as soon as it runs past `limit` bytes (what its
    /// descriptor says it is), so a registry cannot make kiln read, hold or
    /// write more than that. `shown` names it in messages. Its length.
    pub async fn blob(
        &self,
        reference: &oci_client::Reference,
        shown: &str,
        limit: u64,
        mut sink: impl FnMut(&[u8]) -> Result<(), RegistryError>,
    ) -> Result<u64, RegistryError> {
        use futures_util::StreamExt;
        let named = reference.digest().unwrap_or_default().to_owned();
        let mut stream = (self
            .client
            .pull_blob_stream(reference, named.as_str())
            .await)
            .map_err(|e| self.error(shown, e))?;
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error(shown, e.into()))?;
            len += chunk.len() as u64;
            if len > limit {
                return Err(RegistryError::NotAnImage {
                    reference: shown.to_owned(),
                    reason: format!("blob {named} runs past the {limit} bytes it is said to be"),
                });
            }
            sink(&chunk)?;
        }
        Ok(len)
    }

    /// What a registry must never get printed back: the password or token
    /// sent, and the `user:password` pair as Basic auth encodes it.
    fn secrets(&self) -> Vec<String> {
        use base64::Engine;
        match &self.auth {
            RegistryAuth::Anonymous => Vec::new(),
            RegistryAuth::Basic(user, password) => {
                let pair = format!("{user}:{password}");
                let engine = base64::engine::general_purpose::STANDARD;
                vec![password.clone(), engine.encode(&pair), pair]
            }
            RegistryAuth::Bearer(token) => vec![token.clone()],
        }
    }
}

/// How long a registry may keep kiln waiting for a connection or for the
/// next bytes of an answer: `KILN_REGISTRY_TIMEOUT` seconds, else 30.
fn timeout() -> std::time::Duration {
    let secs = std::env::var("KILN_REGISTRY_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(30);
    std::time::Duration::from_secs(secs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http,
    Https,
}

/// The protocol for `host`, by the rule in the module doc; `has_certs_d`:
/// whether `<certs.d>/HOST` exists. Pure.
pub(super) fn protocol(host: &str, access: &Access, has_certs_d: bool) -> Protocol {
    let (name, _) = split_port(host);
    // An entry without a port covers the name on every port, as a name
    // alone does in Docker's `insecure-registries`.
    let insecure = (access.insecure.iter()).any(|entry| entry == host || entry == name);
    let configured_ca = has_certs_d || !access.ca_files.is_empty();
    match insecure || (is_loopback(host) && !configured_ca) {
        true => Protocol::Http,
        false => Protocol::Https,
    }
}

/// A `reqwest` client as `oci-client` makes one from the same settings:
/// the system's roots and `roots`, the same timeouts.
fn http_client(roots: &[Certificate]) -> Result<reqwest::Client, reqwest::Error> {
    let roots = (roots.iter())
        .map(|c| reqwest::Certificate::from_der(&c.data))
        .collect::<Result<Vec<_>, _>>()?;
    reqwest::Client::builder()
        .tls_certs_merge(roots)
        .connect_timeout(timeout())
        .read_timeout(timeout())
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `<certs_d>/HOST[:PORT]` if it is a directory. A host that could name
/// something outside `certs_d` (`..`, a `/`) has none.
fn certs_d_dir(certs_d: &Path, host: &str) -> Option<PathBuf> {
    if host.is_empty() || host.contains('/') || host == "." || host == ".." {
        return None;
    }
    let dir = certs_d.join(host);
    dir.is_dir().then_some(dir)
}

/// The `*.crt` files of a `certs.d` host directory, sorted (Docker reads
/// `ca.crt` and any other `.crt` there as CAs).
fn crt_files(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let io = |source| RegistryError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "crt") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every certificate of the PEM file `path`, each checked to be usable as
/// a trust anchor: a file kiln cannot use is an error naming it, never
/// skipped.
fn read_ca(path: &Path) -> Result<Vec<Certificate>, RegistryError> {
    let bad = |reason: String| RegistryError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("it is not PEM: {e}")))?;
    if ders.is_empty() {
        return Err(bad("it holds no `BEGIN CERTIFICATE` block".into()));
    }
    let mut anchors = rustls::RootCertStore::empty();
    ders.into_iter()
        .enumerate()
        .map(|(i, der)| {
            anchors
                .add(der.clone())
                .map_err(|e| bad(format!("certificate {} of it: {e}", i + 1)))?;
            Ok(Certificate {
                encoding: CertificateEncoding::Der,
                data: der.to_vec(),
            })
        })
        .collect()
}

/// `name:port` → (`name`, `Some(port)`); brackets of an IPv6 name kept.
fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            (name, Some(port))
        }
        _ => (host, None),
    }
}

/// `127.0.0.1:5000`, `localhost:5000`, `[::1]:5000`: a registry on this
/// machine.
fn is_loopback(host: &str) -> bool {
    let (name, _) = split_port(host);
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
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example:5000",
            "ghcr.io",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    fn access(insecure: &[&str], ca_files: &[&str]) -> Access {
        Access {
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            ca_files: ca_files.iter().map(PathBuf::from).collect(),
            certs_d: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn insecure_registries_are_spoken_to_over_http_whatever_else_is_configured() {
        let a = access(&["registry.lan:5000", "10.1.2.3"], &["/ca.pem"]);
        for (host, certs_d) in [
            ("registry.lan:5000", false),
            ("registry.lan:5000", true),
            ("10.1.2.3:443", true),
            ("10.1.2.3", false),
        ] {
            assert_eq!(protocol(host, &a, certs_d), Protocol::Http, "{host}");
        }
        // Another port of a name given with its port is not covered.
        assert_eq!(protocol("registry.lan:5001", &a, false), Protocol::Https);
        assert_eq!(protocol("registry.lan", &a, false), Protocol::Https);
    }

    #[test]
    fn loopback_is_http_until_a_ca_is_configured() {
        let none = access(&[], &[]);
        assert_eq!(protocol("127.0.0.1:5000", &none, false), Protocol::Http);
        assert_eq!(protocol("localhost:5000", &none, false), Protocol::Http);
        assert_eq!(protocol("[::1]:5000", &none, false), Protocol::Http);
        assert_eq!(protocol("127.0.0.1:5000", &none, true), Protocol::Https);
        let ca = access(&[], &["/ca.pem"]);
        assert_eq!(protocol("127.0.0.1:5000", &ca, false), Protocol::Https);
        // ...unless it is given as insecure too.
        let both = access(&["127.0.0.1:5000"], &["/ca.pem"]);
        assert_eq!(protocol("127.0.0.1:5000", &both, true), Protocol::Http);
    }

    #[test]
    fn other_hosts_are_https() {
        let none = access(&[], &[]);
        for host in ["docker.io", "ghcr.io", "10.0.0.1:5000", "localhost.example"] {
            assert_eq!(protocol(host, &none, false), Protocol::Https, "{host}");
        }
    }

    #[test]
    fn certs_d_never_leaves_its_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("reg:5000")).expect("mkdir");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        assert_eq!(
            certs_d_dir(dir.path(), "reg:5000"),
            Some(dir.path().join("reg:5000"))
        );
        assert_eq!(certs_d_dir(dir.path(), "other:5000"), None);
        assert_eq!(certs_d_dir(&sub, ".."), None);
        assert_eq!(certs_d_dir(&sub, "../sub"), None);
    }

    #[test]
    fn a_ca_file_that_is_not_a_certificate_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases = [
            ("empty.crt", "".to_owned(), "no `BEGIN CERTIFICATE`"),
            ("text.crt", "hello\n".to_owned(), "no `BEGIN CERTIFICATE`"),
            (
                "garbage.crt",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
                "certificate 1",
            ),
        ];
        for (name, text, why) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let err = read_ca(&path).expect_err(name);
            assert!(
                matches!(&err, RegistryError::BadCa { path: p, reason } if *p == path && reason.contains(why)),
                "{name}: {err:?}"
            );
        }
        let missing = dir.path().join("missing.crt");
        assert!(matches!(
            read_ca(&missing),
            Err(RegistryError::BadCa { path, .. }) if path == missing
        ));
    }
}
