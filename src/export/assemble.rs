//! Assembly: an `image` of the spec → its layers (planned, checked, then
//! packed in parallel or taken from the layer cache), config and manifest.
//! `from IMAGE` assembles the parent first and builds on its layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::MediaType;
use rayon::prelude::*;

use super::check::{self, FileSet};
use super::config::{self, ConfigSummary};
use super::error::ExportError;
use super::walk::{self, Entry, Kind};
use super::{cache, layer};
use crate::hash::Digest;
use crate::spec::{Content, Image, ImageRoot, Name, Spec};

/// How layer blobs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    /// The default: Docker before 23.0 (Debian 12 ships 20.10) cannot load
    /// zstd layers, and an archive that `docker load` refuses is no default.
    #[default]
    Gzip,
    None,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    pub(crate) fn media_type(self) -> MediaType {
        match self {
            Compression::Zstd => MediaType::ImageLayerZstd,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::None => MediaType::ImageLayer,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportOptions {
    pub compression: Compression,
    /// Every timestamp in the image (tar mtimes, `created`): SOURCE_DATE_EPOCH.
    pub source_date_epoch: u64,
}

/// One layer of an assembled image; its blob lives in the layer cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub compression: Compression,
    pub blob: PathBuf,
    /// The kiln node that made it, e.g. `kiln: copy server goapp to=/app/goapp`.
    pub created_by: String,
    /// Files and symlinks it holds (directories not counted).
    pub files: u64,
    /// Its first few top-level paths, absolute.
    pub top: Vec<String>,
    /// Taken from the layer cache by this export, without packing.
    pub cached: bool,
}

/// An image ready to be written or loaded.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub(crate) name: Name,
    pub(crate) tags: Vec<String>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) config: ConfigSummary,
    pub(crate) config_json: Vec<u8>,
    pub(crate) config_digest: Digest,
    pub(crate) manifest_json: Vec<u8>,
    pub(crate) manifest_digest: Digest,
    pub(crate) files: FileSet,
    pub(crate) epoch: u64,
}

impl Assembled {
    /// The manifest digest: the image's identity in a registry or OCI layout.
    pub fn digest(&self) -> Digest {
        self.manifest_digest
    }

    /// The config digest: the image ID `docker images --no-trunc` shows.
    pub fn config_digest(&self) -> Digest {
        self.config_digest
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The references the image is tagged with (`NAME:latest` without `tag`).
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// Packs (or takes from the layer cache) every layer of `image`, and builds
/// config + manifest. `outputs`: the store path of each stage the image
/// copies from (already built).
pub fn assemble(
    spec: &Spec,
    image: &Image,
    outputs: &BTreeMap<Name, PathBuf>,
    layer_cache: &Path,
    opts: &ExportOptions,
) -> Result<Assembled, ExportError> {
    let parent = match &image.from.value {
        ImageRoot::Scratch => None,
        ImageRoot::Base(base) => {
            return Err(ExportError::BaseUnsupported {
                image: image.name.value.clone(),
                base: base.clone(),
                src: spec.source.clone(),
                span: image.from.span,
            });
        }
        ImageRoot::Image(name) => {
            let parent = spec
                .image(name.as_str())
                .expect("kiln bug: `from` resolves");
            Some(assemble(spec, parent, outputs, layer_cache, opts)?)
        }
    };
    let plans = image
        .contents
        .par_iter()
        .map(|content| plan(spec, content, outputs))
        .collect::<Result<Vec<_>, _>>()?;

    let mut files = parent.as_ref().map(|p| p.files.clone()).unwrap_or_default();
    plans.iter().for_each(|plan| files.add(&plan.entries));
    let config = config::merge(parent.as_ref().map(|p| &p.config), image);
    check::entrypoint(spec, image, &config, &files)?;

    let packed = plans
        .par_iter()
        .map(|plan| pack(plan, layer_cache, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let mut layers = parent.map(|p| p.layers).unwrap_or_default();
    layers.extend(packed);

    let arch = config::host_arch();
    let config_json = config::config_json(&config, &layers, opts.source_date_epoch, arch);
    let config_digest = Digest::of(&config_json);
    let manifest_json = config::manifest_json(&config_digest, config_json.len() as u64, &layers);
    let mut tags: Vec<String> = image.tags.iter().map(|t| t.value.clone()).collect();
    if tags.is_empty() {
        tags.push(format!("{}:latest", image.name.value));
    }
    Ok(Assembled {
        name: image.name.value.clone(),
        tags,
        layers,
        config,
        config_digest,
        config_json,
        manifest_digest: Digest::of(&manifest_json),
        manifest_json,
        files,
        epoch: opts.source_date_epoch,
    })
}

/// One `copy`/`add`, planned.
struct Planned {
    entries: Vec<Entry>,
    /// The history line naming it.
    created_by: String,
    dest: String,
}

fn plan(
    spec: &Spec,
    content: &Content,
    outputs: &BTreeMap<Name, PathBuf>,
) -> Result<Planned, ExportError> {
    let (source, attrs, what) = match content {
        Content::Copy { stage, path, attrs } => {
            let root = outputs
                .get(&stage.value)
                .ok_or_else(|| ExportError::UnbuiltStage {
                    stage: stage.value.clone(),
                    src: spec.source.clone(),
                    span: stage.span,
                })?;
            let source = path.on_disk(root);
            if std::fs::symlink_metadata(&source).is_err() {
                return Err(ExportError::CopySourceMissing {
                    stage: stage.value.clone(),
                    path: path.value.to_string(),
                    src: spec.source.clone(),
                    span: path.span,
                });
            }
            (
                source,
                attrs,
                format!("copy {} {}", stage.value, path.value),
            )
        }
        Content::Add { src, attrs } => (
            src.on_disk(&spec.context),
            attrs,
            format!("add {}", src.value),
        ),
    };
    let mut created_by = format!("kiln: {what} to={}", attrs.to.value);
    if let Some(mode) = attrs.mode {
        created_by.push_str(&format!(" mode=0o{mode:o}"));
    }
    if attrs.owner != Default::default() {
        created_by.push_str(&format!(" owner={}:{}", attrs.owner.uid, attrs.owner.gid));
    }
    let entries = walk::plan(&source, attrs)?;
    Ok(Planned {
        entries,
        created_by,
        dest: attrs.to.value.clone(),
    })
}

/// The packed layer for `entries`, from the cache when it is there.
fn pack(plan: &Planned, layer_cache: &Path, opts: &ExportOptions) -> Result<Layer, ExportError> {
    let entries = &plan.entries;
    let (compression, epoch) = (opts.compression, opts.source_date_epoch);
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
        files: entries
            .iter()
            .filter(|e| !matches!(e.kind, Kind::Dir))
            .count() as u64,
        top: top_paths(entries, &plan.dest),
        cached,
    })
}

/// What the `copy`/`add` put at its destination: the destination itself,
/// then its children, at most five, as absolute paths.
fn top_paths(entries: &[Entry], dest: &str) -> Vec<String> {
    let dest = dest.trim_matches('/');
    let top = entries.iter().map(|e| e.path.as_str()).filter(|p| {
        let parent = p.rsplit_once('/').map_or("", |(parent, _)| parent);
        *p == dest || parent == dest
    });
    top.take(5).map(|p| format!("/{p}")).collect()
}

#[cfg(test)]
mod tests;
