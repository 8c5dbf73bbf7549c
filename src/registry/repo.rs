//! One repository of a registry, as a store of blobs and tagged manifests:
//! the operations kiln's remote cache is made of (`cache` builds entries
//! from them). Network IO; blobs read from and written to files.

use std::path::Path;
use std::str::FromStr;

use oci_client::Reference;

use super::client::Registry;
use super::error::check;
use super::{Access, RegistryError};
use crate::fsx::IoContext;
use crate::hash::{Digest, Sha256Writer};

/// `host[:port]/repository`, connected.
pub struct Repository {
    registry: Registry,
    registry_host: String,
    repository: String,
}

impl Repository {
    /// Connects to `name` (`host[:port]/repository`, no tag).
    pub fn connect(name: &str, access: &Access) -> Result<Repository, RegistryError> {
        let bad = |reason: String| RegistryError::BadTarget {
            reference: name.to_owned(),
            reason,
        };
        let parsed = Reference::from_str(name).map_err(|e| bad(e.to_string()))?;
        if parsed.tag().is_some_and(|t| t != "latest") || parsed.digest().is_some() {
            return Err(bad("name a repository, without a tag or digest".to_owned()));
        }
        Ok(Repository {
            registry: Registry::connect(parsed.registry(), access)?,
            registry_host: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
        })
    }

    /// `host/repository`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry_host, self.repository)
    }

    fn at_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry_host.clone(),
            self.repository.clone(),
            tag.to_owned(),
        )
    }

    fn at_digest(&self, digest: &Digest) -> Reference {
        Reference::with_digest(
            self.registry_host.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    /// The manifest tagged `tag`, its bytes; `None` if there is none.
    pub fn manifest(&self, tag: &str, media_type: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let reference = self.at_tag(tag);
        let shown = reference.whole();
        let got = (self.registry).run(self.registry.manifest(&reference, &shown, &[media_type]));
        match got {
            Ok(bytes) => Ok(Some(bytes)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A small blob (a record) of at most `limit` bytes, checked against
    /// `digest`.
    pub fn blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let reference = self.at_digest(digest);
        let shown = reference.whole();
        let mut bytes = Vec::new();
        let sink = |chunk: &[u8]| {
            bytes.extend_from_slice(chunk);
            Ok(())
        };
        self.registry
            .run(self.registry.blob(&reference, &shown, limit, sink))?;
        check(&shown, "a blob", *digest, Digest::of(&bytes))?;
        Ok(bytes)
    }

    /// The blob `digest` of `size` bytes written to `file` (created), hashed
    /// as it is written: an error, and a file to discard, unless it matches.
    pub fn blob_to_file(
        &self,
        digest: &Digest,
        size: u64,
        file: &Path,
    ) -> Result<(), RegistryError> {
        let reference = self.at_digest(digest);
        let shown = reference.whole();
        let mut out = Sha256Writer::new(std::fs::File::create(file).at(file)?);
        let sink = |chunk: &[u8]| Ok(std::io::Write::write_all(&mut out, chunk).at(file)?);
        self.registry
            .run(self.registry.blob(&reference, &shown, size, sink))?;
        let (_, actual, len) = out.finish();
        check(&shown, "a blob", *digest, actual)?;
        match len == size {
            true => Ok(()),
            false => Err(RegistryError::NotAnImage {
                reference: shown,
                reason: format!("blob {digest} is {len} bytes, not the {size} it is said to be"),
            }),
        }
    }

    /// Sends the blob in `file` (sha256 `digest`, `size` bytes) unless the
    /// repository has it.
    pub fn push_blob_file(
        &self,
        file: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let reference = self.at_tag("latest");
        let named = digest.to_string();
        let failed = |e| self.registry.error(&self.name(), e);
        self.registry.run(async {
            if self
                .registry
                .client
                .blob_exists(&reference, &named)
                .await
                .map_err(failed)?
            {
                return Ok(());
            }
            let f = std::fs::File::open(file).at(file)?;
            self.registry
                .client
                .push_blob_stream(&reference, super::push::chunks(f), &named, Some(size))
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    /// Sends a small blob unless the repository has it.
    pub fn push_blob(&self, bytes: &[u8]) -> Result<Digest, RegistryError> {
        let reference = self.at_tag("latest");
        let digest = Digest::of(bytes);
        let named = digest.to_string();
        let failed = |e| self.registry.error(&self.name(), e);
        self.registry.run(async {
            if !self
                .registry
                .client
                .blob_exists(&reference, &named)
                .await
                .map_err(failed)?
            {
                self.registry
                    .client
                    .push_blob(&reference, bytes.to_vec(), &named)
                    .await
                    .map_err(failed)?;
            }
            Ok(digest)
        })
    }

    /// Tags `manifest` (of `media_type`) as `tag`.
    pub fn push_manifest(
        &self,
        tag: &str,
        manifest: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let reference = self.at_tag(tag);
        let content_type = media_type.parse().map_err(|_| RegistryError::BadTarget {
            reference: self.name(),
            reason: format!("`{media_type}` is not a media type"),
        })?;
        self.registry
            .run(self.registry.client.push_manifest_raw(
                &reference,
                manifest.to_vec(),
                content_type,
            ))
            .map_err(|e| self.registry.error(&reference.whole(), e))?;
        Ok(())
    }
}
