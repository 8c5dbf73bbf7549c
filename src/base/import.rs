//! `import`: an image archive → verified blobs in the blob store.
//!
//! Trust flows from the one digest the user pinned: the config's sha256 must
//! equal it, each layer's uncompressed sha256 must equal the config's
//! `rootfs.diff_ids`, and every blob a descriptor names must match that
//! descriptor. Nothing the archive says about itself is believed otherwise.
//!
//! What an import yields is a function of the bytes it reads (the tar, or
//! the files of an image directory) and `expected` alone: never of the
//! archive's path or times (the index below only saves the reading). So an
//! image made from an archive base is keyed by the archive's content,
//! hashed when planning (`eval::archive`), without importing it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use rayon::prelude::*;

use super::archive::Source;
use super::blobs::BlobStore;
use super::error::BaseError;
use super::formats::{self, BlobRef, Candidate};
use super::image::{Compression, ImportedImage, Layer};
use super::index;
use crate::fsx::IoContext;
use crate::hash::Digest;
use crate::hash::sha256_of;

/// Reads a docker-archive tar, an oci-archive tar or an OCI layout directory
/// (tars may be gzip- or zstd-compressed); verifies every blob, each layer's
/// diff_id, and that the config digest is `expected`; stores the blobs under
/// `blobs_dir/sha256/<hex>`. A second import of an unchanged archive costs a
/// few `stat`s: the result is remembered in `blobs_dir/imports/`.
pub fn import(
    archive: &Path,
    expected: &Digest,
    blobs_dir: &Path,
) -> Result<ImportedImage, BaseError> {
    let store = BlobStore::open(blobs_dir)?;
    if let Some(image) = index::lookup(&store, archive, expected) {
        return Ok(image);
    }
    let source = Source::open(archive, &store)?;
    let candidates = if source.has("index.json") {
        formats::oci_candidates(archive, &source)?
    } else if source.has("manifest.json") {
        formats::docker_candidates(archive, &source)?
    } else {
        return Err(BaseError::UnknownFormat {
            archive: archive.to_owned(),
        });
    };
    let chosen = choose(archive, candidates, expected)?;
    let image = verify(archive, &source, &store, &chosen)?;
    index::record(&store, archive, &image)?;
    Ok(image)
}

/// The candidate whose config is `expected`; failing that, the error names
/// what the archive holds for this platform, so the user can pin it.
fn choose(
    archive: &Path,
    candidates: Vec<Candidate>,
    expected: &Digest,
) -> Result<Candidate, BaseError> {
    let platform = host_platform();
    let mut here: Vec<Candidate> = Vec::new();
    for c in candidates {
        if c.config_digest() == Some(*expected) {
            return Ok(c);
        }
        if c.platform.as_deref().is_none_or(|p| p == platform) {
            here.push(c);
        }
    }
    match here.len() {
        0 => Err(BaseError::NoManifest {
            archive: archive.to_owned(),
            platform,
        }),
        1 => {
            let actual = here[0]
                .config_digest()
                .expect("kiln bug: every candidate names its config digest");
            Err(BaseError::DigestMismatch {
                archive: archive.to_owned(),
                expected: *expected,
                actual,
            })
        }
        count => Err(BaseError::AmbiguousManifest {
            archive: archive.to_owned(),
            platform,
            count,
            expected: *expected,
            candidates: here
                .iter()
                .filter_map(|c| c.config_digest().map(|d| d.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// `linux/<GOARCH>` of this machine, as OCI platforms spell it.
fn host_platform() -> String {
    crate::spec::Platform::host().to_string()
}

fn verify(
    archive: &Path,
    source: &Source,
    store: &BlobStore,
    chosen: &Candidate,
) -> Result<ImportedImage, BaseError> {
    let config_json = formats::read_verified(archive, source, &chosen.config)?;
    let config_digest = Digest::of(&config_json);
    let config: ImageConfiguration = formats::parse(archive, &chosen.config.name, &config_json)?;
    let (tmp, digest, _) = store.write(&config_json[..], archive)?;
    store.commit(&tmp, &digest)?;

    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != chosen.layers.len() {
        return Err(BaseError::LayerCount {
            archive: archive.to_owned(),
            diff_ids: diff_ids.len(),
            layers: chosen.layers.len(),
        });
    }
    let layers = chosen
        .layers
        .par_iter()
        .zip(diff_ids.par_iter())
        .map(|(blob, diff_id)| take_layer(archive, source, store, blob, diff_id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImportedImage {
        config_digest,
        config,
        config_json,
        layers,
    })
}

/// Stores one layer blob and checks it against its descriptor and diff_id.
fn take_layer(
    archive: &Path,
    source: &Source,
    store: &BlobStore,
    blob: &BlobRef,
    diff_id: &str,
) -> Result<Layer, BaseError> {
    let (digest, size, path) = match blob.expected {
        // Already verified by an earlier import: the store's copy is the one used.
        Some((digest, size)) if store.contains(&digest) => {
            super::maintenance::touch(&store.path(&digest));
            (digest, size, store.path(&digest))
        }
        _ => {
            let taken = source.take(archive, &blob.name, store)?;
            let (digest, size) = taken.digest();
            blob.verify(archive, digest, size)?;
            let path = store.commit(taken.path(), &digest)?;
            (digest, size, path)
        }
    };
    layer_of(archive, &blob.name, digest, size, path, diff_id)
}

/// The layer stored at `path` (sha256 `digest`, `size` bytes), once its
/// uncompressed tar is found to hash to `diff_id`, the config's claim: the
/// check every import and pull makes. `source` and `name` are for messages.
pub(crate) fn layer_of(
    source: &Path,
    name: &str,
    digest: Digest,
    size: u64,
    path: std::path::PathBuf,
    diff_id: &str,
) -> Result<Layer, BaseError> {
    let mut head = [0u8; 4];
    let n = File::open(&path)
        .and_then(|mut f| f.read(&mut head))
        .at(&path)?;
    let compression = Compression::sniff(&head[..n]);
    let actual = match compression {
        Compression::None => digest,
        _ => {
            let file = BufReader::new(File::open(&path).at(&path)?);
            compression
                .decoder(file)
                .and_then(sha256_of)
                .map(|(d, _)| d)
                .map_err(|source| BaseError::BadTar {
                    blob: path.clone(),
                    source,
                })?
        }
    };
    checked_layer(
        source,
        name,
        (digest, size, path),
        diff_id,
        compression,
        actual,
    )
}

/// The layer stored at `path`, once `actual` (the sha256 of its tar,
/// however it was computed) is found to be `diff_id`.
pub(crate) fn checked_layer(
    source: &Path,
    name: &str,
    (digest, size, path): (Digest, u64, std::path::PathBuf),
    diff_id: &str,
    compression: Compression,
    actual: Digest,
) -> Result<Layer, BaseError> {
    if diff_id.parse::<Digest>() != Ok(actual) {
        return Err(BaseError::DiffId {
            archive: source.to_owned(),
            blob: name.to_owned(),
            expected: diff_id.to_owned(),
            actual,
        });
    }
    Ok(Layer {
        digest,
        diff_id: actual,
        media_type: compression.media_type().to_owned(),
        compression,
        size,
        blob: path,
    })
}
