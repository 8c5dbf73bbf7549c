//! The identity types: each hash kiln computes is its own type, so one
//! cannot be passed where another is meant. Pure data, no IO.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid hash of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("Expected {expected} lowercase hex digits, found {found} characters")]
    Length { expected: usize, found: usize },
    #[error("Expected only lowercase hex digits `0-9a-f`")]
    NotHex,
    #[error("Expected the algorithm prefix `sha256:`")]
    Algorithm,
}

fn parse_hex32(s: &str) -> Result<[u8; 32], HashParseError> {
    if s.len() != 64 {
        return Err(HashParseError::Length {
            expected: 64,
            found: s.len(),
        });
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(HashParseError::NotHex)?;
        let lo = hex_value(pair[1]).ok_or(HashParseError::NotHex)?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8; 32]) -> fmt::Result {
    f.write_str(&hex(bytes, 32))
}

/// The first `n` bytes of `bytes` in lower-case hex. One buffer, not a
/// `write!` per byte: keys are printed once per node per build, and the
/// formatter's per-call cost was a tenth of a no-op build's instructions.
fn hex(bytes: &[u8; 32], n: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * n);
    for &b in &bytes[..n] {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

macro_rules! blake3_identity {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first 32 hex digits: what store paths and progress lines show.
            pub fn short(&self) -> String {
                hex(&self.0, 16)
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> Self {
                Self(*h.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

blake3_identity! {
    /// A stage's cache key: blake3 over the canonical encoding of its inputs.
    Key
}

blake3_identity! {
    /// blake3 of a file tree: a stage's output, or a declared source tree.
    OutputHash
}

blake3_identity! {
    /// A packed layer's cache key: blake3 over everything that decides the
    /// layer blob's bytes (its entries, compression and epoch).
    LayerKey
}

/// An OCI content digest, always sha256. Displays as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The sha256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bare hex, as used in `blobs/sha256/<hex>`.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = HashParseError;
    /// Accepts `sha256:<64 hex>` only: a bare hex string is ambiguous.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").ok_or(HashParseError::Algorithm)?;
        parse_hex32(hex).map(Self)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_through_its_display() {
        let key = Key::from(blake3::hash(b"kiln"));
        assert_eq!(key.to_string().parse::<Key>(), Ok(key));
        assert_eq!(key.short().len(), 32);
    }

    #[test]
    fn hex_is_lower_case_and_short_is_the_display_s_prefix() {
        let key = Key::from_bytes(std::array::from_fn(|i| (i * 37 + 5) as u8));
        let expected: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key.to_string(), expected);
        assert_eq!(key.short(), expected[..32]);
    }

    #[test]
    fn digest_requires_the_sha256_prefix() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        assert_eq!(d.hex().parse::<Digest>(), Err(HashParseError::Algorithm));
    }

    #[test]
    fn uppercase_and_short_hex_are_rejected() {
        let upper = "A".repeat(64);
        assert_eq!(upper.parse::<Key>(), Err(HashParseError::NotHex));
        assert_eq!(
            "abc".parse::<OutputHash>(),
            Err(HashParseError::Length {
                expected: 64,
                found: 3
            })
        );
    }
}
