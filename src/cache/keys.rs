//! Signing keys for cache entries, in Nix's format: a secret key file holds
//! `name:base64(seed ‖ public)`, a public key is `name:base64(public)`.
//! The name says whose key it is (`team-ci-1`). Pure but for [`keygen`]'s
//! randomness.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

pub struct SecretKey {
    name: String,
    key: SigningKey,
}

#[derive(Clone)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl SecretKey {
    /// A secret key file's text.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        let (name, bytes) = split(text)?;
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .filter(|_| bytes.len() == 64)
            .ok_or("a secret key is 64 bytes (seed and public key)")?;
        Ok(SecretKey {
            name,
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base64 ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.key.sign(message).to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The secret key file's text.
    pub fn to_text(&self) -> String {
        let mut bytes = self.key.to_bytes().to_vec();
        bytes.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}:{}", self.name, STANDARD.encode(bytes))
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let (name, bytes) = split(text)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "a public key is 32 bytes")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
        Ok(PublicKey { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `sig` (base64) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(sig) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify(message, &sig).is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, STANDARD.encode(self.key.as_bytes()))
    }
}

fn split(text: &str) -> Result<(String, Vec<u8>), String> {
    let (name, b64) = text.trim().split_once(':').ok_or("write `name:base64`")?;
    if name.is_empty() {
        return Err("the key has no name before `:`".into());
    }
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64: {e}"))?;
    Ok((name.to_owned(), bytes))
}

/// A new key pair named `name`, from the system's randomness.
pub fn keygen(name: &str) -> (SecretKey, PublicKey) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("kiln: the system has no randomness to make a key with");
    let secret = SecretKey {
        name: name.to_owned(),
        key: SigningKey::from_bytes(&seed),
    };
    let public = secret.public();
    (secret, public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text_and_sign() {
        let (secret, public) = keygen("team-1");
        let again = SecretKey::parse(&secret.to_text()).unwrap();
        let public_again = PublicKey::parse(&public.to_string()).unwrap();
        let sig = again.sign(b"entry");
        assert!(public_again.verify(b"entry", &sig));
        assert!(!public_again.verify(b"other", &sig));
        assert!(PublicKey::parse("nameless").is_err());
        assert!(
            SecretKey::parse(&public.to_string()).is_err(),
            "a public key is no secret key"
        );
    }
}
