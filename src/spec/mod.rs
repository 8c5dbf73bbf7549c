//! Spec: kiln.kdl → a validated, typed [`Spec`] with source spans.
//!
//! KDL is parsed by the `kdl` crate (KDL v2) into nodes that keep every span,
//! then checked once into the model types: args first (so `${arg}` resolves
//! anywhere), then the one namespace of stages, bases, fetches and images (so
//! references resolve whatever the order), then each node, then cycles.
//! Every mistake is a [`Problem`] pointing into kiln.kdl with a help line; all
//! problems found come back together in one [`SpecError`]. Reads the
//! filesystem only to check that sources exist inside the build context.
//! The language reference is `spec/language.md`.

mod args;
mod content;
mod cx;
mod error;
mod graph;
mod help;
mod image;
mod model;
mod names;
mod paths;
mod stage;
mod values;

pub use error::{Escape, Problem, ProblemKind, SpecError};
pub use model::*;
pub use values::parse_duration;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kdl::KdlDocument;
use miette::NamedSource;

use cx::Cx;
use error::label;

const TOP_NODES: &[&str] = &["arg", "stage", "base", "fetch", "image"];

/// Reads and validates the kiln.kdl at `path`; `overrides` are `--arg k=v`.
///
/// Diagnostics name the file by `path` as given, so a relative path stays
/// relative in what the user sees.
pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Spec, SpecError> {
    let name = path.display().to_string();
    let read_error = |source| {
        let kind = ProblemKind::Read {
            path: path.to_path_buf(),
            source,
        };
        let empty = Arc::new(NamedSource::new(&name, String::new()));
        SpecError::new(empty, vec![Problem::new(kind, vec![])])
    };
    let text = fs_err::read_to_string(path).map_err(read_error)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let context = fs_err::canonicalize(dir).map_err(read_error)?;
    let source = Arc::new(NamedSource::new(&name, text));
    let doc = match KdlDocument::parse(source.inner()) {
        Ok(doc) => doc,
        Err(error) => return Err(SpecError::new(source, syntax_problems(error))),
    };
    let mut cx = Cx {
        problems: Vec::new(),
        args: BTreeMap::new(),
        names: Default::default(),
        context,
    };
    let spec = validate(&mut cx, &doc, overrides, source.clone());
    match cx.problems.is_empty() {
        true => Ok(spec),
        false => Err(SpecError::new(source, cx.problems)),
    }
}

fn syntax_problems(error: kdl::KdlError) -> Vec<Problem> {
    error
        .diagnostics
        .into_iter()
        .map(|d| {
            let text = d.label.unwrap_or_else(|| "here".to_owned());
            let message = d.message.unwrap_or_else(|| "Invalid KDL".to_owned());
            let kind = ProblemKind::Syntax {
                message,
                help: d.help,
            };
            Problem::new(kind, vec![label(d.span, text)])
        })
        .collect()
}

/// Checks `doc` into a [`Spec`]; only meaningful if `cx` has no problems after.
fn validate(
    cx: &mut Cx,
    doc: &KdlDocument,
    overrides: &[(String, String)],
    source: Arc<NamedSource<String>>,
) -> Spec {
    let mut arg_spans = BTreeMap::new();
    for node in doc.nodes().iter().filter(|n| n.name().value() == "arg") {
        cx.declare_arg(node, &mut arg_spans);
    }
    let args = cx.apply_overrides(overrides, &arg_spans);
    cx.declare_names(doc);
    let mut spec = Spec {
        source,
        context: cx.context.clone(),
        args,
        stages: Vec::new(),
        bases: Vec::new(),
        fetches: Vec::new(),
        images: Vec::new(),
    };
    for node in doc.nodes() {
        match node.name().value() {
            "arg" => {}
            "stage" => spec.stages.extend(cx.stage(node)),
            "base" => spec.bases.extend(cx.base(node)),
            "fetch" => spec.fetches.extend(cx.fetch(node)),
            "image" => spec.images.extend(cx.image(node)),
            _ => cx.unknown_node(node, "kiln.kdl", TOP_NODES),
        }
    }
    cx.check_cycles(&spec.stages, &spec.images);
    spec
}
