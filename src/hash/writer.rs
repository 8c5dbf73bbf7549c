//! [`KeyWriter`]: the one encoder behind every key. Pure, no IO.
//!
//! The encoding is prefix-free, so two different values of one type never
//! write the same bytes: numbers are fixed-width little-endian, byte strings
//! and variant tags are length-prefixed, collections write their length
//! first, an `Option` writes a tag byte. A struct writes each field behind
//! its label, so swapping two fields of the same type changes the key too.
//!
//! A recording writer also keeps `label → display value` for each leaf it
//! writes, the label being the path of `field`/`item` labels above it
//! (`env CC`, `file src/main.c`): what lets `kiln explain` say which input
//! changed. Several leaves under one label are shown joined by a space.

use std::fmt::{self, Write as _};

/// A value that can be part of a key, written through a [`KeyWriter`].
///
/// An impl for a struct starts by destructuring it without `..`
/// (`let Entry { path, kind, mode, owner } = self;`), so that a field added
/// later is a compile error here until it is keyed, or waived as `field: _`
/// with a comment saying why it cannot change what the key stands for.
pub trait StableHash {
    fn write_key(&self, w: &mut KeyWriter);
}

/// What `kiln explain` shows of a key: label → display value, for each input.
pub type Shown = std::collections::BTreeMap<String, String>;

/// Hashes a value's [`StableHash`] encoding; made by a `Family`.
pub struct KeyWriter {
    hasher: blake3::Hasher,
    record: Option<Record>,
}

#[derive(Default)]
struct Record {
    /// The labels from the root to the value being written, joined by
    /// spaces, and where each but the last one ends (to pop them).
    at: String,
    ends: Vec<usize>,
    /// How many `quiet` calls the current write is inside.
    quiet: usize,
    shown: Shown,
}

impl KeyWriter {
    pub(super) fn new(tag: &'static str, version: u64, recording: bool) -> Self {
        let mut w = KeyWriter {
            hasher: blake3::Hasher::new_derive_key(tag),
            record: recording.then(Record::default),
        };
        w.hasher.update(&version.to_le_bytes());
        w
    }

    pub(super) fn finish(self) -> (blake3::Hash, Shown) {
        let shown = self.record.map(|r| r.shown).unwrap_or_default();
        (self.hasher.finalize(), shown)
    }

    /// A labelled field of a struct: the label is keyed, and shown as the
    /// next part of the path of everything `value` writes.
    pub fn field<T: StableHash + ?Sized>(&mut self, label: &str, value: &T) {
        self.prefixed(label.as_bytes());
        self.item(label, value);
    }

    /// One element of a collection, shown under `label` (its index, its map
    /// key). The label is not keyed: the position or the key written before
    /// already is.
    pub fn item<T: StableHash + ?Sized>(&mut self, label: impl fmt::Display, value: &T) {
        let Some(record) = self.record.as_mut().filter(|r| r.quiet == 0) else {
            return value.write_key(self);
        };
        record.ends.push(record.at.len());
        if !record.at.is_empty() {
            record.at.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(record.at, "{label}");
        value.write_key(self);
        if let Some(record) = self.record.as_mut() {
            let end = record.ends.pop().expect("kiln bug: item pushed a label");
            record.at.truncate(end);
        }
    }

    /// Keys `value` without showing it: for what a label already shows (a
    /// map key, a tree entry's path) or what adds nothing to read.
    pub fn quiet<T: StableHash + ?Sized>(&mut self, value: &T) {
        if let Some(r) = self.record.as_mut() {
            r.quiet += 1;
        }
        value.write_key(self);
        if let Some(r) = self.record.as_mut() {
            r.quiet -= 1;
        }
    }

    /// A collection's length, written before its elements. Not shown.
    pub fn len(&mut self, n: usize) {
        self.hasher.update(&(n as u64).to_le_bytes());
    }

    /// An enum variant's name, written before its fields, and shown.
    pub fn tag(&mut self, name: &'static str) {
        self.prefixed(name.as_bytes());
        self.show(|| name.to_owned());
    }

    pub fn str(&mut self, s: &str) {
        self.prefixed(s.as_bytes());
        self.show(|| s.to_owned());
    }

    /// Bytes that need not be UTF-8 (an on-disk path); shown lossily.
    pub fn bytes(&mut self, b: &[u8]) {
        self.prefixed(b);
        self.show(|| String::from_utf8_lossy(b).into_owned());
    }

    pub fn u64(&mut self, n: u64) {
        self.hasher.update(&n.to_le_bytes());
        self.show(|| n.to_string());
    }

    pub fn bool(&mut self, b: bool) {
        self.hasher.update(&[u8::from(b)]);
        self.show(|| b.to_string());
    }

    /// A hash of a fixed width, shown as `shown` (hex, `sha256:<hex>`).
    pub fn hash32(&mut self, bytes: &[u8; 32], shown: impl fmt::Display) {
        self.hasher.update(bytes);
        self.show(|| shown.to_string());
    }

    /// The tag byte of an `Option` (0 none, 1 some). Not shown: a missing
    /// value shows as a missing label.
    pub(super) fn option_tag(&mut self, some: bool) {
        self.hasher.update(&[u8::from(some)]);
    }

    fn prefixed(&mut self, b: &[u8]) {
        self.hasher.update(&(b.len() as u64).to_le_bytes());
        self.hasher.update(b);
    }

    fn show(&mut self, value: impl FnOnce() -> String) {
        let Some(r) = self.record.as_mut() else {
            return;
        };
        if r.quiet > 0 || r.at.is_empty() {
            return;
        }
        let value = value();
        r.shown
            .entry(r.at.clone())
            .and_modify(|s| {
                s.push(' ');
                s.push_str(&value);
            })
            .or_insert(value);
    }
}
