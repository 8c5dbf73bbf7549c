//! What can go wrong talking to a registry, said with the reference it was
//! about; no credential ever appears in a message.

use std::path::PathBuf;

use crate::hash::Digest;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    #[error("Cannot reach the registry for `{reference}`: {message}")]
    #[diagnostic(
        code(kiln::registry::unreachable),
        help("check the host and port, and that the registry is running")
    )]
    Unreachable { reference: String, message: String },

    #[error("The registry refused `{reference}` ({message}); credentials tried: {source_tried}")]
    #[diagnostic(
        code(kiln::registry::denied),
        help(
            "kiln reads Docker's config.json ($DOCKER_CONFIG, else ~/.docker): `credHelpers`, `credsStore`, `auths`; `docker login HOST` stores credentials there"
        )
    )]
    Denied {
        reference: String,
        message: String,
        /// Where the credentials came from ([`super::auth::Source`]); never
        /// a secret.
        source_tried: String,
    },

    #[error("Cannot verify the TLS certificate of `{host}` (for `{reference}`): {message}")]
    #[diagnostic(
        code(kiln::registry::tls),
        help(
            "trust the registry's CA with `--registry-ca FILE` or in {}/{host}/ca.crt; for a registry without TLS, `--insecure-registry {host}`",
            super::DOCKER_CERTS_D
        )
    )]
    Tls {
        reference: String,
        host: String,
        message: String,
    },

    #[error("Cannot use `{}` as a registry CA: {reason}", path.display())]
    #[diagnostic(
        code(kiln::registry::bad_ca),
        help("a CA file is PEM: one or more `-----BEGIN CERTIFICATE-----` blocks")
    )]
    BadCa { path: PathBuf, reason: String },

    #[error("`{reference}` is not in the registry ({message})")]
    #[diagnostic(code(kiln::registry::not_found))]
    NotFound { reference: String, message: String },

    #[error("The registry answered `{reference}` with an error: {message}")]
    #[diagnostic(code(kiln::registry::failed))]
    Failed { reference: String, message: String },

    #[error(
        "`{what}` of `{reference}` does not match its digest: expected {expected}, got {actual}"
    )]
    #[diagnostic(
        code(kiln::registry::digest_mismatch),
        help(
            "the registry (or something between it and kiln) served other bytes than the digest pins; nothing of them was stored"
        )
    )]
    DigestMismatch {
        reference: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },

    #[error("`{reference}` has no image for {platform}")]
    #[diagnostic(
        code(kiln::registry::no_platform),
        help("the index has: {available}; choose one with `platform=\"…\"`")
    )]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("`{reference}` is not an image: {reason}")]
    #[diagnostic(code(kiln::registry::not_an_image))]
    NotAnImage { reference: String, reason: String },

    #[error("Cannot push `{reference}`: {reason}")]
    #[diagnostic(code(kiln::registry::bad_target))]
    BadTarget { reference: String, reason: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Base(#[from] crate::base::BaseError),

    #[error("I/O failed at `{}`", path.display())]
    #[diagnostic(code(kiln::registry::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::fsx::PathError> for RegistryError {
    fn from(e: crate::fsx::PathError) -> Self {
        RegistryError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl RegistryError {
    /// This error with every text a registry wrote in it made safe to print
    /// (see [`printable`]): the `secrets` removed, control characters
    /// escaped, the length bounded.
    pub(super) fn sanitized(mut self, secrets: &[String]) -> Self {
        match &mut self {
            RegistryError::Unreachable { message, .. }
            | RegistryError::Denied { message, .. }
            | RegistryError::Tls { message, .. }
            | RegistryError::NotFound { message, .. }
            | RegistryError::Failed { message, .. } => *message = printable(message, secrets),
            RegistryError::NotAnImage { reason, .. } => *reason = printable(reason, secrets),
            _ => {}
        }
        self
    }

    /// The error for a failed request about `reference` to `host`, sorted
    /// by what the registry said (or could not be asked); `source`: where
    /// the credentials sent came from.
    pub(super) fn of(
        reference: &str,
        host: &str,
        source: &super::auth::Source,
        e: oci_client::errors::OciDistributionError,
    ) -> Self {
        use oci_client::errors::OciDistributionError as E;
        let reference = reference.to_owned();
        let denied = |message| RegistryError::Denied {
            reference: reference.clone(),
            message,
            source_tried: source.to_string(),
        };
        match e {
            E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => denied(e.to_string()),
            E::ImageManifestNotFoundError(_) => RegistryError::NotFound {
                reference,
                message: e.to_string(),
            },
            // `error_for_status` on a refused request (a push's upload).
            E::RequestError(ref r)
                if r.status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                denied(e.to_string())
            }
            E::RequestError(ref r) => {
                let message = chain(r);
                if let Some(tls) = tls_failure(r) {
                    RegistryError::Tls {
                        reference,
                        host: host.to_owned(),
                        message: tls,
                    }
                } else if r.is_connect() || r.is_timeout() {
                    RegistryError::Unreachable { reference, message }
                } else {
                    RegistryError::Failed { reference, message }
                }
            }
            E::ServerError { code: 404, .. } => RegistryError::NotFound {
                reference,
                message: e.to_string(),
            },
            E::ServerError {
                code: 401 | 403, ..
            } => denied(e.to_string()),
            E::RegistryError { ref envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::ManifestUnknown
                            | oci_client::errors::OciErrorCode::BlobUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                    )
                }) =>
            {
                RegistryError::NotFound {
                    reference,
                    message: e.to_string(),
                }
            }
            _ => RegistryError::Failed {
                reference,
                message: e.to_string(),
            },
        }
    }
}

/// The error and its causes, `: `-joined (reqwest's own message is only
/// "error sending request for url (…)"), each said once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The TLS failure behind a request error, if that is what it was. rustls's
/// error reaches reqwest wrapped in `io::Error`s, whose `source` skips what
/// they wrap, so each `io::Error` of the chain is looked into too.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(tls) = tls_failure(inner)
    {
        return Some(tls);
    }
    tls_failure(e.source()?)
}

/// How much of what a registry said is shown.
const SHOWN: usize = 400;

/// `text` (from a registry: untrusted) safe to print: each of `secrets`
/// (the credentials kiln sent, which a registry or proxy may echo) replaced,
/// control characters escaped so none reaches the terminal, and at most
/// [`SHOWN`] characters.
pub fn printable(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN {
            out.push('…');
            break;
        }
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// An error unless `actual` is `expected` (`what` of `shown`: for messages).
pub(super) fn check(
    shown: &str,
    what: &str,
    expected: Digest,
    actual: Digest,
) -> Result<(), RegistryError> {
    match expected == actual {
        true => Ok(()),
        false => Err(RegistryError::DigestMismatch {
            reference: shown.to_owned(),
            what: what.to_owned(),
            expected,
            actual,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_has_no_secret_no_control_character_and_a_bound() {
        let secrets = ["s3cret".to_owned(), "dXNlcjpzM2NyZXQ=".to_owned()];
        let said = printable("Basic dXNlcjpzM2NyZXQ= or s3cret\x1b[2K\r", &secrets);
        assert_eq!(said, "Basic [redacted] or [redacted]\\u{1b}[2K\\r");
        assert_eq!(printable(&"x".repeat(1000), &[]).chars().count(), SHOWN + 1);
    }
}
