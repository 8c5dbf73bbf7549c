//! The remote build cache: store entries shared through an OCI registry
//! repository, so that a machine with an empty store pulls what another
//! built instead of building it (Nix's binary caches, over the registry a
//! team already runs). Network IO through `registry::Repository`; writes
//! only into the `Pending` entry it is given.
//!
//! An entry is an OCI artifact tagged by the node's key: a config (the
//! [`Record`]: key, output hash, the key's inputs for `kiln explain`, and
//! signatures) and one layer, the output tree as a zstd tar. A pulled tree
//! is unpacked as untrusted input (`base::unpack_layer`) and committed only
//! if it hashes to the recorded output hash; with trusted keys configured,
//! only entries signed by one of them are used. Pulling never fails a
//! build: an entry kiln cannot use is a warning, and the node is built.

mod entry;
mod keys;
mod pack;

use std::path::Path;

pub use entry::Record;
pub use keys::{PublicKey, SecretKey, keygen};

use crate::hash::Key;
use crate::image::stored::Part;
use crate::registry::{Access, RegistryError, Repository};
use crate::store::{Entry, Pending};

/// The largest record kiln reads.
const MAX_RECORD: u64 = 16 << 20;

/// What `--cache`, `--cache-push`, `--cache-sign-key` and `--cache-trust` say.
pub struct Remote {
    repo: Repository,
    /// Set once the cache could not be reached: the rest of the build does
    /// without it instead of waiting for it node after node.
    down: std::sync::atomic::AtomicBool,
    /// Set once a request for a record had an answer, or found the cache
    /// down: until then, lookups go one at a time ([`Remote::settled`]).
    settled: std::sync::atomic::AtomicBool,
    /// The records asked for so far (`None`: absent, or refused once with
    /// a warning): a build asks first for a node's key, then, if it needs
    /// the node's files, for its tree. One slot per key, held while it is
    /// asked for: two nodes of one key (a file imported twice) looked up
    /// at once make one request, and a refusal is said once.
    records: std::sync::Mutex<std::collections::HashMap<Key, Slot>>,
    push: bool,
    signer: Option<SecretKey>,
    trusted: Vec<PublicKey>,
}

/// A key's record once asked for (`Some`), behind the lock its lookup holds.
type Slot = std::sync::Arc<std::sync::Mutex<Option<Option<Record>>>>;

/// Why an entry was not used or not pushed: said as a warning.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0}; this build goes on without the cache")]
    Down(RegistryError),
    #[error("entry {tag} of {repo}: {reason}")]
    Refused {
        repo: String,
        tag: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error(transparent)]
    Base(#[from] crate::base::BaseError),
    #[error("I/O failed at `{}`", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::fsx::PathError> for CacheError {
    fn from(e: crate::fsx::PathError) -> Self {
        CacheError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl Remote {
    /// The cache at `repository` (`host[:port]/repository`). No network IO yet.
    pub fn new(
        repository: &str,
        access: &Access,
        push: bool,
        signer: Option<SecretKey>,
        trusted: Vec<PublicKey>,
    ) -> Result<Remote, RegistryError> {
        Ok(Remote {
            repo: Repository::connect(repository, access)?,
            down: std::sync::atomic::AtomicBool::new(false),
            settled: std::sync::atomic::AtomicBool::new(false),
            records: Default::default(),
            push,
            signer,
            trusted,
        })
    }

    /// Whether built entries are pushed.
    pub fn pushes(&self) -> bool {
        self.push
    }

    /// Whether the cache has answered a request for a record, or was
    /// found down. Until then a caller with many lookups asks one at a
    /// time, so that an unreachable cache is said for the same node on
    /// every run (the first it looks up), not for whichever request of
    /// several in flight failed first.
    pub fn settled(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.settled.load(Ordering::Relaxed) || self.down.load(Ordering::Relaxed)
    }

    /// The record of the cache's entry for `key`, if it has one kiln may
    /// use (trusted, naming this key), without its tree: what `kiln
    /// explain` compares. Why an entry cannot be used is said once: asked
    /// again, it is absent.
    pub fn record(&self, key: &Key) -> Result<Option<Record>, CacheError> {
        let slot = {
            let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            records.entry(*key).or_default().clone()
        };
        // Waits only for another lookup of this key, which waits for nothing.
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(record) = &*slot {
            return Ok(record.clone());
        }
        let found = self.fetch_record(key);
        *slot = Some(found.as_ref().ok().cloned().flatten());
        found
    }

    fn fetch_record(&self, key: &Key) -> Result<Option<Record>, CacheError> {
        use std::sync::atomic::Ordering;
        if self.down.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let tag = entry::tag(key);
        let manifest = self.repo.manifest(&tag, entry::MANIFEST_TYPE);
        if !matches!(manifest, Err(RegistryError::Unreachable { .. })) {
            self.settled.store(true, Ordering::Relaxed);
        }
        let manifest = match manifest {
            Ok(Some(manifest)) => manifest,
            Ok(None) => return Ok(None),
            Err(e) => return self.failed(e).map(|()| None),
        };
        // A reason may quote the entry (a parser's "unknown field `…`"):
        // the cache writer's bytes, shown without control characters.
        let refuse = |reason: String| CacheError::Refused {
            repo: self.repo.name(),
            tag: tag.clone(),
            reason: crate::registry::printable(&reason, &[]),
        };
        let (config, tree) = entry::parse_manifest(&manifest).map_err(refuse)?;
        // A record is its inputs, a few kilobytes for most stages.
        let record = Record::parse(&self.repo.blob(&config, MAX_RECORD)?).map_err(refuse)?;
        record.check(key, &tree, &self.trusted).map_err(refuse)?;
        Ok(Some(record))
    }

    /// Fills `pending` from the cache's entry for `key`, if it has one kiln
    /// may use: `Ok(None)` when it has none, an error (to warn about) when
    /// it has one that cannot be used. The caller commits.
    pub fn pull(&self, key: &Key, pending: &Pending) -> Result<Option<Record>, CacheError> {
        let Some(record) = self.record(key)? else {
            return Ok(None);
        };
        let tree = &record.tree;
        let blob = pending.tmp_dir().join("cache-entry.tar.zst");
        self.repo.blob_to_file(&tree.digest, tree.size, &blob)?;
        pack::unpack(&blob, tree, record.contents, pending.out_dir())?;
        std::fs::remove_file(&blob).map_err(|source| CacheError::Io { path: blob, source })?;
        // Keys after an image were made of the config digest its record
        // names: the tree must be that image.
        if let Some(claimed) = record.config {
            let image = crate::image::stored::read(pending.out_dir(), Part::Record);
            let actual = image.map(|image| image.config_digest()).ok();
            if actual != Some(claimed) {
                return Err(CacheError::Refused {
                    repo: self.repo.name(),
                    tag: entry::tag(key),
                    reason: format!(
                        "its tree is not the image (config {claimed}) its record names"
                    ),
                });
            }
        }
        Ok(Some(record))
    }

    /// Pushes `entry` (just built under `key`, its inputs `inputs`; for an
    /// image, `config` is its config digest).
    pub fn push(
        &self,
        key: &Key,
        (entry, config): (&Entry, Option<crate::hash::Digest>),
        inputs: std::collections::BTreeMap<String, String>,
        scratch: &Path,
    ) -> Result<(), CacheError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let packed = pack::pack(entry.path.as_path(), scratch)?;
        let sent = (|| {
            let repo = &self.repo;
            repo.push_blob_file(packed.path(), &packed.layer.digest, packed.layer.size)?;
            let tree = (&packed.layer, packed.contents);
            let record = Record::new(key, (entry, config), inputs, tree, self.signer.as_ref());
            let json = record.to_json();
            let config = repo.push_blob(&json)?;
            let manifest = entry::manifest(&config, json.len() as u64, &packed.layer);
            repo.push_manifest(&entry::tag(key), &manifest, entry::MANIFEST_TYPE)
        })();
        sent.or_else(|e| self.failed(e))
    }

    /// `e` as a warning. An unreachable cache is marked down and said once
    /// (requests in flight together find it down: `Ok`), so that no later
    /// lookup or push of the build waits out its timeouts again.
    fn failed(&self, e: RegistryError) -> Result<(), CacheError> {
        use std::sync::atomic::Ordering;
        match e {
            RegistryError::Unreachable { .. } if self.down.swap(true, Ordering::Relaxed) => Ok(()),
            e @ RegistryError::Unreachable { .. } => Err(CacheError::Down(e)),
            e => Err(e.into()),
        }
    }
}
