//! Spec: kiln.kdl → a validated, typed [`Spec`] with source spans.
//!
//! KDL is parsed by the `kdl` crate (KDL v2) into nodes that keep every span,
//! then checked once into the model types: args first (so `${arg}` resolves
//! anywhere), then the one namespace of stages, bases, fetches and images (so
//! references resolve whatever the order), then each node, then cycles.
//! Every mistake is a [`Problem`] pointing into kiln.kdl with a help line; all
//! problems found come back together in one [`SpecError`]. Reads kiln.kdl
//! itself (within limits, `read`) and otherwise the filesystem only to check
//! that sources exist inside the build context. Hostile input is bounded
//! before the `kdl` crate sees it (`scan`) and when it is reported (`source`,
//! at most [`MAX_SHOWN`] problems rendered). The language reference is
//! `spec/language.md`.
//!
//! [`load_cached`] skips the parse when a directory of validated specs
//! holds this one (`cache.rs`, `stored.rs`; written and read there, and
//! every source checked again), since parsing dominates a no-op build.

mod args;
mod cache;
mod cache_dir;
mod content;
mod cx;
mod error;
mod graph;
mod help;
mod image;
mod image_ref;
mod model;
mod name_table;
mod names;
mod paths;
mod read;
mod scan;
mod source;
mod stage;
mod stored;
mod syntax;
mod values;

pub use error::{CachePathError, Escape, MAX_SHOWN, Problem, ProblemKind, SpecError};
pub use image_ref::{ImageRef, Platform, RefError, RegistryRef, TaggedRef};
pub use model::*;
pub use read::MAX_SPEC_BYTES;
pub use values::parse_duration;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdl::KdlDocument;
use miette::NamedSource;

use cx::Cx;

const TOP_NODES: &[&str] = &["arg", "stage", "base", "fetch", "image"];

/// Reads and validates the kiln.kdl at `path`; `overrides` are `--arg k=v`.
///
/// Diagnostics name the file by `path` as given, so a relative path stays
/// relative in what the user sees.
pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Spec, SpecError> {
    let (source, context) = read_source(path)?;
    load_source(source, context, overrides)
}

/// What [`load`] returns, from the cache in `cache_dir` when it holds this
/// spec (same text, name, context, overrides and kiln) and every source
/// still resolves inside the context; else by [`load`]'s own checks, whose
/// result is then cached if it is a spec and not an error (`cache.rs`).
pub fn load_cached(
    path: &Path,
    overrides: &[(String, String)],
    cache_dir: &Path,
) -> Result<Spec, SpecError> {
    let (source, context) = read_source(path)?;
    let file = cache::file(cache_dir, &source, &context, overrides);
    if let Some(spec) = file
        .as_deref()
        .and_then(|f| cache::lookup(f, &source, &context))
    {
        return Ok(spec);
    }
    let spec = load_source(source, context, overrides)?;
    if let Some(file) = file {
        cache::store(&file, &spec);
    }
    Ok(spec)
}

/// The text of the kiln.kdl at `path`, named by `path`, and its context
/// (the canonical directory holding it).
fn read_source(path: &Path) -> Result<(Arc<NamedSource<String>>, PathBuf), SpecError> {
    let name = path.display().to_string();
    let fail = |kind| {
        let empty = Arc::new(NamedSource::new(&name, String::new()));
        SpecError::new(empty, vec![Problem::new(kind, vec![])])
    };
    let text = match read::read_spec(path) {
        Ok(text) => text,
        Err(read::Unreadable::Problem(kind)) => return Err(fail(kind)),
        Err(read::Unreadable::NotUtf8 { text, at, byte }) => {
            let source = Arc::new(NamedSource::new(&name, text));
            let labels = vec![error::label((at, 1).into(), format!("byte 0x{byte:02x}"))];
            let problem = Problem::new(ProblemKind::NotUtf8, labels);
            return Err(SpecError::new(source, vec![problem]));
        }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let context = fs_err::canonicalize(dir).map_err(|source| {
        fail(ProblemKind::Read {
            path: path.to_path_buf(),
            source,
        })
    })?;
    Ok((Arc::new(NamedSource::new(&name, text)), context))
}

/// Validates spec `text` as if read from a file named `name` in the
/// directory `context` (canonical): what [`load`] does once it has the text.
/// Never panics, hangs or exhausts memory, whatever `text` holds (the
/// `fuzz_spec` test and the cargo-fuzz target hold it to that).
pub fn load_str(
    name: &str,
    text: String,
    context: PathBuf,
    overrides: &[(String, String)],
) -> Result<Spec, SpecError> {
    load_source(Arc::new(NamedSource::new(name, text)), context, overrides)
}

/// [`load_str`] of the text `source` holds.
fn load_source(
    source: Arc<NamedSource<String>>,
    context: PathBuf,
    overrides: &[(String, String)],
) -> Result<Spec, SpecError> {
    let one = |problem| Err(SpecError::new(source.clone(), vec![problem]));
    if source.inner().len() as u64 > MAX_SPEC_BYTES {
        let kind = ProblemKind::TooBig {
            path: PathBuf::from(source.name()),
            max: MAX_SPEC_BYTES,
        };
        return one(Problem::new(kind, vec![]));
    }
    if let Some(problem) = scan::check(source.inner()) {
        return one(problem);
    }
    let doc = match parse_kdl(source.inner()) {
        Ok(doc) => doc,
        Err(error) => {
            let problems = syntax::problems(error, source.inner());
            return Err(SpecError::new(source, problems));
        }
    };
    let mut cx = Cx::new(context);
    let spec = validate(&mut cx, &doc, overrides, source.clone());
    match cx.problems.is_empty() {
        true => Ok(spec),
        false => Err(SpecError::new(source, cx.problems)),
    }
}

/// Parses on a thread with a stack far larger than `scan`'s limits need: the
/// parser recurses, and a stack overflow aborts the process.
fn parse_kdl(text: &str) -> Result<KdlDocument, kdl::KdlError> {
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("kdl-parse".into())
            .stack_size(scan::PARSE_STACK)
            .spawn_scoped(scope, || KdlDocument::parse(text));
        match parser {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had (a tight `ulimit -v`, say): the limits of
            // `scan` keep the recursion within the usual main-thread stack in
            // a release build.
            Err(_) => KdlDocument::parse(text),
        }
    })
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
        names: Default::default(),
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
    cx.check_cache_ids(&spec.stages);
    cx.check_cycles(&spec.stages, &spec.images);
    spec
}
