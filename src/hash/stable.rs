//! [`StableHash`]: how a value enters a key, and its impls for the standard
//! types and kiln's identities. Pure, no IO.
//!
//! Never `derive(Hash)`: `std::hash` is free to change between releases and
//! platforms. Only sorted containers are keyed (`BTreeMap`, never
//! `HashMap`), so a key never depends on insertion order.

use std::collections::BTreeMap;
use std::path::Path;

use super::identity::{Digest, Key, LayerKey, OutputHash};
use super::writer::{KeyWriter, StableHash};

impl<T: StableHash + ?Sized> StableHash for &T {
    fn write_key(&self, w: &mut KeyWriter) {
        (**self).write_key(w);
    }
}

impl StableHash for str {
    fn write_key(&self, w: &mut KeyWriter) {
        w.str(self);
    }
}

impl StableHash for String {
    fn write_key(&self, w: &mut KeyWriter) {
        w.str(self);
    }
}

impl StableHash for Path {
    fn write_key(&self, w: &mut KeyWriter) {
        w.bytes(self.as_os_str().as_encoded_bytes());
    }
}

impl StableHash for bool {
    fn write_key(&self, w: &mut KeyWriter) {
        w.bool(*self);
    }
}

impl StableHash for u32 {
    fn write_key(&self, w: &mut KeyWriter) {
        w.u64(u64::from(*self));
    }
}

impl StableHash for u64 {
    fn write_key(&self, w: &mut KeyWriter) {
        w.u64(*self);
    }
}

/// A raw blake3 (a file's content hash), shown as hex.
impl StableHash for [u8; 32] {
    fn write_key(&self, w: &mut KeyWriter) {
        w.hash32(self, blake3::Hash::from_bytes(*self).to_hex());
    }
}

macro_rules! identity_key {
    ($($name:ident),*) => {$(
        impl StableHash for $name {
            fn write_key(&self, w: &mut KeyWriter) {
                w.hash32(self.as_bytes(), self);
            }
        }
    )*};
}

identity_key!(Key, OutputHash, LayerKey, Digest);

impl<T: StableHash> StableHash for Option<T> {
    fn write_key(&self, w: &mut KeyWriter) {
        w.option_tag(self.is_some());
        if let Some(value) = self {
            value.write_key(w);
        }
    }
}

/// The length, then each element, shown under its index.
impl<T: StableHash> StableHash for [T] {
    fn write_key(&self, w: &mut KeyWriter) {
        w.len(self.len());
        for (i, value) in self.iter().enumerate() {
            w.item(i, value);
        }
    }
}

impl<T: StableHash> StableHash for Vec<T> {
    fn write_key(&self, w: &mut KeyWriter) {
        self.as_slice().write_key(w);
    }
}

/// The length, then each key and value in key order; a value is shown
/// under its key.
impl<K, V> StableHash for BTreeMap<K, V>
where
    K: StableHash + std::fmt::Display,
    V: StableHash,
{
    fn write_key(&self, w: &mut KeyWriter) {
        w.len(self.len());
        for (key, value) in self {
            w.quiet(key);
            w.item(key, value);
        }
    }
}
