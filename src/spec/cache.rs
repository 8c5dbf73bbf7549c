//! The spec cache: validated specs stored by a key over everything a load
//! depends on, in the manner of Nix's evaluation cache, so that a no-op
//! build does not parse kiln.kdl again (the parse is most of its time).
//!
//! A load is a pure function of the file's text and displayed name, its
//! context, the `--arg` overrides and kiln itself, plus one question to the
//! filesystem: does every source (`src`, `add`, `archive`) exist inside the
//! context? The first five make the key ([`SPEC`]); kiln itself is the
//! running build's identity (`build.rs`), since the stored form of the
//! model is whatever this build's serde makes of it. The filesystem
//! question is asked again on every hit (`paths::resolve`, the check a load
//! makes). Only specs are stored, never errors: on a miss, or any doubt (a
//! file that cannot be read or does not parse, a source that moved), the
//! caller loads in full, which reports what is wrong.
//!
//! Imported files are found by parsing, so they cannot be in the key: the
//! stored spec lists each with the blake3 of its text (`SpecFile::hash`),
//! and a hit reads every one again and compares (as Nix's evaluation cache
//! checks the files an evaluation read), after resolving each import's path
//! again: a symlink on it may now lead to another file. A changed imported
//! file is a miss, and the full load that follows replaces the entry.
//!
//! ```text
//! <cache_dir>/<key>.json    the stored spec (`stored.rs`); mtime: last use
//! ```
//!
//! Does IO: reads and writes files in the cache directory, stats the
//! running executable and resolves each source path.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

use crate::hash::{KeyWriter, SPEC, StableHash};

use super::paths::{Resolved, resolve};
use super::{BaseSource, Content, Image, Spec, SpecFile, SrcPath, Stage, read, stored};
use build::Build;

/// The cache file of the spec `source` in `context` with `overrides`, or
/// `None` when kiln cannot tell which build of itself is running.
pub(super) fn file(
    cache_dir: &Path,
    source: &NamedSource<String>,
    context: &Path,
    overrides: &[(String, String)],
) -> Option<PathBuf> {
    let inputs = Inputs {
        kiln: Build::running()?,
        name: source.name(),
        text: source.inner(),
        context,
        overrides,
    };
    Some(cache_dir.join(format!("{}.json", SPEC.key(&inputs))))
}

/// The spec stored in `file` for `source` in `context`, if it is there,
/// reads back, and all its sources still resolve inside the context.
pub(super) fn lookup(
    file: &Path,
    source: &Arc<NamedSource<String>>,
    context: &Path,
) -> Option<Spec> {
    let json = read_and_touch(file)?;
    let mut spec = stored::from_json(&json, source.clone(), context.to_owned()).ok()?;
    if spec.files.len() > 1 {
        spec.source = imported_text(&spec.files, source)?;
    }
    let inside = |(scope, at, src): (&str, SourceSpan, &SrcPath)| {
        resolve(spec.dir_of(scope, at), src) == Resolved::Inside
    };
    let all_inside = sources(&spec).all(inside);
    all_inside.then_some(spec)
}

/// kiln.kdl's text followed by each imported file's, as a load lays them
/// out; `None` if any file cannot be read or its text changed.
fn imported_text(
    files: &[SpecFile],
    root: &Arc<NamedSource<String>>,
) -> Option<Arc<NamedSource<String>>> {
    let mut text = root.inner().clone();
    if files.first()?.len != text.len() {
        return None;
    }
    for file in &files[1..] {
        // The import may name another file now, through a symlink.
        if std::fs::canonicalize(&file.written).ok()? != file.path {
            return None;
        }
        let own = read::read_spec(&file.path).ok()?;
        let same = blake3::hash(own.as_bytes()).to_hex().as_str() == file.hash;
        if !same || file.base != text.len() + 1 || file.len != own.len() {
            return None;
        }
        text.push('\n');
        text.push_str(&own);
    }
    Some(Arc::new(NamedSource::new(root.name(), text)))
}

/// Stores `spec` in `file`, atomically (a temp file renamed into place), so
/// a reader finds the whole file or none. A cache that cannot be written
/// costs only a parse next time: failures are ignored.
pub(super) fn store(file: &Path, spec: &Spec) {
    let write = || -> std::io::Result<()> {
        let json = stored::to_json(spec)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        temp.write_all(&json)?;
        temp.persist(file)?;
        Ok(())
    };
    let _ = write();
}

/// The bytes of `file`, marking it used now (its mtime is what `kiln store
/// gc` ages); `None` if it cannot be read.
fn read_and_touch(file: &Path) -> Option<Vec<u8>> {
    let mut opened = std::fs::File::open(file).ok()?;
    let mut json = Vec::new();
    opened.read_to_end(&mut json).ok()?;
    // Only gc reads the mark; a cache kiln may not write still serves.
    let _ = opened.set_modified(std::time::SystemTime::now());
    Some(json)
}

/// Every source path of `spec`, with the span of its node's name (which
/// says the file it is relative to): what a load checked with
/// `paths::resolve`. Destructured without `..`, so a field added to a node
/// is a compile error here until it is said to hold a source path or not.
fn sources(spec: &Spec) -> impl Iterator<Item = (&str, SourceSpan, &SrcPath)> {
    let stages = spec.stages.iter().flat_map(|stage| {
        let Stage {
            name,
            scope,
            from: _,
            srcs,
            uses: _,
            tools: _,
            env: _,
            runs: _,
            run_args: _,
            timeout: _,
            caches: _,
        } = stage;
        srcs.iter()
            .map(|src| (scope.as_str(), name.span, &src.value))
    });
    let bases = spec.bases.iter().filter_map(|base| match &base.source {
        BaseSource::Archive { path, digest: _ } => {
            Some((base.scope.as_str(), base.name.span, &path.value))
        }
        BaseSource::Registry { .. } | BaseSource::Tagged { .. } => None,
    });
    stages
        .chain(bases)
        .chain(spec.images.iter().flat_map(image_sources))
}

fn image_sources(image: &Image) -> impl Iterator<Item = (&str, SourceSpan, &SrcPath)> {
    let Image {
        name,
        scope,
        from: _,
        contents,
        entrypoint: _,
        cmd: _,
        env: _,
        workdir: _,
        user: _,
        expose: _,
        labels: _,
        volumes: _,
        stop_signal: _,
        tags: _,
        max_layers: _,
    } = image;
    contents.iter().filter_map(|content| match content {
        // A path inside a stage's output, not in the build context.
        Content::Copy { .. } => None,
        Content::Add { src, attrs: _ } => Some((scope.as_str(), name.span, &src.value)),
    })
}

/// What a cached spec is keyed by.
struct Inputs<'a> {
    kiln: Build,
    name: &'a str,
    text: &'a str,
    context: &'a Path,
    overrides: &'a [(String, String)],
}

impl StableHash for Inputs<'_> {
    fn write_key(&self, w: &mut KeyWriter) {
        let Inputs {
            kiln,
            name,
            text,
            context,
            overrides,
        } = self;
        w.field("kiln", kiln);
        w.field("name", *name);
        w.field("text", *text);
        w.field("context", *context);
        w.field("overrides", &Overrides(overrides));
    }
}

/// `--arg` overrides in the order given (a later one wins, so order counts).
struct Overrides<'a>(&'a [(String, String)]);

impl StableHash for Overrides<'_> {
    fn write_key(&self, w: &mut KeyWriter) {
        w.len(self.0.len());
        for (name, value) in self.0 {
            w.str(name);
            w.str(value);
        }
    }
}

mod build;
#[cfg(test)]
mod tests;
