//! Key families: one domain tag and one format version per kind of key, all
//! here, so that bumping a format or adding a kind is a one-line change in
//! one place. Pure, no IO.
//!
//! A family's hash is blake3 in derive-key mode with the tag as context,
//! then the version, then the value's [`StableHash`] encoding. The tag keeps
//! families apart from each other and from plain blake3 hashes of file
//! bytes; the version makes every key of the family change when the meaning
//! or encoding of its inputs changes, so entries written under an old format
//! are simply not found, never misread.
//!
//! Adding a family: an identity type in `identity.rs` (one macro call), one
//! constant below, and a `StableHash` impl for the value it keys.

use std::marker::PhantomData;

use super::identity::{Key, LayerKey, OutputHash};

use super::writer::{KeyWriter, Shown, StableHash};

/// A kind of key: its domain tag, format version and identity type `K`.
pub struct Family<K> {
    tag: &'static str,
    version: u64,
    identity: PhantomData<fn() -> K>,
}

/// A stage's key: its definition, root, sources, tools and the output hashes
/// of the stages it uses (`eval::Inputs`).
/// v2: one `StableHash` encoding for every key; fetches have their own family.
pub const STAGE: Family<Key> = Family::new("kiln stage key", 2);

/// A fetch's key: its name, the sha256 it must produce, its file name.
pub const FETCH: Family<Key> = Family::new("kiln fetch key", 2);

/// A base image's key: its name, its pin (a registry image's manifest
/// digest and platform; an archive's config digest and content) and line.
/// What pins every byte of its entry, so an image made from the base is
/// keyed by it: bump it when what an import or pull stores changes.
/// (Adding an archive's content changed archive bases' keys, a field more,
/// and no registry base's: not a new version.)
pub const BASE: Family<Key> = Family::new("kiln base key", 1);

/// An image's key: its definition, what it adds, its parent's output, the
/// copied stages' outputs and roots, its layer compression and epoch.
/// v2: a stored image holds its layers' blobs, so it follows `LAYER` v5
/// (gzip deflated in blocks): an image stored before must not be served.
pub const IMAGE: Family<Key> = Family::new("kiln image key", 2);

/// A cached validated spec's key (`spec::load_cached`): kiln's own build,
/// the spec file's name, text and context, and the `--arg` overrides.
/// A `Key` because it names a store file as a stage key does.
pub const SPEC: Family<Key> = Family::new("kiln spec cache key", 1);

/// A file tree's hash (`tree::Tree::hash`): a stage output, a source tree,
/// an unpacked root filesystem.
/// v2: the `StableHash` encoding (variant names as tags, labelled fields).
pub const TREE: Family<OutputHash> = Family::new("kiln tree hash", 2);

/// A packed layer's cache key: its entries, compression and epoch.
/// v2: zstd layers are compressed by zstd's multithreaded (job) mode.
/// v3: the `StableHash` encoding, with each entry's fields destructured.
/// v4: gzip layers are deflated by zlib-rs (other bytes than miniz_oxide's).
/// v5: gzip layers are deflated in 512 KiB blocks on every core, as pigz
/// does (`image/layer/gzip.rs`).
pub const LAYER: Family<LayerKey> = Family::new("kiln layer key", 5);

/// The identity of a file inside a store entry, standing for its content
/// hash: the entry's output hash covers every byte, so (output, path) is
/// enough and nothing is read.
/// v2: the `StableHash` encoding; derive-key mode keeps it apart from the
/// plain blake3 of a file's bytes, which shares its field.
pub const STORED_FILE: Family<[u8; 32]> = Family::new("kiln stored file", 2);

impl<K> Family<K> {
    const fn new(tag: &'static str, version: u64) -> Self {
        Family {
            tag,
            version,
            identity: PhantomData,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

impl<K: From<blake3::Hash>> Family<K> {
    /// The key of `value` in this family.
    pub fn key<T: StableHash + ?Sized>(&self, value: &T) -> K {
        let mut w = KeyWriter::new(self.tag, self.version, false);
        value.write_key(&mut w);
        K::from(w.finish().0)
    }

    /// [`Family::key_shown`] when `shown`, else [`Family::key`] and nothing
    /// shown: the same key either way.
    pub fn key_maybe_shown<T: StableHash + ?Sized>(&self, value: &T, shown: bool) -> (K, Shown) {
        match shown {
            true => self.key_shown(value),
            false => (self.key(value), Shown::new()),
        }
    }

    /// The key of `value`, and what each labelled input was, for `explain`.
    /// The format version is shown as `kiln`.
    pub fn key_shown<T: StableHash + ?Sized>(&self, value: &T) -> (K, Shown) {
        let mut w = KeyWriter::new(self.tag, self.version, true);
        value.write_key(&mut w);
        let (hash, mut shown) = w.finish();
        shown.insert("kiln".to_owned(), self.version.to_string());
        (K::from(hash), shown)
    }
}
