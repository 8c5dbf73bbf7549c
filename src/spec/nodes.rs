//! The validated nodes of a kiln.kdl, each value with the span it came
//! from ([`Spanned`]): args, stages (with their caches), bases, fetches and
//! images (with their contents). [`Spec`](super::Spec) holds them, in
//! `model.rs`. Pure data; no IO.
//!
//! As for the whole spec: every value here has been checked, and code after
//! `spec::load` only reads it.

use std::collections::BTreeMap;

use miette::SourceSpan;
use serde::{Deserialize, Serialize};

use super::name::{Name, SrcPath};
use crate::hash::Digest;

/// A value and where in kiln.kdl it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: SourceSpan,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// `arg NAME default="…"`, with its final value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    pub name: Spanned<Name>,
    pub value: String,
}

/// What kiln itself puts in every stage's environment.
pub(crate) const RESERVED_ENV: [&str; 7] = [
    "PATH",
    "HOME",
    "TZ",
    "LC_ALL",
    "SOURCE_DATE_EPOCH",
    "out",
    "TMPDIR",
];

/// `stage NAME { … }`: a builder, a pure function of its declared inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub name: Spanned<Name>,
    /// The alias prefix of the names the node's own file or template
    /// instance declares (`""` in kiln.kdl, `go` in a file imported
    /// `as=go`, `go.hello` in the instance `hello` of a template of that
    /// file): taken off names, with the file's alias, where they enter keys.
    pub scope: String,

    /// `from host` when the stage has no `from` (span: the stage name).
    pub from: Spanned<Root>,
    /// `src "a" "b"`: declared sources, copied into the build directory at
    /// the same relative paths. Sorted, deduplicated.
    pub srcs: Vec<Spanned<SrcPath>>,
    /// `use NAME…`: stages or fetches whose outputs this stage reads.
    pub uses: Vec<Spanned<Name>>,
    /// `tools go gcc`: host programs, found on the host's PATH, hashed.
    pub tools: Vec<Spanned<String>>,
    /// `env K=V`: substituted, sorted.
    pub env: BTreeMap<String, String>,
    /// `run "…"`: each a `/bin/sh -euc` script, run in order, text untouched.
    pub runs: Vec<Spanned<String>>,
    /// The args the `run` scripts mention (`$name` or `${name}`, with dashes as
    /// underscores), with their values: exported as environment variables and
    /// part of the key. Args the stage does not mention never change its key.
    pub run_args: BTreeMap<String, String>,
    /// `timeout "30m"`: the stage fails, every process it started killed,
    /// when it runs longer. Not in the key: it cannot change the output.
    pub timeout: Option<Spanned<std::time::Duration>>,
    /// `cache "/path"`: persistent writable directories for the tools'
    /// own content-addressed caches. Not in the key, never in the output.
    pub caches: Vec<CacheDir>,
}

/// `cache "/tmp/go-cache" id="go" sharing="locked"`: a directory that
/// survives between builds, mounted read-write at `path` in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDir {
    /// Where the scripts see it: absolute, normalized, outside kiln's own
    /// mounts and outside every other cache of the stage.
    pub path: Spanned<String>,
    /// `id=`: one cache for every stage of any project in the store that
    /// names it. Without it the cache is this project's and this stage's
    /// alone, at this path.
    pub id: Option<Spanned<String>>,
    pub sharing: CacheSharing,
}

/// How builds that want one cache at the same time share it (BuildKit's
/// `sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CacheSharing {
    /// One build at a time; the others wait.
    #[default]
    Locked,
    /// Every build at once: the tool must take care of concurrent writers.
    Shared,
    /// A build that finds it busy gets an empty directory of its own,
    /// dropped afterwards.
    Private,
}

impl CacheSharing {
    pub const NAMES: [&'static str; 3] = ["locked", "shared", "private"];

    pub fn parse(s: &str) -> Option<CacheSharing> {
        match s {
            "locked" => Some(CacheSharing::Locked),
            "shared" => Some(CacheSharing::Shared),
            "private" => Some(CacheSharing::Private),
            _ => None,
        }
    }
}

/// The root filesystem a stage runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Root {
    Host,
    /// A `base` (an imported image) of this spec.
    Base(Name),
    /// An `image` of this spec.
    Image(Name),
}

/// `base NAME { archive "path.tar" digest="sha256:…" }`,
/// `base NAME { image "host/repo:tag@sha256:…" }` or
/// `base NAME { image "host/repo:tag" }` (pinned by kiln.lock): an
/// imported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub name: Spanned<Name>,
    /// The alias prefix of the names the node's own file or template
    /// instance declares (`""` in kiln.kdl, `go` in a file imported
    /// `as=go`, `go.hello` in the instance `hello` of a template of that
    /// file): taken off names, with the file's alias, where they enter keys.
    pub scope: String,

    pub source: BaseSource,
}

/// Where a base's bytes come from, and the digest that pins them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BaseSource {
    /// A docker-archive, oci-archive tar, or OCI layout directory, pinned by
    /// the image's config digest (its image ID).
    Archive {
        path: Spanned<SrcPath>,
        digest: Spanned<Digest>,
    },
    /// A registry image pinned by its manifest or index digest; an index
    /// resolves to `platform` (this machine's when not given).
    Registry {
        image: Spanned<super::ImageRef>,
        platform: Option<Spanned<super::Platform>>,
    },
    /// A registry image by tag alone: kiln.kdl does not pin it, kiln.lock
    /// does. `lock::pin` turns it into [`BaseSource::Registry`] with the
    /// locked digest; planning refuses one left unpinned, so nothing after
    /// planning sees this variant.
    Tagged {
        image: Spanned<super::TaggedRef>,
        platform: Option<Spanned<super::Platform>>,
    },
}

impl Base {
    /// The span of what pins the base: the digest an error about its bytes
    /// points at.
    pub fn pin_span(&self) -> miette::SourceSpan {
        match &self.source {
            BaseSource::Archive { digest, .. } => digest.span,
            BaseSource::Registry { image, .. } => image.span,
            BaseSource::Tagged { image, .. } => image.span,
        }
    }
}

/// `fetch NAME url="…" sha256="…"`: a fixed-output download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    pub name: Spanned<Name>,
    /// The alias prefix of the names the node's own file or template
    /// instance declares (`""` in kiln.kdl, `go` in a file imported
    /// `as=go`, `go.hello` in the instance `hello` of a template of that
    /// file): taken off names, with the file's alias, where they enter keys.
    pub scope: String,

    pub url: Spanned<String>,
    /// sha256 of the downloaded file (`sha256="<hex>"` in kiln.kdl).
    pub sha256: Spanned<Digest>,
}

/// `image NAME { … }`: a runtime image, exported as OCI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: Spanned<Name>,
    /// The alias prefix of the names the node's own file or template
    /// instance declares (`""` in kiln.kdl, `go` in a file imported
    /// `as=go`, `go.hello` in the instance `hello` of a template of that
    /// file): taken off names, with the file's alias, where they enter keys.
    pub scope: String,

    /// `from scratch` when absent.
    pub from: Spanned<ImageRoot>,
    /// `copy` and `add` in file order; each becomes (at least) one layer.
    pub contents: Vec<Content>,
    pub entrypoint: Option<Spanned<Command>>,
    pub cmd: Option<Spanned<Command>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    /// `expose 8080 "53/udp"`: normalized to `8080/tcp`, `53/udp`; sorted.
    pub expose: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    /// `tag "name:tag"`: image references given to docker load.
    pub tags: Vec<Spanned<String>>,
    /// `layers max=N` (default 100).
    pub max_layers: u32,
}

impl Image {
    /// An image with every setting at its default: `from scratch` (spanned
    /// at the name), nothing copied, no config, `layers max=100`.
    pub fn new(name: Spanned<Name>) -> Image {
        Image {
            from: Spanned {
                value: ImageRoot::Scratch,
                span: name.span,
            },
            name,
            scope: String::new(),
            contents: Vec::new(),
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            workdir: None,
            user: None,
            expose: Vec::new(),
            labels: BTreeMap::new(),
            volumes: Vec::new(),
            stop_signal: None,
            tags: Vec::new(),
            max_layers: 100,
        }
    }
}

/// The base of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageRoot {
    Scratch,
    Base(Name),
    Image(Name),
}

/// One `copy` or `add` line of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// `copy STAGE "path" to="/dest" mode=0o755 owner="1000:1000" closure=#true`
    Copy {
        stage: Spanned<Name>,
        /// Relative path inside the stage output; `.` for all of it.
        path: Spanned<SrcPath>,
        attrs: ContentAttrs,
    },
    /// `add "path" to="/dest"`: straight from the build context.
    Add {
        src: Spanned<SrcPath>,
        attrs: ContentAttrs,
    },
}

/// Where and how copied or added files land in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentAttrs {
    /// Absolute path in the image, normalized.
    pub to: Spanned<String>,
    /// Permission bits for files (directories keep 0o755 unless `mode` is a
    /// directory copy's); `None`: 0o755 if executable, else 0o644.
    pub mode: Option<u32>,
    pub owner: Owner,
    /// Pull in the runtime closure of copied ELF files (default `#true`).
    pub closure: bool,
    /// `closure-extra "/etc/ssl/certs/ca-certificates.crt"`: data files from
    /// the same root that ELF analysis cannot find.
    pub closure_extra: Vec<String>,
    /// The whole `copy`/`add` node, for diagnostics.
    #[serde(with = "super::stored::span")]
    pub span: SourceSpan,
}

/// Numeric owner of files in a layer; `0:0` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// An `entrypoint` or `cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `entrypoint "/app/goapp" "--flag"`: an argv, run as is.
    Exec(Vec<String>),
    /// `entrypoint "./goapp --flag" shell=#true`: run by `/bin/sh -c`.
    Shell(String),
}
