//! One layer's worth of entries before packing ([`Planned`]): what a
//! `copy`/`add` puts in the image, or what a closure adds; and packing a
//! plan into a [`Layer`], from the layer cache when it is there.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ExportError;
use super::model::{Entry, Kind, Layer, LayerSettings, Origin, Planned, Role, StageOutput, Via};
use super::{cache, layer, walk};
use crate::spec::{Content, ContentAttrs, Name, Spec};

/// Plans one `copy`/`add`. `outputs`: each built stage's output directory.
pub(super) fn content(
    spec: &Spec,
    dir: &Path,
    content: &Content,
    outputs: &BTreeMap<Name, StageOutput>,
) -> Result<Planned, ExportError> {
    let keep;
    let (source, attrs, role, origin) = match content {
        Content::Copy { stage, path, attrs } => {
            let output = outputs
                .get(&stage.value)
                .ok_or_else(|| ExportError::UnbuiltStage {
                    stage: stage.value.clone(),
                    src: spec.snippet(stage.span).0,
                    span: spec.snippet(stage.span).1,
                })?;
            let source = path.on_disk(&output.path);
            if std::fs::symlink_metadata(&source).is_err() {
                return Err(ExportError::CopySourceMissing {
                    stage: stage.value.clone(),
                    path: path.value.to_string(),
                    src: spec.snippet(path.span).0,
                    span: spec.snippet(path.span).1,
                });
            }
            if !within(&output.path, &source) {
                return Err(ExportError::CopyOutside {
                    stage: stage.value.clone(),
                    path: path.value.to_string(),
                    src: spec.snippet(path.span).0,
                    span: spec.snippet(path.span).1,
                });
            }
            let stored = walk::Source::Stored {
                output: &output.hash,
                path: path.value.as_str(),
            };
            (source, attrs, Role::Copy, stored)
        }
        Content::Add { src, attrs } => {
            // The same ignore rules as a stage's `src`: `add "."` in a
            // checkout must not take `.git` or ignored build products.
            // Relative to the file that defines the image (`dir`).
            let context = dir;
            let paths = crate::tree::source_paths(context, std::slice::from_ref(&src.value))?;
            keep = paths.into_iter().collect();
            let origin = walk::Source::Added { keep: &keep };
            (src.on_disk(context), attrs, Role::Add, origin)
        }
    };
    let entries = walk::plan(&source, attrs, origin)?;
    let via = if role == Role::Copy {
        Via::Copy
    } else {
        Via::Add
    };
    let origin = Origin::of_node(spec, attrs.span, via);
    let origins = entries
        .iter()
        .map(|e| (e.path.clone(), origin.clone()))
        .collect();
    Ok(Planned {
        entries,
        created_by: created_by(content),
        dest: attrs.to.value.trim_matches('/').to_owned(),
        role,
        origins,
    })
}

/// Whether `source`'s directory is inside `output` once symlinks are
/// resolved: `source` itself may be a link (it is copied as one), but a
/// directory on the way through a link to `/etc` would copy the host's files.
fn within(output: &Path, source: &Path) -> bool {
    let Ok(root) = output.canonicalize() else {
        return false;
    };
    if source == output {
        return true;
    }
    let dir = source.parent().unwrap_or(source);
    dir.canonicalize().is_ok_and(|dir| dir.starts_with(&root))
}

/// `kiln: copy server goapp to=/app/goapp mode=0o755`: the history line.
pub(super) fn created_by(content: &Content) -> String {
    let (what, attrs): (String, &ContentAttrs) = match content {
        Content::Copy { stage, path, attrs } => {
            (format!("copy {} {}", stage.value, path.value), attrs)
        }
        Content::Add { src, attrs } => (format!("add {}", src.value), attrs),
    };
    let mut line = format!("kiln: {what} to={}", attrs.to.value);
    if let Some(mode) = attrs.mode {
        line.push_str(&format!(" mode=0o{mode:o}"));
    }
    if attrs.owner != Default::default() {
        line.push_str(&format!(" owner={}:{}", attrs.owner.uid, attrs.owner.gid));
    }
    line
}

/// The packed layer for `plan`, from the cache when it is there.
pub(super) fn pack(
    plan: &Planned,
    layer_cache: &Path,
    opts: &LayerSettings,
) -> Result<Layer, ExportError> {
    let entries = &plan.entries;
    let (compression, epoch) = (opts.compression, opts.epoch);
    let key = layer::key(entries, compression, epoch);
    let (packed, cached) = match cache::lookup(layer_cache, &key) {
        Some(packed) => (packed, true),
        None => {
            let packed = cache::insert(layer_cache, &key, |out| {
                layer::pack(entries, compression, epoch, out)
            })?;
            (packed, false)
        }
    };
    Ok(Layer {
        digest: packed.digest,
        size: packed.size,
        diff_id: packed.diff_id,
        uncompressed_size: packed.uncompressed_size,
        compression,
        blob: cache::blob_path(layer_cache, &key),
        created_by: plan.created_by.clone(),
        role: plan.role,
        files: entries
            .iter()
            .filter(|e| !matches!(e.kind, Kind::Dir))
            .count() as u64,
        top: top_paths(entries, &plan.dest),
        cached,
    })
}

/// What the layer put at its destination: the destination itself, then its
/// children, at most five, as absolute paths.
fn top_paths(entries: &[Entry], dest: &str) -> Vec<String> {
    let top = entries.iter().map(|e| e.path.as_str()).filter(|p| {
        let parent = p.rsplit_once('/').map_or("", |(parent, _)| parent);
        *p == dest || parent == dest
    });
    top.take(5).map(|p| format!("/{p}")).collect()
}
