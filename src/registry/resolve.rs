//! `resolve`: what a tag names now, as the digest that pins it: the sha256
//! of the manifest or index bytes the registry serves for the tag (hashed
//! here, not taken from a header), which `pull` checks again when it
//! fetches by that digest. Network IO; writes nothing.

use oci_client::Reference;

use super::client::Registry;
use super::pinned::MANIFEST_TYPES;
use super::{Access, RegistryError};
use crate::hash::Digest;
use crate::spec::TaggedRef;

/// The digest `image`'s tag resolves to in its registry now.
pub fn resolve(image: &TaggedRef, access: &Access) -> Result<Digest, RegistryError> {
    let registry = Registry::connect(&image.registry, access)?;
    let shown = image.to_string();
    let reference = Reference::with_tag(
        image.registry.clone(),
        image.repository.clone(),
        image.tag.clone(),
    );
    let bytes = registry.run(registry.manifest(&reference, &shown, MANIFEST_TYPES))?;
    // A tag must name an image (or an index of them) for the lock to pin it:
    // anything else would only fail later, at the pull.
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::NotAnImage {
            reference: shown.clone(),
            reason: format!("its manifest does not parse: {e}"),
        })?;
    if json.get("manifests").is_none() && json.get("config").is_none() {
        return Err(RegistryError::NotAnImage {
            reference: shown,
            reason: "the tag names neither a manifest nor an index".to_owned(),
        });
    }
    Ok(Digest::of(&bytes))
}
