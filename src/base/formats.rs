//! The two ways an archive names its image: an OCI `index.json` (oci-archive,
//! OCI layout directory, and `docker save` since Docker 25) or a docker-archive
//! `manifest.json`. Both come down to a list of [`Candidate`]s: a config and
//! its layers, by path inside the archive.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::archive::Source;
use super::error::BaseError;
use crate::hash::Digest;

/// One image an archive holds.
pub(crate) struct Candidate {
    pub(crate) config: BlobRef,
    pub(crate) layers: Vec<BlobRef>,
    /// `os/arch` when the archive says, to pick among several images.
    pub(crate) platform: Option<String>,
}

/// A blob by its path in the archive, and the digest and size its
/// descriptor promises (docker-archive layers promise nothing).
pub(crate) struct BlobRef {
    pub(crate) name: String,
    pub(crate) expected: Option<(Digest, u64)>,
}

impl BlobRef {
    /// Checks what was read against the descriptor's promise: checksum
    /// first (a wrong blob usually has a wrong size too, and the checksum
    /// says more), then size.
    pub(crate) fn verify(
        &self,
        archive: &Path,
        actual: Digest,
        size: u64,
    ) -> Result<(), BaseError> {
        let Some((expected, expected_size)) = self.expected else {
            return Ok(());
        };
        if actual != expected {
            return Err(BaseError::BlobChecksum {
                archive: archive.to_owned(),
                blob: self.name.clone(),
                expected,
                actual,
            });
        }
        if size != expected_size {
            return Err(BaseError::BlobSize {
                archive: archive.to_owned(),
                blob: self.name.clone(),
                expected: expected_size,
                actual: size,
            });
        }
        Ok(())
    }
}

impl Candidate {
    /// The config digest this candidate claims (verified when the config is read).
    pub(crate) fn config_digest(&self) -> Option<Digest> {
        self.config.expected.map(|(d, _)| d)
    }
}

/// The candidates of an OCI layout: every image manifest reachable from
/// `index.json`, through nested indexes.
pub(crate) fn oci_candidates(archive: &Path, source: &Source) -> Result<Vec<Candidate>, BaseError> {
    let index: ImageIndex = parse(archive, "index.json", &source.read(archive, "index.json")?)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut walk = Walk {
        archive,
        source,
        seen: &mut seen,
    };
    walk.collect(index.manifests(), None, 0, &mut out)?;
    Ok(out)
}

/// The blobs already read: each index or manifest is read once, however
/// many descriptors name it, so a hostile index that names the same nested
/// index a thousand times at each level costs a thousand reads, not 10^12.
struct Walk<'a> {
    archive: &'a Path,
    source: &'a Source,
    seen: &'a mut HashSet<String>,
}

impl Walk<'_> {
    fn collect(
        &mut self,
        descriptors: &[Descriptor],
        inherited: Option<&str>,
        depth: usize,
        out: &mut Vec<Candidate>,
    ) -> Result<(), BaseError> {
        let (archive, source) = (self.archive, self.source);
        for desc in descriptors {
            let platform = desc
                .platform()
                .as_ref()
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .or(inherited.map(str::to_owned));
            let kind = desc.media_type().to_string();
            let is_index = matches!(desc.media_type(), MediaType::ImageIndex)
                || kind == "application/vnd.docker.distribution.manifest.list.v2+json";
            let is_manifest = matches!(desc.media_type(), MediaType::ImageManifest)
                || kind == "application/vnd.docker.distribution.manifest.v2+json";
            if !(is_index || is_manifest) {
                continue;
            }
            let blob = blob_ref(archive, desc)?;
            if !self.seen.insert(blob.name.clone()) {
                continue;
            }
            // Indexes nest at most a level or two in practice; the bound stops cycles.
            if is_index && depth < 4 {
                let index: ImageIndex =
                    parse(archive, &blob.name, &read_verified(archive, source, &blob)?)?;
                self.collect(index.manifests(), platform.as_deref(), depth + 1, out)?;
            } else if is_manifest {
                let manifest: ImageManifest =
                    parse(archive, &blob.name, &read_verified(archive, source, &blob)?)?;
                out.push(Candidate {
                    config: blob_ref(archive, manifest.config())?,
                    layers: manifest
                        .layers()
                        .iter()
                        .map(|l| blob_ref(archive, l))
                        .collect::<Result<_, _>>()?,
                    platform,
                });
            }
        }
        Ok(())
    }
}

fn blob_ref(archive: &Path, desc: &Descriptor) -> Result<BlobRef, BaseError> {
    let text = desc.digest().to_string();
    let digest: Digest = text.parse().map_err(|_| BaseError::MissingBlob {
        archive: archive.to_owned(),
        blob: format!("{text} (kiln reads sha256 blobs only)"),
    })?;
    Ok(BlobRef {
        name: format!("blobs/sha256/{}", digest.hex()),
        expected: Some((digest, desc.size())),
    })
}

/// Reads a small blob and checks it against its descriptor.
pub(crate) fn read_verified(
    archive: &Path,
    source: &Source,
    blob: &BlobRef,
) -> Result<Vec<u8>, BaseError> {
    let bytes = source.read(archive, &blob.name)?;
    blob.verify(archive, Digest::of(&bytes), bytes.len() as u64)?;
    Ok(bytes)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    layers: Vec<String>,
}

/// The candidates of a docker-archive: one per `manifest.json` entry. Their
/// config is read here (it is small) because nothing else names its digest.
pub(crate) fn docker_candidates(
    archive: &Path,
    source: &Source,
) -> Result<Vec<Candidate>, BaseError> {
    let entries: Vec<DockerEntry> = parse(
        archive,
        "manifest.json",
        &source.read(archive, "manifest.json")?,
    )?;
    let mut out = Vec::new();
    for entry in entries {
        let config = source.read(archive, &entry.config)?;
        out.push(Candidate {
            config: BlobRef {
                name: entry.config,
                expected: Some((Digest::of(&config), config.len() as u64)),
            },
            layers: entry
                .layers
                .into_iter()
                .map(|name| BlobRef {
                    name,
                    expected: None,
                })
                .collect(),
            platform: None,
        });
    }
    Ok(out)
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    archive: &Path,
    file: &str,
    bytes: &[u8],
) -> Result<T, BaseError> {
    serde_json::from_slice(bytes).map_err(|source| BaseError::BadJson {
        archive: archive.to_owned(),
        file: file.to_owned(),
        source,
    })
}
