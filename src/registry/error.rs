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

    #[error("The registry refused `{reference}` ({message})")]
    #[diagnostic(
        code(kiln::registry::denied),
        help("credentials come from {source_tried}; `docker login HOST` stores them there")
    )]
    Denied {
        reference: String,
        message: String,
        source_tried: String,
    },

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
    /// The error for a failed request about `reference`, sorted by what the
    /// registry said (or could not be asked).
    pub(super) fn of(reference: &str, e: oci_client::errors::OciDistributionError) -> Self {
        use oci_client::errors::OciDistributionError as E;
        let reference = reference.to_owned();
        let message = e.to_string();
        match e {
            E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => RegistryError::Denied {
                reference,
                message,
                source_tried: super::auth::SOURCES.to_owned(),
            },
            E::ImageManifestNotFoundError(_) => RegistryError::NotFound { reference, message },
            E::RequestError(ref r) if r.is_connect() || r.is_timeout() => {
                RegistryError::Unreachable { reference, message }
            }
            E::ServerError { code: 404, .. } => RegistryError::NotFound { reference, message },
            E::ServerError {
                code: 401 | 403, ..
            } => RegistryError::Denied {
                reference,
                message,
                source_tried: super::auth::SOURCES.to_owned(),
            },
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
                RegistryError::NotFound { reference, message }
            }
            _ => RegistryError::Failed { reference, message },
        }
    }
}
