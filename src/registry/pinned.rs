//! A digest-pinned registry image's manifest for a platform (through its
//! index if it is one), each manifest checked against the digest that
//! names it; and the config digest it gives, which a stage run in the
//! image is keyed by. Network IO, each manifest once per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use oci_client::Reference;

use super::client::Registry;
use super::error::check;
use super::manifest::MAX_MANIFEST;
use super::{Access, RegistryError};
use crate::hash::Digest;
use crate::spec::{ImageRef, Platform};

/// Manifests kiln reads: OCI and Docker, single and multi-platform.
pub(super) const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The config digest of `image` for `platform`: what a stage run in it is
/// keyed by, known from its manifest (or its index, then its manifest)
/// without pulling a layer.
pub fn config_of(
    image: &ImageRef,
    platform: &Platform,
    access: &Access,
) -> Result<Digest, RegistryError> {
    let registry = Registry::connect(&image.registry, access)?;
    let manifest = platform_manifest(&registry, image, platform)?;
    descriptor_digest(&manifest["config"], &image.to_string())
}

/// `image`'s manifest for `platform`, through its index if it is one; each
/// checked against the digest that names it.
pub(super) fn platform_manifest(
    registry: &Registry,
    image: &ImageRef,
    platform: &Platform,
) -> Result<serde_json::Value, RegistryError> {
    let shown = image.to_string();
    let top = manifest(
        registry,
        &at_digest(image, &image.digest),
        &shown,
        "the manifest",
    )?;
    Ok(match top.get("manifests") {
        Some(entries) => {
            let digest = choose(entries, platform, &shown)?;
            let at = at_digest(image, &digest);
            manifest(registry, &at, &shown, "the platform's manifest")?
        }
        None => top,
    })
}

pub(super) fn at_digest(image: &ImageRef, digest: &Digest) -> Reference {
    Reference::with_digest(
        image.registry.clone(),
        image.repository.clone(),
        digest.to_string(),
    )
}

/// The manifest or index at `reference` (pinned by digest), checked
/// against that digest and parsed; fetched once per process.
fn manifest(
    registry: &Registry,
    reference: &Reference,
    shown: &str,
    what: &str,
) -> Result<serde_json::Value, RegistryError> {
    let bytes = match Seen::get(reference) {
        Some(bytes) => bytes,
        None => {
            let bytes = registry.run(registry.manifest(reference, shown, MANIFEST_TYPES))?;
            let expected: Digest = reference
                .digest()
                .and_then(|d| d.parse().ok())
                .expect("kiln bug: manifests are fetched by digest");
            check(shown, what, expected, Digest::of(&bytes))?;
            Seen::keep(reference, bytes)
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::NotAnImage {
        reference: shown.to_owned(),
        reason: format!("{what} does not parse: {e}"),
    })
}

/// Manifests and indexes this process has read and checked, by registry,
/// repository and digest: a base whose config the survey read from its
/// manifest, and which is then pulled, is not asked for twice. At most
/// [`Seen::BOUND`] bytes in all; past that, manifests are not kept.
struct Seen;

type SeenMap = HashMap<String, Arc<Vec<u8>>>;

static SEEN: Mutex<Option<(SeenMap, usize)>> = Mutex::new(None);

impl Seen {
    const BOUND: usize = 4 * MAX_MANIFEST;

    fn get(reference: &Reference) -> Option<Arc<Vec<u8>>> {
        let seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
        seen.as_ref()?.0.get(&reference.whole()).cloned()
    }

    fn keep(reference: &Reference, bytes: Vec<u8>) -> Arc<Vec<u8>> {
        let bytes = Arc::new(bytes);
        let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, held) = seen.get_or_insert_with(Default::default);
        if *held + bytes.len() <= Self::BOUND {
            *held += bytes.len();
            map.insert(reference.whole(), bytes.clone());
        }
        bytes
    }
}

/// The index entry for `platform`; failing that, an error listing what the
/// index has.
fn choose(
    entries: &serde_json::Value,
    platform: &Platform,
    shown: &str,
) -> Result<Digest, RegistryError> {
    let entries = entries.as_array().map(Vec::as_slice).unwrap_or_default();
    let platform_of = |e: &serde_json::Value| {
        let p = &e["platform"];
        Platform {
            os: p["os"].as_str().unwrap_or_default().to_owned(),
            architecture: p["architecture"].as_str().unwrap_or_default().to_owned(),
            variant: p["variant"].as_str().map(str::to_owned),
        }
    };
    // A variant the user did not ask for does not disqualify an entry.
    let fits = |p: &Platform| {
        p.os == platform.os
            && p.architecture == platform.architecture
            && (platform.variant.is_none() || p.variant == platform.variant)
    };
    match entries.iter().find(|e| fits(&platform_of(e))) {
        Some(entry) => descriptor_digest(entry, shown),
        None => Err(RegistryError::NoPlatform {
            reference: shown.to_owned(),
            platform: platform.to_string(),
            available: (entries.iter())
                .map(|e| platform_of(e).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

pub(super) fn descriptor_digest(
    d: &serde_json::Value,
    shown: &str,
) -> Result<Digest, RegistryError> {
    d["digest"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| RegistryError::NotAnImage {
            reference: shown.to_owned(),
            reason: format!("a descriptor has no sha256 digest: {d}"),
        })
}
