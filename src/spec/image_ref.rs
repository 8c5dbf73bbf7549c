//! What a registry base names: `image "host/repo:tag@sha256:…"` parsed by
//! Docker's rules (`golang` is `docker.io/library/golang`), pinned by the
//! digest of its manifest or index ([`ImageRef`]) or named by tag only
//! ([`TaggedRef`], pinned through kiln.lock), and the platform an index
//! resolves to. Pure: no network.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::Digest;

/// A registry image pinned by digest. The tag, if any, is only a name for
/// people: the digest is what is pulled and keyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `registry.example:5000`, or `docker.io` for a bare name.
    pub registry: String,
    /// `library/golang`.
    pub repository: String,
    pub tag: Option<String>,
    /// The sha256 of the manifest or index bytes.
    pub digest: Digest,
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("{0}")]
    Invalid(String),
    #[error("it is not pinned by digest")]
    Unpinned,
}

impl FromStr for ImageRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<ImageRef, RefError> {
        let parsed = oci_spec::distribution::Reference::from_str(s)
            .map_err(|e| RefError::Invalid(e.to_string()))?;
        let digest = parsed.digest().ok_or(RefError::Unpinned)?;
        let digest = Digest::from_str(digest).map_err(|e| RefError::Invalid(e.to_string()))?;
        Ok(ImageRef {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest,
        })
    }
}

/// A registry image named by tag alone (`host/repo:tag`): what kiln.kdl
/// may say when kiln.lock holds the digest the tag resolved to. Never
/// pulled or keyed as is: [`TaggedRef::pin`] makes the [`ImageRef`] that is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedRef {
    pub registry: String,
    pub repository: String,
    /// `latest` when the reference names none, as Docker reads it.
    pub tag: String,
}

impl TaggedRef {
    /// The reference pinned by `digest` (what the lock says the tag was).
    pub fn pin(&self, digest: Digest) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(self.tag.clone()),
            digest,
        }
    }
}

/// A reference as kiln.kdl may write it: pinned, or by tag for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryRef {
    Pinned(ImageRef),
    Tagged(TaggedRef),
}

impl FromStr for RegistryRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<RegistryRef, RefError> {
        match ImageRef::from_str(s) {
            Ok(pinned) => Ok(RegistryRef::Pinned(pinned)),
            Err(RefError::Unpinned) => TaggedRef::from_str(s).map(RegistryRef::Tagged),
            Err(e) => Err(e),
        }
    }
}

impl FromStr for TaggedRef {
    type Err = RefError;

    /// Refuses a reference with a digest: that one is an [`ImageRef`].
    fn from_str(s: &str) -> Result<TaggedRef, RefError> {
        let parsed = oci_spec::distribution::Reference::from_str(s)
            .map_err(|e| RefError::Invalid(e.to_string()))?;
        if parsed.digest().is_some() {
            return Err(RefError::Invalid("it is pinned by digest".to_owned()));
        }
        Ok(TaggedRef {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().unwrap_or("latest").to_owned(),
        })
    }
}

impl fmt::Display for TaggedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        write!(f, "@{}", self.digest)
    }
}

/// `os/architecture[/variant]`, as OCI indexes and `docker --platform`
/// spell it: `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's: `linux/<GOARCH>`.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let word =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts[..] {
            [os, arch] | [os, arch, _] if word(os) && word(arch) => Ok(Platform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: parts.get(2).filter(|v| word(v)).map(|v| (*v).to_owned()),
            })
            .and_then(|p| match parts.len() == 3 && p.variant.is_none() {
                true => Err("the variant is empty".to_owned()),
                false => Ok(p),
            }),
            _ => Err("write `os/architecture`, e.g. `linux/arm64`".to_owned()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_bare_name_is_docker_hub_library_and_a_host_is_kept() {
        let r: ImageRef = format!("golang:1.19@sha256:{HEX}").parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/golang")
        );
        assert_eq!(r.tag.as_deref(), Some("1.19"));
        let r: ImageRef = format!("127.0.0.1:5000/team/app@sha256:{HEX}")
            .parse()
            .unwrap();
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:5000/team/app@sha256:{HEX}")
        );
    }

    #[test]
    fn a_reference_without_a_digest_or_with_a_bad_one_is_refused() {
        assert_eq!("golang:1.19".parse::<ImageRef>(), Err(RefError::Unpinned));
        assert!(matches!(
            "golang@sha256:abc".parse::<ImageRef>(),
            Err(RefError::Invalid(_))
        ));
        assert!(matches!(
            "UPPER/case@sha256:x".parse::<ImageRef>(),
            Err(RefError::Invalid(_))
        ));
    }

    #[test]
    fn a_tag_alone_is_a_tagged_ref_in_docker_form_and_pins_to_an_image_ref() {
        let tagged = |s: &str| match s.parse::<RegistryRef>() {
            Ok(RegistryRef::Tagged(t)) => t,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            tagged("golang:1.19").to_string(),
            "docker.io/library/golang:1.19"
        );
        assert_eq!(
            tagged("127.0.0.1:5000/app").to_string(),
            "127.0.0.1:5000/app:latest"
        );
        let digest: Digest = format!("sha256:{HEX}").parse().unwrap();
        let pinned = tagged("127.0.0.1:5000/app:v1").pin(digest);
        assert_eq!(
            pinned.to_string(),
            format!("127.0.0.1:5000/app:v1@sha256:{HEX}")
        );
        let by_digest = format!("golang:1.19@sha256:{HEX}").parse::<RegistryRef>();
        assert!(matches!(by_digest, Ok(RegistryRef::Pinned(_))));
        assert!(matches!(
            format!("golang@sha256:{HEX}").parse::<TaggedRef>(),
            Err(RefError::Invalid(_))
        ));
        assert!(matches!(
            "golang:bad!tag".parse::<RegistryRef>(),
            Err(RefError::Invalid(_))
        ));
    }

    #[test]
    fn platforms_parse_with_an_optional_variant() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(
            (p.architecture.as_str(), p.variant.as_deref()),
            ("arm64", Some("v8"))
        );
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "/amd64", "linux/arm64/", "a/b/c/d"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
