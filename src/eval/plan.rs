//! Planning: which stages a build needs, in what order, with what inputs.
//!
//! Reads the filesystem (declared sources, host tools) but builds nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use rayon::prelude::*;

use super::inputs::Inputs;
use super::order::{Node, Order, Work, root_image};
use crate::base::ImportedImage;
use crate::spec::{Name, NodeRef, Root, Spec, Stage};
use crate::tree::{self, StatCache, Tree};

/// The stages to build, dependencies before dependents.
#[derive(Debug)]
pub struct Plan<'s> {
    pub stages: Vec<PlannedStage<'s>>,
}

/// One stage or fetch, ready to be keyed once its dependencies' outputs are
/// known.
#[derive(Debug)]
pub struct PlannedStage<'s> {
    pub work: Work<'s>,
    /// Indices into `Plan::stages` of the stages this one uses, in `use` order.
    pub deps: Vec<usize>,
    /// Indices of the stages the image this stage runs `from` is made of:
    /// they must be built before its root can be assembled.
    pub root_deps: Vec<usize>,
    /// The declared sources as scanned: what gets copied into the build dir.
    pub sources: Tree,
    /// Host tools, resolved on the host's PATH: name → absolute path.
    pub tools: BTreeMap<String, PathBuf>,
    /// The filesystem the stage runs in.
    pub root: PlannedRoot,
    pub inputs: Inputs,
}

/// Where a planned stage runs.
#[derive(Debug, Clone)]
pub enum PlannedRoot {
    Host,
    /// An imported base image, verified against its pinned digest.
    Base(Arc<ImportedImage>),
    /// An image of this spec: assembled, and keyed by its config digest,
    /// once the stages it is made of are built.
    Image(Name),
}

/// What planning reads besides the spec.
pub struct PlanEnv<'a> {
    /// Lets unchanged sources be keyed without reading them.
    pub stat_cache: &'a StatCache,
    /// Where imported base images keep their blobs (`Store::blobs_dir`).
    pub blobs_dir: &'a Path,
}

impl PlannedStage<'_> {
    pub fn name(&self) -> &Name {
        &self.work.name().value
    }

    /// Every stage that must finish first: used stages and root stages, once each.
    pub fn waits_on(&self) -> std::collections::BTreeSet<usize> {
        self.deps.iter().chain(&self.root_deps).copied().collect()
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EvalError {
    #[error("No stage or image named `{name}`")]
    #[diagnostic(code(kiln::eval::unknown_target), help("{help}"))]
    UnknownTarget { name: String, help: String },

    #[error("Host tool `{tool}` is not on PATH")]
    #[diagnostic(
        code(kiln::eval::tool_not_found),
        help("install `{tool}`, or remove it from `tools`; kiln looked in: {path}")
    )]
    ToolNotFound {
        tool: String,
        path: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("declared here")]
        span: SourceSpan,
    },

    #[error("Stage `{stage}` declares host `tools` but does not run on the host")]
    #[diagnostic(
        code(kiln::eval::tools_need_host),
        help(
            "`tools` are programs of the host, hashed into the key; a stage `from` a base or an image runs that image's programs: drop `tools`, or put the program in the image"
        )
    )]
    ToolsNeedHost {
        stage: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("host programs")]
        span: SourceSpan,
    },

    #[error("Failed to hash the sources of stage `{stage}`")]
    #[diagnostic(code(kiln::eval::sources))]
    Sources {
        stage: String,
        #[source]
        source: tree::TreeError,
    },

    #[error("Failed to import base image `{base}`")]
    #[diagnostic(code(kiln::eval::base))]
    Base {
        base: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("imported from here")]
        span: SourceSpan,
        #[related]
        cause: Vec<crate::base::BaseError>,
    },

    #[error("Failed to hash host tool `{}`", path.display())]
    #[diagnostic(code(kiln::eval::tool_io))]
    ToolIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EvalError {
    /// A failure of the machine (a full disk while importing a base), not a
    /// mistake in kiln.kdl: exit code 1, not 2.
    pub fn is_environment(&self) -> bool {
        match self {
            EvalError::Base { cause, .. } => {
                cause.iter().any(crate::base::BaseError::is_environment)
            }
            _ => false,
        }
    }
}

/// Plans `targets` (stage or image names; every stage when empty) and every
/// stage or fetch they need.
pub fn plan<'s>(
    spec: &'s Spec,
    targets: &[String],
    env: &PlanEnv<'_>,
) -> Result<Plan<'s>, EvalError> {
    let mut order = Order::new(spec);
    if targets.is_empty() {
        for stage in &spec.stages {
            order.add(Node::Work(Work::Run(stage)));
        }
    }
    for target in targets {
        match spec.lookup(target) {
            Some(NodeRef::Stage(stage)) => order.add(Node::Work(Work::Run(stage))),
            Some(NodeRef::Image(image)) => order.add(Node::Image(image)),
            _ => return Err(unknown_target(spec, target)),
        }
    }
    let order = order.into_works();
    let stages = order
        .par_iter()
        .map(|work| plan_one(spec, *work, env))
        .collect::<Result<Vec<_>, _>>()?;
    let positions: HashMap<&str, usize> = (order.iter().enumerate())
        .map(|(i, work)| (work.name().value.as_str(), i))
        .collect();
    let index = |name: &str| positions.get(name).copied();
    let stages = stages
        .into_iter()
        .map(|mut planned| {
            if let Work::Run(stage) = planned.work {
                planned.deps = (stage.uses.iter())
                    .map(|u| {
                        index(u.value.as_str()).expect("kiln bug: used stage was planned first")
                    })
                    .collect();
                if let Root::Image(name) = &stage.from.value {
                    let mut needed = Order::new(spec);
                    needed.add(Node::Image(root_image(spec, name.as_str())));
                    planned.root_deps = (needed.into_works().iter())
                        .map(|w| {
                            index(w.name().value.as_str())
                                .expect("kiln bug: root image stage was planned first")
                        })
                        .collect();
                }
            }
            planned
        })
        .collect();
    Ok(Plan { stages })
}

fn plan_one<'s>(
    spec: &'s Spec,
    work: Work<'s>,
    env: &PlanEnv<'_>,
) -> Result<PlannedStage<'s>, EvalError> {
    let stage = match work {
        Work::Run(stage) => stage,
        Work::Fetch(fetch) => {
            let inputs = Inputs::of_fetch(fetch);
            return Ok(PlannedStage {
                work,
                deps: Vec::new(),
                root_deps: Vec::new(),
                sources: Tree::default(),
                tools: BTreeMap::new(),
                root: PlannedRoot::Host,
                inputs,
            });
        }
    };
    let srcs: Vec<_> = stage.srcs.iter().map(|s| s.value.clone()).collect();
    let sources = tree::scan_sources(&spec.context, &srcs, env.stat_cache).map_err(|source| {
        EvalError::Sources {
            stage: stage.name.value.to_string(),
            source,
        }
    })?;
    if let (Some(tool), false) = (stage.tools.first(), stage.from.value == Root::Host) {
        return Err(EvalError::ToolsNeedHost {
            stage: stage.name.value.to_string(),
            src: spec.source.clone(),
            span: tool.span,
        });
    }
    let mut tools = BTreeMap::new();
    let mut tool_hashes = BTreeMap::new();
    for tool in &stage.tools {
        let path = find_on_path(&tool.value).ok_or_else(|| EvalError::ToolNotFound {
            tool: tool.value.clone(),
            path: std::env::var("PATH").unwrap_or_default(),
            src: spec.source.clone(),
            span: tool.span,
        })?;
        tool_hashes.insert(tool.value.clone(), hash_file(&path)?);
        tools.insert(tool.value.clone(), path);
    }
    let root = plan_root(spec, stage, env)?;
    let root_input = match &root {
        PlannedRoot::Host => "host".to_owned(),
        PlannedRoot::Base(image) => format!("base {}", image.config_digest),
        // Completed with the image's config digest at build time.
        PlannedRoot::Image(name) => format!("image {name}"),
    };
    let inputs = Inputs::of_stage(stage, &root_input, &sources, &tool_hashes);
    Ok(PlannedStage {
        work,
        deps: Vec::new(),
        root_deps: Vec::new(),
        sources,
        tools,
        root,
        inputs,
    })
}

/// Imports (and verifies) the base image a stage runs in. The image's
/// config digest, pinned in kiln.kdl, is what enters the key.
fn plan_root(spec: &Spec, stage: &Stage, env: &PlanEnv<'_>) -> Result<PlannedRoot, EvalError> {
    let name = match &stage.from.value {
        Root::Host => return Ok(PlannedRoot::Host),
        Root::Image(name) => return Ok(PlannedRoot::Image(name.clone())),
        Root::Base(name) => name,
    };
    let base = spec.bases.iter().find(|b| &b.name.value == name);
    let base = base.expect("kiln bug: spec validation let `from` name an unknown base");
    let archive = base.archive.value.on_disk(&spec.context);
    let image = crate::base::import(&archive, &base.digest.value, env.blobs_dir).map_err(|e| {
        EvalError::Base {
            base: name.to_string(),
            src: spec.source.clone(),
            span: base.digest.span,
            cause: vec![e],
        }
    })?;
    Ok(PlannedRoot::Base(Arc::new(image)))
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
fn hash_file(path: &Path) -> Result<String, EvalError> {
    let io = |source| EvalError::ToolIo {
        path: path.to_path_buf(),
        source,
    };
    let real = fs_err::canonicalize(path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap(&real).map_err(io)?;
    Ok(hasher.finalize().to_hex().to_string())
}

fn unknown_target(spec: &Spec, target: &str) -> EvalError {
    let names = spec
        .stages
        .iter()
        .map(|s| &s.name)
        .chain(spec.images.iter().map(|i| &i.name));
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
