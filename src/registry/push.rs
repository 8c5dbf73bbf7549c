//! `push`: a stored image → a registry, blob by blob. Blobs the repository
//! has are not sent again, so a second push sends only the manifest.

use std::io::Read;
use std::str::FromStr;

use oci_client::Reference;

use super::client::Registry;
use super::sources::Sources;
use super::{Access, RegistryError};
use crate::hash::Digest;
use crate::image::Assembled;

/// Where to push: `host[:port]/repository[:tag]` (tag `latest` if none).
#[derive(Debug, Clone)]
pub struct PushTarget(Reference);

impl FromStr for PushTarget {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<PushTarget, RegistryError> {
        let bad = |reason: String| RegistryError::BadTarget {
            reference: s.to_owned(),
            reason,
        };
        let parsed = Reference::from_str(s).map_err(|e| bad(e.to_string()))?;
        if parsed.digest().is_some() {
            return Err(bad(
                "a push names a tag, not a digest (the digest is the image's)".into(),
            ));
        }
        Ok(PushTarget(parsed))
    }
}

impl std::fmt::Display for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.0;
        write!(
            f,
            "{}/{}:{}",
            r.registry(),
            r.repository(),
            r.tag().unwrap_or("latest")
        )
    }
}

/// The bytes a layer is read in and sent as (one PATCH each).
const CHUNK: usize = 8 << 20;

/// Pushes `img` to `target`; its manifest digest (the image's digest).
/// A layer the repository lacks is mounted from another repository of the
/// same registry that `sources` says has it, else uploaded.
pub fn push(
    img: &Assembled,
    target: &PushTarget,
    access: &Access,
    sources: &Sources,
) -> Result<Digest, RegistryError> {
    let reference = &target.0;
    let shown = target.to_string();
    let here = format!("{}/{}", reference.registry(), reference.repository());
    let registry = Registry::connect(reference.registry(), access)?;
    let failed = |e| registry.error(&shown, e);
    registry.run(async {
        // Authenticates for push once (the token flow), before the blobs.
        registry
            .client
            .store_auth_if_needed(reference.resolve_registry(), &registry.auth)
            .await;
        for layer in &img.layers {
            let digest = layer.digest.to_string();
            if registry
                .client
                .blob_exists(reference, &digest)
                .await
                .map_err(failed)?
            {
                sources.add(&layer.digest, &here);
                continue;
            }
            if !mount(&registry, reference, &layer.digest, sources).await {
                let file =
                    std::fs::File::open(&layer.blob).map_err(|source| RegistryError::Io {
                        path: layer.blob.clone(),
                        source,
                    })?;
                registry
                    .client
                    .push_blob_stream(reference, chunks(file), &digest, Some(layer.size))
                    .await
                    .map_err(failed)?;
            }
            sources.add(&layer.digest, &here);
        }
        let config = img.config_digest.to_string();
        let present = (registry.client.blob_exists(reference, &config).await).map_err(failed)?;
        if !present && !mount(&registry, reference, &img.config_digest, sources).await {
            registry
                .client
                .push_blob(reference, img.config_json.clone(), &config)
                .await
                .map_err(failed)?;
        }
        sources.add(&img.config_digest, &here);
        let media_type = "application/vnd.oci.image.manifest.v1+json"
            .parse()
            .expect("kiln bug: a constant header value");
        registry
            .client
            .push_manifest_raw(reference, img.manifest_json.clone(), media_type)
            .await
            .map_err(failed)?;
        Ok(img.manifest_digest)
    })
}

/// Whether the registry mounted `digest` into `reference`'s repository from
/// another of its repositories known to have it. A registry that will not
/// (another host, no permission, not there after all) answers no; the
/// caller uploads.
async fn mount(
    registry: &Registry,
    reference: &Reference,
    digest: &Digest,
    sources: &Sources,
) -> bool {
    let prefix = format!("{}/", reference.registry());
    for known in sources.of(digest) {
        let Some(repository) = known.strip_prefix(&prefix) else {
            continue;
        };
        if repository == reference.repository() {
            continue;
        }
        let from = Reference::with_tag(
            reference.registry().to_owned(),
            repository.to_owned(),
            "latest".to_owned(),
        );
        let named = digest.to_string();
        if registry
            .client
            .mount_blob(reference, &from, &named)
            .await
            .is_ok()
        {
            return true;
        }
    }
    false
}

/// The file as a stream of chunks, read as the upload asks for them.
pub(super) fn chunks(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = Vec::with_capacity(CHUNK);
        match (&mut file).take(CHUNK as u64).read_to_end(&mut buf) {
            Ok(0) => None,
            Ok(_) => Some((Ok(bytes::Bytes::from(buf)), Some(file))),
            Err(e) => Some((Err(e.into()), None)),
        }
    })
}
