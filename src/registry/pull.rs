//! `pull`: a pinned registry image → verified blobs in the blob store, the
//! same [`ImportedImage`] an archive import gives.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use oci_client::Reference;
use oci_spec::image::ImageConfiguration;
use rayon::prelude::*;

use super::client::Registry;
use super::error::check;
use super::lister::LayerLister;
use super::pinned::{at_digest, descriptor_digest, platform_manifest};
use super::sources::Sources;
use super::{Access, RegistryError};
use crate::base::{BlobStore, Compression, ImportedImage};
use crate::fsx::IoContext;
use crate::hash::Digest;
use crate::image::{ListError, Listing};
use crate::spec::{ImageRef, Platform};

/// The largest image config kiln reads (a descriptor may claim more).
const MAX_CONFIG: u64 = 4 << 20;

/// Layers fetched at once: enough to fill a link, few enough for a
/// registry's per-client limits.
const PARALLEL_LAYERS: usize = 4;

/// A pulled image, and the listing of each layer that was downloaded now
/// (`None` for one the store had): what `image::from_base_listed` takes.
pub struct Pulled {
    pub image: ImportedImage,
    pub listings: Vec<Option<Listing>>,
}

/// Pulls `image` (resolving an index to `platform`) into `blobs_dir`,
/// verifying every digest on the way; blobs the store has are not fetched.
pub fn pull(
    image: &ImageRef,
    platform: &Platform,
    blobs_dir: &Path,
    access: &Access,
) -> Result<Pulled, RegistryError> {
    let registry = Registry::connect(&image.registry, access)?;
    let store = BlobStore::open(blobs_dir)?;
    let shown = image.to_string();
    let at = |digest: &Digest| at_digest(image, digest);
    let manifest = platform_manifest(&registry, image, platform)?;
    let config_digest = descriptor_digest(&manifest["config"], &shown)?;
    // An image config is kilobytes; its descriptor says how many.
    let config_size = manifest["config"]["size"]
        .as_u64()
        .unwrap_or(0)
        .min(MAX_CONFIG);
    let config_json = registry.run(fetch_small(
        &registry,
        &at(&config_digest),
        &shown,
        config_size,
    ))?;
    check(
        &shown,
        "the config",
        config_digest,
        Digest::of(&config_json),
    )?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_json).map_err(|e| RegistryError::NotAnImage {
            reference: shown.clone(),
            reason: format!("its config does not parse: {e}"),
        })?;
    let (tmp, digest, _) = store.write(&config_json[..], Path::new(&shown))?;
    store.commit(&tmp, &digest)?;

    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers.len() {
        return Err(RegistryError::NotAnImage {
            reference: shown,
            reason: format!(
                "its config lists {} layer(s), its manifest {}",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    let blobs: Vec<(Digest, u64)> = layers
        .iter()
        .map(|l| {
            Ok((
                descriptor_digest(l, &shown)?,
                l["size"].as_u64().unwrap_or(0),
            ))
        })
        .collect::<Result<_, RegistryError>>()?;
    let sources = Sources::at(blobs_dir);
    let fetch = Fetch {
        registry: &registry,
        store: &store,
        sources: &sources,
        shown: &shown,
    };
    let stored = registry.run(fetch_layers(&fetch, &blobs, &at))?;
    let source = PathBuf::from(&shown);
    let layers = (stored
        .into_par_iter()
        .zip(blobs.par_iter())
        .zip(diff_ids.par_iter()))
    .map(|((fetched, &(digest, size)), diff_id)| {
        let name = digest.to_string();
        match fetched {
            // Listed and hashed as it arrived.
            Fetched::Now {
                path,
                compression,
                listing,
            } => {
                let stored = (digest, size, path);
                let layer = crate::base::checked_layer(
                    &source,
                    &name,
                    stored,
                    diff_id,
                    compression,
                    listing.tar,
                )?;
                Ok((layer, Some(listing)))
            }
            // In the store already (another image's): read once more.
            Fetched::Before(path) => {
                let layer = crate::base::layer_of(&source, &name, digest, size, path, diff_id)?;
                Ok((layer, None))
            }
        }
    })
    .collect::<Result<Vec<_>, crate::base::BaseError>>()?;
    let (layers, listings) = layers.into_iter().unzip();
    Ok(Pulled {
        image: ImportedImage {
            config_digest,
            config,
            config_json,
            layers,
        },
        listings,
    })
}

/// A small blob (a config) of at most `limit` bytes.
async fn fetch_small(
    registry: &Registry,
    reference: &Reference,
    shown: &str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    let sink = |chunk: &[u8]| {
        bytes.extend_from_slice(chunk);
        Ok(())
    };
    registry.blob(reference, shown, limit, sink).await?;
    Ok(bytes)
}

/// A layer blob in the store: fetched now (and its tar hashed on the way),
/// or there before.
enum Fetched {
    Now {
        path: PathBuf,
        compression: Compression,
        listing: Listing,
    },
    Before(PathBuf),
}

/// Every layer blob into the store (those it lacks fetched, a few at a
/// time), each hashed as it is written and committed only if it matches,
/// in layer order.
async fn fetch_layers(
    fetch: &Fetch<'_>,
    blobs: &[(Digest, u64)],
    at: &impl Fn(&Digest) -> Reference,
) -> Result<Vec<Fetched>, RegistryError> {
    futures_util::stream::iter(blobs)
        .map(|&(digest, size)| async move {
            if fetch.store.contains(&digest) {
                return Ok(Fetched::Before(fetch.store.path(&digest)));
            }
            fetch_layer(fetch, &at(&digest), digest, size).await
        })
        .buffered(PARALLEL_LAYERS)
        .try_collect()
        .await
}

/// What went wrong reading layer `digest`: a digest mismatch (which the
/// client tells at the end of the stream) as kiln tells it.
fn stream_error(shown: &str, digest: Digest, e: std::io::Error) -> RegistryError {
    use oci_client::errors::DigestError;
    let mismatch = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>());
    if let Some(DigestError::VerificationError { actual, .. }) = mismatch
        && let Ok(actual) = actual.parse()
    {
        return RegistryError::DigestMismatch {
            reference: shown.to_owned(),
            what: format!("layer {digest}"),
            expected: digest,
            actual,
        };
    }
    RegistryError::Failed {
        reference: shown.to_owned(),
        message: format!("reading layer {digest}: {e}"),
    }
}

/// What every layer download of one pull shares.
struct Fetch<'a> {
    registry: &'a Registry,
    store: &'a BlobStore,
    sources: &'a Sources,
    /// The pulled reference, for messages.
    shown: &'a str,
}

async fn fetch_layer(
    fetch: &Fetch<'_>,
    reference: &Reference,
    digest: Digest,
    size: u64,
) -> Result<Fetched, RegistryError> {
    let Fetch {
        registry,
        store,
        sources,
        shown,
    } = *fetch;
    let named = digest.to_string();
    let mut stream = registry
        .client
        .pull_blob_stream(reference, named.as_str())
        .await
        .map_err(|e| registry.error(shown, e))?;
    let tmp_dir = store.tmp_dir();
    let mut file = tempfile::NamedTempFile::new_in(&tmp_dir).at(&tmp_dir)?;
    let tmp = file.path().to_owned();
    let lister = LayerLister::start(digest, tmp.clone());
    let mut received = 0u64;
    // The client hashes the stream and ends it with an error unless it
    // matches `digest`: hashing it here too cost a tenth of a pull's time.
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| stream_error(shown, digest, e))?;
        // Never more than the descriptor says: a registry cannot fill the disk.
        received += chunk.len() as u64;
        if received > size {
            return Err(RegistryError::NotAnImage {
                reference: shown.to_owned(),
                reason: format!("layer {digest} runs past the {size} bytes its descriptor gives"),
            });
        }
        file.write_all(&chunk).at(&tmp)?;
        // A layer that stops decompressing is told by `finish` below.
        lister.feed(chunk).await;
    }
    if received != size {
        return Err(RegistryError::NotAnImage {
            reference: shown.to_owned(),
            reason: format!("layer {digest} is {received} bytes, its descriptor says {size}"),
        });
    }
    let (compression, listing) = lister.finish().map_err(|e| match e {
        ListError::Refused(refused) => refused,
        ListError::Io(source) => crate::base::BaseError::BadTar {
            blob: tmp.clone(),
            source,
        },
    })?;
    let tmp = file.into_temp_path();
    let path = store.commit(&tmp, &digest)?;
    sources.add(
        &digest,
        &format!("{}/{}", reference.registry(), reference.repository()),
    );
    Ok(Fetched::Now {
        path,
        compression,
        listing,
    })
}
