//! Loading a spec: kiln.kdl read (within limits), parsed by the `kdl`
//! crate and validated into a [`Spec`], or taken from the directory of
//! validated specs when it holds this one ([`load_cached`]). Reads the
//! spec file and what it imports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdl::KdlDocument;
use miette::NamedSource;

use super::cx::Cx;
use super::import::Given;
use super::loader::Loader;
use super::qualify::Parts;
use super::{
    MAX_SPEC_BYTES, Problem, ProblemKind, Spec, SpecError, SpecFile, cache, error, read, scan,
    source, syntax,
};

const TOP_NODES: &[&str] = &[
    "arg", "import", "template", "stage", "base", "fetch", "image",
];

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
    let doc = match syntax::parse_kdl(source.inner()) {
        Ok(doc) => doc,
        Err(error) => {
            let problems = syntax::problems(error, source.inner());
            return Err(SpecError::new(source, problems));
        }
    };
    let root = SpecFile::root(source.name(), &context, source.inner().len());
    let root_path = context.join(root.file_name());
    let mut loader = Loader::new(root, source.inner(), root_path);
    let mut cx = Cx::new(context.clone());
    let parts = validate(&mut cx, &doc, Given::Cli(overrides), &mut loader);
    let files = std::mem::take(&mut loader.files);
    let source = match files.len() {
        1 => source,
        _ => Arc::new(NamedSource::new(
            source.name(),
            std::mem::take(&mut loader.text),
        )),
    };
    if !cx.problems.is_empty() {
        let cut: Vec<_> = (files.iter())
            .map(|f| (f.name.clone(), f.base, f.len))
            .collect();
        let files = source::Files::split(source, &cut);
        return Err(SpecError::in_files(files, cx.problems));
    }
    let Parts {
        args,
        stages,
        bases,
        fetches,
        images,
        // What an importer of kiln.kdl would see; nothing does.
        templates: _,
    } = parts;
    Ok(Spec {
        source,
        context,
        files,
        instance_dirs: loader.instance_dirs,
        args,
        stages,
        bases,
        fetches,
        images,
        names: Default::default(),
    })
}

/// Checks one file's `doc` into its [`Parts`] (with those of the files
/// it imports and of its template instances); only meaningful if `cx` has
/// no problems after.
fn validate(cx: &mut Cx, doc: &KdlDocument, given: Given<'_>, loader: &mut Loader) -> Parts {
    let mut arg_spans = BTreeMap::new();
    for node in doc.nodes().iter().filter(|n| n.name().value() == "arg") {
        cx.declare_arg(node, &mut arg_spans);
    }
    if let Given::Import(values) = &given {
        cx.apply_import_args(values);
    }
    let overrides = match given {
        Given::Cli(overrides) => overrides,
        Given::Import(_) => &[],
    };
    let args = cx.apply_overrides(overrides, &arg_spans);
    let mut imported = Parts::default();
    for node in doc.nodes().iter().filter(|n| n.name().value() == "import") {
        if let Some((_, mut parts)) = cx.import(node, loader, validate) {
            for (name, at) in std::mem::take(&mut parts.templates) {
                cx.templates.insert(name, at);
            }
            imported.extend(parts);
        }
    }
    let mut own_templates = Vec::new();
    for node in doc
        .nodes()
        .iter()
        .filter(|n| n.name().value() == "template")
    {
        let id = loader.templates.len();
        if let Some(def) = cx.define_template(node, id) {
            loader.templates.push(def);
            own_templates.push(id);
        }
    }
    cx.declare_names(doc);
    for (name, kind) in imported.names() {
        cx.names
            .names
            .insert(name.value.to_string(), (kind, name.span));
    }
    for node in doc.nodes() {
        if is_instance(cx, node) {
            cx.declare_instance(node, loader);
        }
    }
    if !own_templates.is_empty() {
        let scope = std::sync::Arc::new(cx.scope());
        for id in own_templates {
            loader.templates[id].scope = Some(scope.clone());
        }
    }
    let mut parts = Parts {
        args,
        ..Parts::default()
    };
    for node in doc.nodes() {
        match node.name().value() {
            "arg" | "import" | "template" => {}
            "stage" => parts.stages.extend(cx.stage(node)),
            "base" => parts.bases.extend(cx.base(node)),
            "fetch" => parts.fetches.extend(cx.fetch(node)),
            "image" => parts.images.extend(cx.image(node)),
            _ if is_instance(cx, node) => {
                parts.extend(cx.instantiate(node, loader).unwrap_or_default());
            }
            _ => {
                let file = cx.file.clone().unwrap_or_else(|| "kiln.kdl".to_owned());
                cx.unknown_top(node, &file, TOP_NODES)
            }
        }
    }
    cx.check_cache_ids(&parts.stages);
    cx.check_cycles(&parts.stages, &parts.images);
    parts.templates = cx.templates.flatten();
    parts.extend(imported);
    parts
}

/// Whether `node` instantiates a template this file can name.
fn is_instance(cx: &Cx, node: &kdl::KdlNode) -> bool {
    !TOP_NODES.contains(&node.name().value()) && cx.templates.contains_key(node.name().value())
}
