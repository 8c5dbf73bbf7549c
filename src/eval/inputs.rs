//! What goes into a node's key (a stage, a fetch, a base, an image), and
//! the key itself.
//!
//! Inputs are kept as typed, labelled fields rather than folded into one
//! hash early: the key is the node's family's hash of them ([`STAGE`],
//! [`FETCH`], [`BASE`], [`IMAGE`]), written with a recording `KeyWriter`, so each key comes with the
//! `label → value` list (`run 0` → script text, `file src/main.c` →
//! `file <blake3>`, `output dep` → its output hash) that lets `kiln explain`
//! say which input changed.

use std::collections::BTreeMap;

use self::node::{BaseInputs, ImageInputs, ImageKey};
use crate::hash::{
    BASE, Digest, FETCH, IMAGE, Key, KeyWriter, OutputHash, STAGE, Shown, StableHash,
};
use crate::spec::{Fetch, Local, Name, Stage};
use crate::tree::Tree;

/// Everything but dependency outputs that goes into a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs(Node);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Stage(StageInputs),
    Fetch(FetchInputs),
    Base(BaseInputs),
    // Boxed: an image's inputs are several times a stage's, and a plan
    // holds one `Inputs` per node.
    Image(Box<ImageInputs>),
}

/// A stage's definition after substitution, with what `eval` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StageInputs {
    platform: String,
    name: String,
    /// `host`, `base <digest>` or `image <name> [<config digest>]`.
    root: String,
    srcs: Vec<String>,
    uses: Vec<String>,
    /// Tool name → blake3 of the program found on PATH.
    tools: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    runs: Vec<String>,
    run_args: BTreeMap<String, String>,
    /// The declared sources as scanned; shared, because every key is
    /// finished on a copy of the inputs.
    sources: std::sync::Arc<Tree>,
    /// How the stage's own file or template writes names: every name
    /// above and of `output` is as written there. Never keyed itself.
    local: Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FetchInputs {
    name: String,
    sha256: Digest,
    file: String,
}

impl Inputs {
    /// Gathers a stage's inputs. Destructures `Stage` so that a field added to
    /// it later cannot be forgotten here without a compile error.
    pub(super) fn of_stage(
        stage: &Stage,
        root: &str,
        sources: &Tree,
        tools: &BTreeMap<String, String>,
    ) -> Self {
        let Stage {
            name,
            // Keyed through the names it takes off (`Inputs::written`).
            scope: _,
            // Keyed as `root`, resolved by the caller: a base's pinned
            // digest, an image's config digest, not just the name.
            from: _,
            srcs,
            uses,
            // Keyed as `tools`, which maps each of these names to the hash
            // of the program found on PATH.
            tools: _,
            env,
            runs,
            run_args,
            // How long a build may take cannot change what it produces.
            timeout: _,
            // Neither can a cache, by its contract: only content-addressed
            // tool caches, whose hits give the bytes a miss would. Its path
            // and id are where the tool's cache lives, not what it builds;
            // `kiln build --rebuild` checks the contract (spec/language.md).
            caches: _,
        } = stage;
        Inputs(Node::Stage(StageInputs {
            platform: platform(),
            name: name.value.to_string(),
            root: root.to_owned(),
            srcs: srcs.iter().map(|s| s.value.to_string()).collect(),
            uses: uses.iter().map(|u| u.value.to_string()).collect(),
            tools: tools.clone(),
            env: env.clone(),
            runs: runs.iter().map(|r| r.value.clone()).collect(),
            run_args: run_args.clone(),
            sources: std::sync::Arc::new(sources.clone()),
            local: Local::default(),
        }))
    }

    /// These stage inputs with its name and the names it uses as its own
    /// file or template writes them (`local`), so an imported or
    /// instantiated stage has one key wherever it is used. The caller
    /// gives the root the same way.
    pub(super) fn written(mut self, local: Local) -> Self {
        if let Node::Stage(stage) = &mut self.0 {
            stage.name = local.name(&stage.name).to_owned();
            for used in &mut stage.uses {
                *used = local.name(used).to_owned();
            }
            stage.local = local;
        }
        self
    }

    /// A fetch is fixed-output: its key is its name, the hash it must
    /// produce, and the file name it is stored under (`$NAME/<file>`). The
    /// rest of the URL is not an input: a mirror of the same bytes is the
    /// same fetch, as in Nix.
    pub(super) fn of_fetch(fetch: &Fetch, local: &Local) -> Self {
        // A fetch's name as its file or template writes it (`local`): the
        // same fetch imported under two aliases, or made by two instances,
        // is one key.
        let Fetch {
            name,
            scope: _,
            url,
            sha256,
        } = fetch;
        Inputs(Node::Fetch(FetchInputs {
            name: local.name(name.value.as_str()).to_owned(),
            sha256: sha256.value,
            file: fetch_file_name(url).to_owned(),
        }))
    }

    /// A stage's host tools: name → blake3 (hex) of the program found on
    /// PATH, as keyed (what kiln.lock records); empty for other nodes.
    pub fn tool_hashes(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match &self.0 {
            Node::Stage(stage) => &stage.tools,
            Node::Fetch(_) | Node::Base(_) | Node::Image(_) => &NONE,
        }
    }

    /// The root a stage runs in, or the parent an image is stacked on, as
    /// planned: `host`, `scratch`, `base NAME`, `image NAME`.
    pub fn root(&self) -> Option<&str> {
        match &self.0 {
            Node::Stage(stage) => Some(&stage.root),
            Node::Image(image) => Some(&image.parent),
            Node::Fetch(_) | Node::Base(_) => None,
        }
    }

    /// Completes the root a stage runs in (or an image's parent) with what
    /// only the build step can know: the config digest of the image or base
    /// a stage runs in; an image's parent's output, or a base parent's key.
    /// A fetch or base has no root.
    pub fn set_root(&mut self, root: String) {
        match &mut self.0 {
            Node::Stage(stage) => stage.root = root,
            Node::Image(image) => image.parent = root,
            Node::Fetch(_) | Node::Base(_) => {}
        }
    }

    /// For an image: the config digest of the root `name` that a copied
    /// stage ran in, where the runtime closure of what it copies is found.
    pub fn set_closure_root(&mut self, name: &Name, config: Digest) {
        if let Node::Image(image) = &mut self.0 {
            let name = image.local.name(name.as_str()).to_owned();
            image.closure_roots.insert(name, config);
        }
    }

    /// The final key and what went into it, label → value: these inputs
    /// plus one `output NAME` per used stage, holding its output hash.
    pub fn key(&self, deps: &[(&Name, OutputHash)]) -> (Key, Shown) {
        self.keyed(deps, true)
    }

    /// The same key as [`Inputs::key`], without recording what went in.
    pub fn key_only(&self, deps: &[(&Name, OutputHash)]) -> Key {
        self.keyed(deps, false).0
    }

    fn keyed(&self, deps: &[(&Name, OutputHash)], shown: bool) -> (Key, Shown) {
        match &self.0 {
            Node::Stage(inputs) => {
                let outputs = (deps.iter())
                    .map(|(name, output)| (inputs.local.name(name.as_str()).to_owned(), *output))
                    .collect();
                STAGE.key_maybe_shown(&StageKey { inputs, outputs }, shown)
            }
            Node::Fetch(inputs) => {
                assert!(deps.is_empty(), "kiln bug: a fetch uses no stage");
                FETCH.key_maybe_shown(inputs, shown)
            }
            Node::Base(inputs) => {
                assert!(deps.is_empty(), "kiln bug: a base uses no stage");
                BASE.key_maybe_shown(inputs, shown)
            }
            Node::Image(inputs) => {
                let outputs = (deps.iter())
                    .map(|(name, output)| (inputs.local.name(name.as_str()).to_owned(), *output))
                    .collect();
                IMAGE.key_maybe_shown(&ImageKey { inputs, outputs }, shown)
            }
        }
    }
}

/// A stage's inputs with the output hashes of the stages it uses.
struct StageKey<'a> {
    inputs: &'a StageInputs,
    outputs: BTreeMap<String, OutputHash>,
}

impl StableHash for StageKey<'_> {
    fn write_key(&self, w: &mut KeyWriter) {
        let StageKey { inputs, outputs } = self;
        let StageInputs {
            platform,
            name,
            root,
            srcs,
            uses,
            tools,
            env,
            runs,
            run_args,
            sources,
            // Every name above is already as the stage's file writes it.
            local: _,
        } = inputs;
        w.field("platform", platform);
        w.field("name", name);
        w.field("from", root);
        w.field("src", srcs);
        w.field("use", uses);
        w.field("tool", tools);
        w.field("env", env);
        w.field("run", runs);
        w.field("arg", run_args);
        w.field("file", &**sources);
        w.field("output", outputs);
    }
}

impl StableHash for FetchInputs {
    fn write_key(&self, w: &mut KeyWriter) {
        let FetchInputs { name, sha256, file } = self;
        w.field("name", name);
        w.field("sha256", sha256);
        w.field("file", file);
    }
}

/// The name a fetched file is stored under: the URL's last path segment.
pub fn fetch_file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download")
}

/// The platform stage outputs are built for: `x86_64-linux`.
fn platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

mod node;
#[cfg(test)]
mod tests;
