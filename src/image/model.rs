//! The image model: the value types every step of making an image shares
//! (layer entries, planned and packed layers, the assembled image, why a
//! path is in it). Pure data: no IO, and no imports from its siblings.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use miette::SourceSpan;
use serde::Serialize;

use crate::hash::{Digest, OutputHash};
use crate::spec::{Name, Owner, Spec};

pub use crate::compression::Compression;

/// One entry of a layer; `path` is relative to the image root, without a
/// leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub owner: Owner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File {
        disk: PathBuf,
        size: u64,
        content: [u8; 32],
    },
    Symlink {
        target: String,
    },
}

/// What made a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A `copy` from a stage's output.
    Copy,
    /// An `add` from the build context.
    Add,
    /// The runtime closure of copied programs (interpreter, libraries,
    /// `closure-extra` files).
    Closure,
    /// Several of the above, merged to honour `layers max=N`.
    Merged,
    /// A layer of the imported base image, reused verbatim.
    Base,
}

/// One layer, planned: its entries, sorted by path (parents first).
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub entries: Vec<Entry>,
    /// The history line naming it.
    pub created_by: String,
    /// Where its content lands (`""`: the image root); for [`top_paths`].
    pub dest: String,
    pub role: Role,
    /// Why each of its files is there, by path.
    pub origins: BTreeMap<String, Origin>,
}

impl Planned {
    /// Uncompressed size, near enough to pick layers to merge: contents plus
    /// a 512-byte tar header per entry.
    pub fn size(&self) -> u64 {
        let content = |e: &Entry| match e.kind {
            Kind::File { size, .. } => size.div_ceil(512) * 512,
            _ => 0,
        };
        self.entries.iter().map(|e| 512 + content(e)).sum()
    }
}

/// Why one path is in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Origin {
    pub via: Via,
    /// The first line of the kiln.kdl node, e.g. `copy server "goapp" to="/app/goapp"`.
    pub node: String,
    /// Where that node is: the spec file and its 1-based line.
    pub file: String,
    pub line: usize,
    /// For the closure: the program, then each library that needed the next,
    /// e.g. `["/app/goapp", "libsqlite3.so.0", "libc.so.6"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Copy,
    Add,
    /// Needed by an ELF program of the `copy` (`chain` says how).
    Closure,
    /// A `closure-extra` of the `copy`.
    ClosureExtra,
    /// A file of the base image the image is `from`.
    Base,
}

impl Origin {
    /// The origin of what the node at `span` (a `copy` or `add`) brings in.
    pub(crate) fn of_node(spec: &Spec, span: SourceSpan, via: Via) -> Origin {
        let text = spec.source.inner();
        let start = span.offset().min(text.len());
        let end = (start + span.len()).min(text.len());
        let node = text.get(start..end).unwrap_or_default();
        let node = node.lines().next().unwrap_or_default().trim();
        let node = node.trim_end_matches('{').trim_end();
        Origin {
            via,
            node: node.to_owned(),
            file: spec.file_name_at(span).to_owned(),
            line: spec.line(span),
            chain: Vec::new(),
        }
    }
}

/// The runtime closure's contribution to an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClosureSummary {
    /// Files and symlinks.
    pub files: u64,
    /// Bytes of file contents.
    pub bytes: u64,
}

impl ClosureSummary {
    pub(crate) fn add(&mut self, entries: &[Entry]) {
        for e in entries {
            match e.kind {
                Kind::Dir => {}
                Kind::File { size, .. } => {
                    self.files += 1;
                    self.bytes += size;
                }
                Kind::Symlink { .. } => self.files += 1,
            }
        }
    }
}

/// The runtime settings of an image after `from IMAGE` inheritance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConfigSummary {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub volumes: BTreeSet<String>,
    pub stop_signal: Option<String>,
}

/// What one pass over a layer produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Packed {
    /// sha256 of the compressed blob.
    pub digest: Digest,
    pub size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

/// A built stage an image copies from: its store path and output hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOutput {
    pub path: PathBuf,
    pub hash: OutputHash,
}

impl StageOutput {
    /// Hashes `path` to describe it (tests, and outputs not from the store).
    pub fn scan(path: &Path) -> Result<StageOutput, crate::tree::TreeError> {
        let hash = crate::tree::scan_dir(path)?.hash();
        Ok(StageOutput {
            path: path.to_path_buf(),
            hash,
        })
    }
}

/// How an image's layers are written: not in kiln.kdl, but in the bytes,
/// so part of an image's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerSettings {
    pub compression: Compression,
    /// Every timestamp in the image (tar mtimes, `created`): SOURCE_DATE_EPOCH.
    pub epoch: u64,
}

/// One layer of an assembled image; its blob lives in the layer cache, or
/// in the image's store entry once stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Layer {
    pub digest: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub compression: Compression,
    /// Not stored: set from where the image's entry is when it is read.
    #[serde(skip)]
    pub blob: PathBuf,
    /// The kiln node that made it, e.g. `kiln: copy server goapp to=/app/goapp`.
    pub created_by: String,
    pub role: Role,
    /// Files and symlinks it holds (directories not counted).
    pub files: u64,
    /// Its first few top-level paths, absolute.
    pub top: Vec<String>,
    /// Taken from the layer cache (or the store) without packing.
    #[serde(skip)]
    pub cached: bool,
}

/// An image ready to be written or loaded.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub(crate) name: Name,
    pub(crate) tags: Vec<String>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) config: ConfigSummary,
    pub(crate) config_json: Vec<u8>,
    pub(crate) config_digest: Digest,
    pub(crate) manifest_json: Vec<u8>,
    pub(crate) manifest_digest: Digest,
    pub(crate) files: FileSet,
    /// Why each path is in the image (relative, as in [`FileSet`]).
    pub(crate) origins: BTreeMap<String, Origin>,
    pub(crate) closure: ClosureSummary,
    pub(crate) epoch: u64,
}

impl Assembled {
    /// The manifest digest: the image's identity in a registry or OCI layout.
    pub fn digest(&self) -> Digest {
        self.manifest_digest
    }

    /// The config digest: the image ID `docker images --no-trunc` shows.
    pub fn config_digest(&self) -> Digest {
        self.config_digest
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The references the image is tagged with (`NAME:latest` without `tag`).
    /// Bytes an engine or registry receives: every layer blob and the config.
    pub fn size(&self) -> u64 {
        let layers: u64 = self.layers.iter().map(|l| l.size).sum();
        layers + self.config_json.len() as u64
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// Linux's limit on symlinks followed while resolving one path.
const MAX_LINKS: usize = 40;

/// Every path of an image's layers, later layers over earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct FileSet(BTreeMap<String, Node>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
enum Node {
    Dir,
    File { executable: bool },
    Symlink(String),
}

/// Where resolving a path inside the image ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    File { path: String, executable: bool },
    Dir(String),
    Missing,
}

impl FileSet {
    pub(crate) fn add(&mut self, entries: &[Entry]) {
        for e in entries {
            let node = match &e.kind {
                Kind::Dir => Node::Dir,
                Kind::File { .. } => Node::File {
                    executable: e.mode & 0o111 != 0,
                },
                Kind::Symlink { target } => Node::Symlink(target.clone()),
            };
            self.0.insert(e.path.clone(), node);
        }
    }

    /// A whiteout: `path` and everything under it are gone.
    pub(crate) fn remove(&mut self, path: &str) {
        self.0.remove(path);
        self.remove_under(path);
    }

    /// An opaque directory: what lower layers put under `dir` is gone.
    pub(crate) fn remove_under(&mut self, dir: &str) {
        let prefix = format!("{dir}/");
        self.0.retain(|p, _| !p.starts_with(&prefix));
    }

    /// Whether the image has `path` (relative) as a directory (`Some(true)`),
    /// as a file or symlink (`Some(false)`), or not at all.
    pub(crate) fn is_dir(&self, path: &str) -> Option<bool> {
        self.0.get(path).map(|n| matches!(n, Node::Dir))
    }

    /// Where the absolute `path` leads through the image's symlinks, when
    /// something is there.
    pub(crate) fn real_path(&self, path: &str) -> Option<String> {
        match self.resolve(path) {
            Resolved::File { path, .. } | Resolved::Dir(path) => Some(path),
            Resolved::Missing => None,
        }
    }

    /// Resolves `path` (absolute) component by component, following symlinks
    /// (absolute ones from the image root) as the kernel would in the container.
    pub(crate) fn resolve(&self, path: &str) -> Resolved {
        let mut pending: VecDeque<String> = components(path).collect();
        let mut at: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => at.push(part),
            }
            match self.0.get(&at.join("/")) {
                None => return Resolved::Missing,
                Some(Node::Symlink(target)) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Resolved::Missing;
                    }
                    at.pop();
                    if target.starts_with('/') {
                        at.clear();
                    }
                    components(target).rev().for_each(|c| pending.push_front(c));
                }
                Some(_) => {}
            }
        }
        let path = format!("/{}", at.join("/"));
        match self.0.get(&at.join("/")) {
            Some(Node::File { executable }) => Resolved::File {
                path,
                executable: *executable,
            },
            _ => Resolved::Dir(path),
        }
    }

    pub(crate) fn executables(&self) -> impl Iterator<Item = String> + '_ {
        let executable = |(_, n): &(&String, &Node)| matches!(n, Node::File { executable: true });
        self.0
            .iter()
            .filter(executable)
            .map(|(p, _)| format!("/{p}"))
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned)
}
