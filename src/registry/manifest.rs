//! [`Registry::manifest`]: a manifest or index read as a stream, at most
//! [`MAX_MANIFEST`] bytes. `oci-client` reads a manifest whole, however
//! long (a hostile registry or cache could fill memory), so kiln asks for
//! manifests itself, over a `reqwest` client set up as the `oci-client` one
//! (protocol, CAs, timeouts), with the credentials `oci-client` negotiates.
//! Network IO; writes nothing.

use std::collections::HashMap;

use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use super::RegistryError;
use super::client::Registry;

/// The largest manifest or index kiln reads: what containerd and
/// containers/image accept (the distribution spec asks registries to take
/// at least 4 MiB). An image with hundreds of layers stays far below.
pub(super) const MAX_MANIFEST: usize = 4 << 20;

/// How a repository's requests are authorized, once learnt.
#[derive(Debug, Clone)]
pub(super) enum Authorization {
    Anonymous,
    Basic,
    Bearer(String),
}

/// Per repository: what [`Registry::manifest`] learnt.
pub(super) type Authorizations = std::sync::Mutex<HashMap<String, Authorization>>;

impl Registry {
    /// The manifest or index at `reference`, accepting `media_types`; `shown`
    /// names it in messages. Not checked against a digest: the callers do.
    pub async fn manifest(
        &self,
        reference: &Reference,
        shown: &str,
        media_types: &[&str],
    ) -> Result<Vec<u8>, RegistryError> {
        let url = manifest_url(self.scheme(), reference);
        let mut authorization = self.authorization(reference, shown, false).await?;
        let mut retried = false;
        loop {
            let mut request = (self.http.get(&url)).header("Accept", media_types.join(", "));
            request = match (&authorization, &self.auth) {
                (Authorization::Bearer(token), _) => request.bearer_auth(token),
                (Authorization::Basic, RegistryAuth::Basic(user, password)) => {
                    request.basic_auth(user, Some(password))
                }
                _ => request,
            };
            let response = request.send().await.map_err(|e| self.failed(shown, e))?;
            let status = response.status();
            // Asked again once: with the credentials, where a Basic
            // challenge asks for them; else with what is learnt again (a
            // token may have expired since it was learnt).
            if status.as_u16() == 401 && !retried {
                retried = true;
                authorization = match (basic_challenge(&response), &self.auth) {
                    (true, RegistryAuth::Basic(..)) => self.learnt(reference, Authorization::Basic),
                    _ => self.authorization(reference, shown, true).await?,
                };
                continue;
            }
            // 200 only: another success (a 203 from a rewriting proxy, a
            // 206 of part of it) is no manifest, whatever its digest says.
            if status != reqwest::StatusCode::OK {
                let message = said(response, status).await;
                let e = OciDistributionError::ServerError {
                    code: status.as_u16(),
                    url,
                    message,
                };
                return Err(self.error(shown, e));
            }
            return self.body(response, shown).await;
        }
    }

    /// The body of `response`, refused as soon as it runs past
    /// [`MAX_MANIFEST`] bytes.
    async fn body(
        &self,
        mut response: reqwest::Response,
        shown: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failed(shown, e))? {
            if bytes.len() + chunk.len() > MAX_MANIFEST {
                return Err(RegistryError::NotAnImage {
                    reference: shown.to_owned(),
                    reason: format!("its manifest runs past {MAX_MANIFEST} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// How to authorize requests for `reference`'s repository: learnt once
    /// per repository through `oci-client` (which answers the registry's
    /// challenge, fetching a token where one is asked for), again if
    /// `refresh`.
    async fn authorization(
        &self,
        reference: &Reference,
        shown: &str,
        refresh: bool,
    ) -> Result<Authorization, RegistryError> {
        let repository = reference.repository().to_owned();
        let learnt = || {
            self.authorizations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let (false, Some(known)) = (refresh, learnt().get(&repository)) {
            return Ok(known.clone());
        }
        let token = self
            .client
            .auth(reference, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.error(shown, e))?;
        // Without a token, Basic credentials go where `/v2/` challenges for
        // them (as `oci-client`, Docker and containerd send them; its
        // `auth()` answers `None` either way, so it is asked here): a
        // registry that asks for none is sent none.
        let authorization = match (token, &self.auth) {
            (Some(token), _) => Authorization::Bearer(token),
            (None, RegistryAuth::Basic(..)) if self.challenges_basic(reference, shown).await? => {
                Authorization::Basic
            }
            (None, _) => Authorization::Anonymous,
        };
        Ok(self.learnt(reference, authorization))
    }

    /// Whether `reference`'s registry answers `/v2/` with a Basic challenge.
    async fn challenges_basic(
        &self,
        reference: &Reference,
        shown: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!("{}://{}/v2/", self.scheme(), reference.resolve_registry());
        let response = (self.http.get(&url).send().await).map_err(|e| self.failed(shown, e))?;
        Ok(basic_challenge(&response))
    }

    /// Remembers `authorization` for `reference`'s repository; it.
    fn learnt(&self, reference: &Reference, authorization: Authorization) -> Authorization {
        let mut learnt = (self.authorizations.lock()).unwrap_or_else(|p| p.into_inner());
        learnt.insert(reference.repository().to_owned(), authorization.clone());
        authorization
    }

    fn failed(&self, shown: &str, e: reqwest::Error) -> RegistryError {
        self.error(shown, OciDistributionError::RequestError(e))
    }
}

/// Whether a 401 asks for Basic credentials (`WWW-Authenticate: Basic …`).
fn basic_challenge(response: &reqwest::Response) -> bool {
    (response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter())
    .filter_map(|v| v.to_str().ok())
    .any(|v| {
        v.trim_start()
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("basic"))
    })
}

/// What a registry says when it refuses a request: the errors of its OCI
/// error body (`TOOMANYREQUESTS: You have reached your pull rate limit`),
/// else its text, else the status's name. Read up to [`MAX_SAID`] bytes:
/// the rest is dropped unread. The caller sanitizes it.
async fn said(mut response: reqwest::Response, status: reqwest::StatusCode) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_SAID
        && let Ok(Some(chunk)) = response.chunk().await
    {
        body.extend_from_slice(&chunk);
    }
    body.truncate(MAX_SAID);
    let reason = status.canonical_reason().unwrap_or("error");
    if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(&body)
        && !envelope.errors.is_empty()
    {
        return format!("{reason}: {envelope}");
    }
    match String::from_utf8_lossy(&body).trim() {
        "" => reason.to_owned(),
        text => format!("{reason}: {text}"),
    }
}

/// How much of a refusal's body [`said`] reads.
const MAX_SAID: usize = 16 << 10;

/// `oci-client`'s URL for a manifest: by digest if pinned, else by tag.
fn manifest_url(scheme: &str, reference: &Reference) -> String {
    let at = match reference.digest() {
        Some(digest) => digest,
        None => reference.tag().unwrap_or("latest"),
    };
    let namespace = (reference.namespace())
        .map(|ns| format!("?ns={ns}"))
        .unwrap_or_default();
    format!(
        "{scheme}://{}/v2/{}/manifests/{at}{namespace}",
        reference.resolve_registry(),
        reference.repository()
    )
}
