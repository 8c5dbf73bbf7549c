//! The runtime closure as layers: for each `copy` (with `closure=#true`,
//! the default) every ELF file it copies is a program whose interpreter and
//! libraries [`crate::closure::resolve`] finds in the stage's root; its
//! `closure-extra` paths come from that root too, symlinks kept.
//!
//! Grouping, for sharing: one layer holds the interpreter and libc (and the
//! symlinks on the way to them) of every copy, which is the same for every
//! glibc program built in the same root, so unrelated images share it; then
//! one layer per copy holds the rest of its closure, so two images copying
//! the same program share that layer too. A path the image already has (from
//! its parent, a `copy`/`add`, or an earlier closure layer) is not added
//! again; a directory where the closure wants a file or symlink, or the
//! other way round, is a [`ExportError::ClosureConflict`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::SourceSpan;
use rayon::prelude::*;

use super::error::ExportError;
use super::extra::{self, Failure};
use super::model::{Entry, FileSet, Kind, Origin, Planned, Role, Via};
use super::{plan, walk};
use crate::closure::{self, Program, Root};
use crate::fsx::IoContext;
use crate::spec::{Content, ContentAttrs, Owner, Spec};

/// A `copy` whose closure the image wants.
pub(super) struct Wanted<'a> {
    pub content: &'a Content,
    pub attrs: &'a ContentAttrs,
    /// What the copy itself puts in the image.
    pub entries: &'a [Entry],
    /// The root the stage was built in, as it saw it; `None` when the
    /// caller cannot say, which only a program needing nothing survives.
    pub root: Option<Root>,
    /// The stage's output, which `$ORIGIN` lookups do not leave.
    pub output: &'a Path,
}

/// One file or symlink of a closure, before it is planned.
struct Item {
    path: String,
    source: PathBuf,
    origin: Origin,
    /// Part of the interpreter + libc set.
    libc: bool,
    /// The `copy` it comes from.
    span: SourceSpan,
}

/// The closure layers for `wanted`, in order, empty ones left out.
/// `image`: every path the image has without them.
pub(super) fn layers(
    spec: &Spec,
    wanted: &[Wanted],
    image: &FileSet,
) -> Result<Vec<Planned>, ExportError> {
    let items = wanted
        .par_iter()
        .map(|w| items(spec, w))
        .collect::<Result<Vec<_>, _>>()?;
    let mut taken = FileSet::default();
    let mut out = Vec::new();
    let libc = items.iter().flatten().filter(|i| i.libc);
    let plan = group(spec, libc, image, &mut taken)?;
    out.extend(plan.map(|p| named(p, "kiln: closure: interpreter and libc".into())));
    for (w, items) in wanted.iter().zip(&items) {
        let rest = items.iter().filter(|i| !i.libc);
        let plan = group(spec, rest, image, &mut taken)?;
        let what = plan::created_by(w.content);
        let what = what.trim_start_matches("kiln: ");
        out.extend(plan.map(|p| named(p, format!("kiln: closure of {what}"))));
    }
    Ok(out)
}

fn named(mut plan: Planned, created_by: String) -> Planned {
    plan.created_by = created_by;
    plan
}

/// What one copy's closure and extras bring, each with its origin.
fn items(spec: &Spec, w: &Wanted) -> Result<Vec<Item>, ExportError> {
    let Some(root) = &w.root else {
        return unknown_root(spec, w);
    };
    let programs = programs(w.entries, w.output);
    let closure = closure::resolve(root, &programs).map_err(|source| ExportError::Closure {
        root: root.clone(),
        source: Box::new(source),
        src: spec.snippet(w.attrs.span).0,
        span: spec.snippet(w.attrs.span).1,
    })?;
    let origin = Origin::of_node(spec, w.attrs.span, Via::Closure);
    let mut items: Vec<Item> = (closure.files.into_iter())
        .map(|(path, needed)| {
            let last = needed.chain.last().map_or("", String::as_str);
            Item {
                libc: last.starts_with("interpreter ") || last.starts_with("libc.so"),
                path,
                source: needed.source,
                origin: Origin {
                    chain: needed.chain,
                    ..origin.clone()
                },
                span: w.attrs.span,
            }
        })
        .collect();
    let extra_origin = Origin::of_node(spec, w.attrs.span, Via::ClosureExtra);
    for wanted in &w.attrs.closure_extra {
        let found = extra::lookup(root.dir(), wanted).map_err(|why| ExportError::ExtraMissing {
            path: wanted.clone(),
            root: root.dir().to_path_buf(),
            looped: why == Failure::Loop,
            src: spec.snippet(w.attrs.span).0,
            span: spec.snippet(w.attrs.span).1,
        })?;
        items.extend(found.steps.into_iter().map(|(path, source)| Item {
            path,
            source,
            origin: Origin {
                chain: vec![format!("closure-extra {wanted}")],
                ..extra_origin.clone()
            },
            libc: false,
            span: w.attrs.span,
        }));
    }
    Ok(items)
}

/// A copy from a stage whose root export was not given: fine while its
/// programs need nothing (static, or not ELF), which resolving them in an
/// empty root tells; an error otherwise, rather than a guess at the root.
fn unknown_root(spec: &Spec, w: &Wanted) -> Result<Vec<Item>, ExportError> {
    let empty = tempfile::tempdir().at(std::env::temp_dir())?;
    let programs = programs(w.entries, w.output);
    let needs = closure::resolve(&Root::Image(empty.path().to_path_buf()), &programs)
        .map_or(true, |c| !c.files.is_empty());
    if needs || !w.attrs.closure_extra.is_empty() {
        let Content::Copy { stage, .. } = w.content else {
            unreachable!("kiln bug: only a copy wants a closure");
        };
        return Err(ExportError::RootUnknown {
            stage: stage.value.clone(),
            src: spec.snippet(w.attrs.span).0,
            span: spec.snippet(w.attrs.span).1,
        });
    }
    Ok(Vec::new())
}

/// Every executable file of a copy is a program to resolve;
/// `closure::resolve` skips what is not ELF or not for this machine. A
/// non-executable ELF (a test fixture, a library) is not run by itself: a
/// library a program needs is resolved through that program.
fn programs(entries: &[Entry], output: &Path) -> Vec<Program> {
    (entries.iter())
        .filter_map(|e| match &e.kind {
            Kind::File { disk, .. } if e.mode & 0o111 != 0 => Some(Program {
                file: disk.clone(),
                image_path: format!("/{}", e.path),
                tree: output.to_path_buf(),
            }),
            _ => None,
        })
        .collect()
}

/// Plans `items` as one layer, without what the image or an earlier closure
/// layer (`taken`) already has. `None` when nothing is left.
fn group<'a>(
    spec: &Spec,
    items: impl Iterator<Item = &'a Item>,
    image: &FileSet,
    taken: &mut FileSet,
) -> Result<Option<Planned>, ExportError> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut origins = BTreeMap::new();
    for item in items {
        let attrs = ContentAttrs {
            to: crate::spec::Spanned {
                value: item.path.clone(),
                span: (0..0).into(),
            },
            mode: None,
            owner: Owner::default(),
            closure: false,
            closure_extra: Vec::new(),
            span: (0..0).into(),
        };
        for entry in walk::plan(&item.source, &attrs, walk::Source::Context)? {
            let is_dir = matches!(entry.kind, Kind::Dir);
            if let Some(there) = image.is_dir(&entry.path) {
                if there != is_dir {
                    return Err(conflict(spec, item.span, &entry, there));
                }
                if !is_dir {
                    continue;
                }
            }
            if !is_dir && taken.is_dir(&entry.path).is_some() {
                continue;
            }
            origins
                .entry(entry.path.clone())
                .or_insert_with(|| item.origin.clone());
            entries.entry(entry.path.clone()).or_insert(entry);
        }
    }
    let entries: Vec<Entry> = entries.into_values().collect();
    if entries.iter().all(|e| matches!(e.kind, Kind::Dir)) {
        return Ok(None);
    }
    taken.add(&entries);
    Ok(Some(Planned {
        entries,
        created_by: String::new(),
        dest: String::new(),
        role: Role::Closure,
        origins,
    }))
}

fn conflict(spec: &Spec, span: SourceSpan, entry: &Entry, image_has_dir: bool) -> ExportError {
    let wants = match &entry.kind {
        Kind::Dir => "a directory".to_owned(),
        Kind::File { .. } => "a file".to_owned(),
        Kind::Symlink { target } => format!("a symlink to `{target}`"),
    };
    let has = if image_has_dir {
        "a directory"
    } else {
        "a file or symlink"
    };
    ExportError::ClosureConflict {
        path: format!("/{}", entry.path),
        wants,
        has,
        src: spec.snippet(span).0,
        span: spec.snippet(span).1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::{attrs, copy, spec};

    /// A C program built by the host's gcc with `flags`, planned as a copy.
    fn planned(dir: &std::path::Path, flags: &[&str]) -> Vec<Entry> {
        let c = dir.join("p.c");
        std::fs::write(&c, "int main(void) { return 0; }\n").unwrap();
        let exe = dir.join("p");
        let ok = std::process::Command::new("gcc")
            .arg(&c)
            .arg("-o")
            .arg(&exe)
            .args(flags)
            .status()
            .unwrap();
        assert!(ok.success());
        walk::plan(&exe, &attrs("/app/p"), walk::Source::Context).unwrap()
    }

    #[test]
    fn without_a_root_only_programs_needing_nothing_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), Vec::new());
        let content = copy("app", "p", "/app/p");
        let Content::Copy { attrs, .. } = &content else {
            unreachable!()
        };
        let wanted = |entries| Wanted {
            content: &content,
            attrs,
            entries,
            root: None,
            output: dir.path(),
        };
        let dynamic = planned(dir.path(), &[]);
        let err = layers(&spec, &[wanted(&dynamic)], &FileSet::default()).unwrap_err();
        assert!(matches!(err, ExportError::RootUnknown { .. }), "{err:?}");
        let fixed = planned(dir.path(), &["-static"]);
        let plans = layers(&spec, &[wanted(&fixed)], &FileSet::default()).unwrap();
        assert!(plans.is_empty());
    }
}
