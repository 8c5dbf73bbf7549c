//! The inputs of the image and base nodes, and how they are keyed; the
//! `Inputs` they belong to is the parent module's.

use std::collections::BTreeMap;

use super::{Inputs, Node, platform};
use crate::eval::archive::ArchiveContent;
use crate::hash::{Digest, KeyWriter, OutputHash, StableHash};
use crate::image::{LayerSettings, Origin, Via};
use crate::spec::{
    Base, BaseSource, Command, Content, ContentAttrs, Image, ImageRoot, Local, Platform, Spanned,
    Spec,
};
use crate::tree::Tree;

/// A base: what pins every byte of its store entry (an image made from it
/// is keyed by its key). Where those bytes are (the archive's path, the
/// registry) is not keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BaseInputs {
    name: String,
    pin: Pin,
    /// `kiln.kdl:12`: what `kiln why` says about the base's files names it.
    at: String,
}

/// What pins a base's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pin {
    /// An archive's image: its config digest, and the archive's content,
    /// which the config leaves free (how each layer is compressed, in the
    /// blobs an image made from the base carries).
    Archive {
        config: Digest,
        content: ArchiveContent,
    },
    /// A registry image: its manifest or index digest, and the platform an
    /// index resolves to.
    Manifest { digest: Digest, platform: String },
}

/// An image's definition after substitution, what it adds, how its layers
/// are written; the copied stages' outputs and roots enter at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImageInputs {
    platform: String,
    name: String,
    at: String,
    /// `scratch`, `base <name> <base key>` or `image <name> <output>`.
    pub(super) parent: String,
    /// One line per `copy`/`add`, every property and its line (`why`).
    contents: Vec<String>,
    entrypoint: Option<String>,
    cmd: Option<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    workdir: Option<String>,
    user: Option<String>,
    expose: Vec<String>,
    volumes: Vec<String>,
    stop_signal: Option<String>,
    tags: Vec<String>,
    max_layers: u32,
    compression: String,
    epoch: u64,
    /// What it `add`s, as scanned; shared, as a stage's sources are.
    sources: std::sync::Arc<Tree>,
    /// Name of a root a copied stage ran in → its config digest.
    pub(super) closure_roots: BTreeMap<String, Digest>,
    /// How the image's own file or template writes names: every name
    /// above and of `output` is as written there. Never keyed itself.
    pub(super) local: Local,
}

impl Inputs {
    /// A base is keyed by its pinned digest, its name and its line, and an
    /// archive's by its `content` too (given for an archive base only).
    pub(in crate::eval) fn of_base(
        spec: &Spec,
        base: &Base,
        content: Option<ArchiveContent>,
    ) -> Self {
        let Base {
            name,
            scope,
            source,
        } = base;
        // Where the pinned bytes are read from (a path, a registry and
        // repository) is not keyed: a copy elsewhere is the same base.
        let pin = match source {
            BaseSource::Archive { path: _, digest } => Pin::Archive {
                config: digest.value,
                content: content.expect("kiln bug: an archive base is planned with its content"),
            },
            BaseSource::Registry { image, platform } => Pin::Manifest {
                digest: image.value.digest,
                platform: match platform {
                    Some(p) => p.value.to_string(),
                    None => Platform::host().to_string(),
                },
            },
            BaseSource::Tagged { .. } => {
                unreachable!("kiln bug: planning refuses a base by tag that kiln.lock does not pin")
            }
        };
        let local = spec.local(name.span, scope);
        Inputs(Node::Base(BaseInputs {
            name: local.name(name.value.as_str()).to_owned(),
            pin,
            at: line_of(spec, name.span),
        }))
    }

    /// Gathers an image's inputs. Destructures `Image` (and each content's
    /// attributes) so that a field added later cannot be forgotten here.
    pub(in crate::eval) fn of_image(
        spec: &Spec,
        image: &Image,
        sources: &Tree,
        layers: &LayerSettings,
    ) -> Self {
        let Image {
            name,
            scope,
            from,
            contents,
            entrypoint,
            cmd,
            env,
            workdir,
            user,
            expose,
            labels,
            volumes,
            stop_signal,
            tags,
            max_layers,
        } = image;
        let LayerSettings { compression, epoch } = layers;
        let command = |c: &Option<Spanned<Command>>| c.as_ref().map(|c| command_input(&c.value));
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.value.clone());
        let local = spec.local(name.span, scope);
        Inputs(Node::Image(Box::new(ImageInputs {
            platform: platform(),
            name: local.name(name.value.as_str()).to_owned(),
            at: line_of(spec, name.span),
            parent: match &from.value {
                ImageRoot::Scratch => "scratch".to_owned(),
                ImageRoot::Base(name) => format!("base {}", local.name(name.as_str())),
                ImageRoot::Image(name) => format!("image {}", local.name(name.as_str())),
            },
            contents: (contents.iter())
                .map(|c| content_input(spec, &local, c))
                .collect(),
            entrypoint: command(entrypoint),
            cmd: command(cmd),
            env: env.clone(),
            labels: labels.clone(),
            workdir: text(workdir),
            user: text(user),
            expose: expose.clone(),
            volumes: volumes.clone(),
            stop_signal: stop_signal.clone(),
            tags: tags.iter().map(|t| t.value.clone()).collect(),
            max_layers: *max_layers,
            compression: compression.name().to_owned(),
            epoch: *epoch,
            sources: std::sync::Arc::new(sources.clone()),
            closure_roots: BTreeMap::new(),
            local,
        })))
    }
}

/// An image's inputs with the output hashes of the stages it copies.
pub(super) struct ImageKey<'a> {
    pub(super) inputs: &'a ImageInputs,
    pub(super) outputs: BTreeMap<String, OutputHash>,
}

impl StableHash for ImageKey<'_> {
    fn write_key(&self, w: &mut KeyWriter) {
        let ImageKey { inputs, outputs } = self;
        let ImageInputs {
            platform,
            name,
            at,
            parent,
            contents,
            entrypoint,
            cmd,
            env,
            labels,
            workdir,
            user,
            expose,
            volumes,
            stop_signal,
            tags,
            max_layers,
            compression,
            epoch,
            sources,
            closure_roots,
            // Every name above is already as the image's file writes it.
            local: _,
        } = inputs;
        w.field("platform", platform);
        w.field("name", name);
        w.field("at", at);
        w.field("from", parent);
        w.field("content", contents);
        w.field("entrypoint", entrypoint);
        w.field("cmd", cmd);
        w.field("env", env);
        w.field("label", labels);
        w.field("workdir", workdir);
        w.field("user", user);
        w.field("expose", expose);
        w.field("volume", volumes);
        w.field("stop-signal", stop_signal);
        w.field("tag", tags);
        w.field("layers max", max_layers);
        w.field("compression", compression);
        w.field("source-date-epoch", epoch);
        w.field("file", &**sources);
        w.field("root", closure_roots);
        w.field("output", outputs);
    }
}

impl StableHash for BaseInputs {
    fn write_key(&self, w: &mut KeyWriter) {
        let BaseInputs { name, pin, at } = self;
        w.field("name", name);
        match pin {
            Pin::Archive { config, content } => {
                w.field("digest", config);
                w.field("archive", content);
            }
            Pin::Manifest { digest, platform } => {
                w.field("manifest", digest);
                w.field("platform", platform);
            }
        }
        w.field("at", at);
    }
}

/// `kiln.kdl:12`, `go.kdl:40`: where a node is defined, in the file that
/// defines it (by its name only: the same spec named by another path, or
/// imported from another directory, is the same spec).
fn line_of(spec: &Spec, span: miette::SourceSpan) -> String {
    format!("{}:{}", spec.file_name_at(span), spec.line(span))
}

/// One `copy` or `add`: what, where, how, and what `kiln why` reports of
/// it (its line and text, as [`Origin::of_node`] takes them: the stored
/// image holds them, so they are keyed). Values are JSON-quoted so no two
/// read the same.
fn content_input(spec: &Spec, local: &Local, content: &Content) -> String {
    let (what, attrs) = match content {
        Content::Copy { stage, path, attrs } => (
            format!(
                "copy {} {}",
                local.name(stage.value.as_str()),
                json(path.value.as_str())
            ),
            attrs,
        ),
        Content::Add { src, attrs } => (format!("add {}", json(src.value.as_str())), attrs),
    };
    let ContentAttrs {
        to,
        mode,
        owner,
        closure,
        closure_extra,
        span,
    } = attrs;
    let mode = mode.map_or_else(|| "default".to_owned(), |m| format!("{m:o}"));
    let origin = Origin::of_node(spec, *span, Via::Copy);
    format!(
        "{what} to={} mode={mode} owner={}:{} closure={closure} closure-extra={} at={}:{} text={}",
        json(&to.value),
        owner.uid,
        owner.gid,
        json(closure_extra),
        origin.file,
        origin.line,
        json(&origin.node),
    )
}

fn command_input(command: &Command) -> String {
    match command {
        Command::Exec(argv) => format!("exec {}", json(argv)),
        Command::Shell(script) => format!("shell {}", json(script)),
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("kiln bug: strings serialize")
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
