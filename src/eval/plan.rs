//! Planning: which nodes a build needs, in what order, with what inputs.
//!
//! Reads the filesystem (declared sources, host tools, base archives) but
//! builds and imports nothing: a base enters a key through its pinned
//! digest, and an archive base through its archive's content too.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::archive;
use super::error::EvalError;
use super::inputs::Inputs;
use super::order::{Order, Work, copied, image_parent, node, stage_root};
use crate::image::LayerSettings;
use crate::spec::{BaseSource, Content, NodeRef, Root, Spec};
use crate::tree::{self, StatCache, Tree};

/// The nodes to build, dependencies before dependents.
#[derive(Debug)]
pub struct Plan<'s> {
    pub nodes: Vec<PlannedNode<'s>>,
    /// The nodes whose files a build leaves in the store: the targets
    /// named, or with none, those no other node needs (the spec's
    /// products). Whatever else the remote cache has is downloaded only if
    /// a node here must be built from it (Bazel's builds without the bytes).
    pub wanted: Vec<usize>,
    /// How the images of this plan write their layers.
    pub layers: LayerSettings,
}

/// One node, ready to be keyed once its dependencies' outputs are known.
#[derive(Debug)]
pub struct PlannedNode<'s> {
    pub work: Work<'s>,
    /// Indices into `Plan::nodes` whose output hashes enter the key by
    /// name: a stage's used stages (in `use` order), an image's copied
    /// stages (in first-copy order).
    pub deps: Vec<usize>,
    /// The image a stage runs in, or the image or base an image is stacked
    /// on: its config digest (a stage) or its output (an image) enters the key.
    pub root: Option<usize>,
    /// For an image: the roots its copied stages ran in, where the runtime
    /// closure of what it copies is found. Their config digests enter the key.
    pub closure_roots: Vec<usize>,
    /// The declared sources as scanned: a stage's `src`, an image's `add`s.
    pub sources: Tree,
    /// Host tools, resolved on the host's PATH: name → absolute path.
    pub tools: BTreeMap<String, PathBuf>,
    pub inputs: Inputs,
}

/// What planning reads besides the spec.
pub struct PlanEnv<'a> {
    /// Lets unchanged sources be keyed without reading them.
    pub stat_cache: &'a StatCache,
    /// How image layers are written: part of every image's key.
    pub layers: LayerSettings,
}

impl PlannedNode<'_> {
    pub fn name(&self) -> &crate::spec::Name {
        &self.work.name().value
    }

    /// The directories of a stage's host tools, each once, in `tools` order:
    /// what a `from host` stage sees besides the host's system directories.
    pub fn tool_dirs(&self) -> Vec<PathBuf> {
        let Work::Run(stage) = self.work else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = Vec::new();
        for tool in &stage.tools {
            let dir = self.tools.get(&tool.value).and_then(|p| p.parent());
            if let Some(dir) = dir.filter(|d| !dirs.iter().any(|x| x == d)) {
                dirs.push(dir.to_path_buf());
            }
        }
        dirs
    }

    /// Every node that must finish first, once each.
    pub fn waits_on(&self) -> std::collections::BTreeSet<usize> {
        (self
            .deps
            .iter()
            .chain(&self.root)
            .chain(&self.closure_roots))
        .copied()
        .collect()
    }
}

/// Plans `targets` (node names; every stage and image when empty) and
/// every node they need.
pub fn plan<'s>(
    spec: &'s Spec,
    targets: &[String],
    env: &PlanEnv<'_>,
) -> Result<Plan<'s>, EvalError> {
    let mut order = Order::new(spec);
    if targets.is_empty() {
        let stages = spec.stages.iter().map(Work::Run);
        stages
            .chain(spec.images.iter().map(Work::Assemble))
            .for_each(|w| order.add(w));
    }
    for target in targets {
        match spec.lookup(target) {
            Some(NodeRef::Stage(stage)) => order.add(Work::Run(stage)),
            Some(NodeRef::Image(image)) => order.add(Work::Assemble(image)),
            // Imported or pulled ahead of the stages that will need it.
            Some(NodeRef::Base(base)) => order.add(Work::Import(base)),
            _ => return Err(unknown_target(spec, target)),
        }
    }
    let order = order.into_works();
    // One thread: planning a node is a few microseconds, and starting the
    // pool cost a no-op of 1,000 stages more than it saved (2 cores).
    let nodes = (order.iter())
        .map(|work| plan_one(spec, *work, env))
        .collect::<Result<Vec<_>, _>>()?;
    let positions: HashMap<&str, usize> = (order.iter().enumerate())
        .map(|(i, work)| (work.name().value.as_str(), i))
        .collect();
    let index = |work: Work<'_>| {
        let name = work.name().value.as_str();
        positions
            .get(name)
            .copied()
            .expect("kiln bug: a needed node was planned first")
    };
    let nodes: Vec<PlannedNode<'s>> = nodes
        .into_iter()
        .map(|mut planned| {
            match planned.work {
                Work::Run(stage) => {
                    planned.deps = (stage.uses.iter())
                        .map(|u| index(node(spec, &u.value)))
                        .collect();
                    planned.root = stage_root(spec, stage).map(index);
                }
                Work::Assemble(image) => {
                    let stages = copied(spec, image);
                    planned.deps = stages.iter().map(|s| index(Work::Run(s))).collect();
                    planned.root = image_parent(spec, image).map(index);
                    let mut roots: Vec<usize> = stages
                        .iter()
                        .filter_map(|s| stage_root(spec, s))
                        .map(index)
                        .collect();
                    roots.sort_unstable();
                    roots.dedup();
                    planned.closure_roots = roots;
                }
                Work::Fetch(_) | Work::Import(_) => {}
            }
            planned
        })
        .collect();
    let wanted = match targets.is_empty() {
        true => products(&nodes),
        false => (targets.iter())
            .filter_map(|t| nodes.iter().position(|n| n.name().as_str() == t))
            .collect(),
    };
    Ok(Plan {
        nodes,
        wanted,
        layers: env.layers,
    })
}

/// The nodes no other node waits on.
fn products(nodes: &[PlannedNode<'_>]) -> Vec<usize> {
    let mut needed = vec![false; nodes.len()];
    for planned in nodes {
        for d in planned.waits_on() {
            needed[d] = true;
        }
    }
    (0..nodes.len()).filter(|&i| !needed[i]).collect()
}

fn plan_one<'s>(
    spec: &'s Spec,
    work: Work<'s>,
    env: &PlanEnv<'_>,
) -> Result<PlannedNode<'s>, EvalError> {
    let planned = |inputs, sources, tools| PlannedNode {
        work,
        deps: Vec::new(),
        root: None,
        closure_roots: Vec::new(),
        sources,
        tools,
        inputs,
    };
    let stage = match work {
        Work::Run(stage) => stage,
        Work::Fetch(fetch) => {
            return Ok(planned(
                Inputs::of_fetch(fetch, &spec.local(fetch.name.span, &fetch.scope)),
                Tree::default(),
                BTreeMap::new(),
            ));
        }
        Work::Import(base) => {
            // `lock::pin` replaced every tag kiln.lock pins; one left here
            // has no digest to be keyed or pulled by.
            if let BaseSource::Tagged { image, .. } = &base.source {
                return Err(EvalError::Unlocked {
                    base: base.name.value.to_string(),
                    reference: image.value.to_string(),
                    src: spec.snippet(image.span).0,
                    span: spec.snippet(image.span).1,
                });
            }
            let content = match &base.source {
                BaseSource::Archive { path, .. } => {
                    let archive = path.value.on_disk(spec.dir_of(&base.scope, base.name.span));
                    let content = archive::content_of(&archive, env.stat_cache);
                    Some(content.map_err(|source| EvalError::Archive {
                        base: base.name.value.to_string(),
                        src: spec.snippet(path.span).0,
                        span: spec.snippet(path.span).1,
                        source: Box::new(source),
                    })?)
                }
                BaseSource::Registry { .. } | BaseSource::Tagged { .. } => None,
            };
            return Ok(planned(
                Inputs::of_base(spec, base, content),
                Tree::default(),
                BTreeMap::new(),
            ));
        }
        Work::Assemble(image) => {
            let adds: Vec<_> = (image.contents.iter())
                .filter_map(|c| match c {
                    Content::Add { src, .. } => Some(src.value.clone()),
                    Content::Copy { .. } => None,
                })
                .collect();
            let sources = scan(spec, &image.scope, &image.name, &adds, env)?;
            let inputs = Inputs::of_image(spec, image, &sources, &env.layers);
            return Ok(planned(inputs, sources, BTreeMap::new()));
        }
    };
    let srcs: Vec<_> = stage.srcs.iter().map(|s| s.value.clone()).collect();
    let sources = scan(spec, &stage.scope, &stage.name, &srcs, env)?;
    if let (Some(tool), false) = (stage.tools.first(), stage.from.value == Root::Host) {
        return Err(EvalError::ToolsNeedHost {
            stage: stage.name.value.to_string(),
            src: spec.snippet(tool.span).0,
            span: spec.snippet(tool.span).1,
        });
    }
    let mut tools = BTreeMap::new();
    let mut tool_hashes = BTreeMap::new();
    for tool in &stage.tools {
        let path = find_on_path(&tool.value).ok_or_else(|| EvalError::ToolNotFound {
            tool: tool.value.clone(),
            path: std::env::var("PATH").unwrap_or_default(),
            src: spec.snippet(tool.span).0,
            span: spec.snippet(tool.span).1,
        })?;
        tool_hashes.insert(tool.value.clone(), hash_file(&path, env.stat_cache)?);
        tools.insert(tool.value.clone(), path);
    }
    // Completed at build time with the root's config digest. Names as the
    // stage's own file writes them: an imported stage has one key.
    let local = spec.local(stage.name.span, &stage.scope);
    let root_input = match &stage.from.value {
        Root::Host => "host".to_owned(),
        Root::Base(name) => format!("base {}", local.name(name.as_str())),
        Root::Image(name) => format!("image {}", local.name(name.as_str())),
    };
    let inputs = Inputs::of_stage(stage, &root_input, &sources, &tool_hashes).written(local);
    Ok(planned(inputs, sources, tools))
}

/// The sources of the node called `name`, relative to the directory of
/// the file that defines it.
fn scan(
    spec: &Spec,
    scope: &str,
    name: &crate::spec::Spanned<crate::spec::Name>,
    srcs: &[crate::spec::SrcPath],
    env: &PlanEnv<'_>,
) -> Result<Tree, EvalError> {
    if srcs.is_empty() {
        return Ok(Tree::default());
    }
    let dir = spec.dir_of(scope, name.span);
    tree::scan_sources(dir, srcs, env.stat_cache).map_err(|source| EvalError::Sources {
        stage: name.value.to_string(),
        source,
    })
}

/// The host PATH entry that holds an executable `tool`, as the shell finds it.
fn find_on_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A tool is keyed by the content of the file it resolves to, not its path:
/// the same gcc installed elsewhere keys the same, an upgraded one does not.
/// Through the stat cache: a no-op build does not read the compiler again.
fn hash_file(path: &Path, cache: &StatCache) -> Result<String, EvalError> {
    let content = tree::hash_one(path, cache).map_err(|source| EvalError::ToolIo {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(blake3::Hash::from_bytes(content).to_hex().to_string())
}

fn unknown_target(spec: &Spec, target: &str) -> EvalError {
    let names = spec
        .stages
        .iter()
        .map(|s| &s.name)
        .chain(spec.images.iter().map(|i| &i.name))
        .chain(spec.bases.iter().map(|b| &b.name));
    let names: Vec<&str> = names.map(|n| n.value.as_str()).collect();
    let best = names
        .iter()
        .min_by_key(|n| strsim::levenshtein(n, target))
        .filter(|n| strsim::levenshtein(n, target) <= 3);
    let help = match best {
        Some(n) => format!("did you mean `{n}`?"),
        None => format!("the spec has: {}", names.join(", ")),
    };
    EvalError::UnknownTarget {
        name: target.to_owned(),
        help,
    }
}
