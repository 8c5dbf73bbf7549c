//! Assembly: an `image` of the spec → its layers (planned, checked, then
//! packed in parallel or taken from the layer cache), config and manifest.
//! `from IMAGE` assembles the parent first and builds on its layers.
//!
//! Layer order: the parent's layers as they are, then the runtime closure
//! layers ([`runtime`]), then one layer per `copy`/`add` in file order; then
//! `layers max=N` merges ([`merge`]) the image's own layers if needed.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::error::ExportError;
use super::model::{Assembled, Kind, LayerSettings, Origin, Planned, StageOutput};
use super::runtime::{self, Wanted};
use super::{check, config, merge, plan};
use crate::hash::Digest;
use crate::spec::{Content, Image, ImageRoot, Name, Spec};

/// Packs (or takes from the layer cache) every layer of `image`, and builds
/// config + manifest. `parent`: the image or base it is `from`, already
/// made. `outputs`: the store path of each stage the image copies from.
/// `roots`: the root filesystem each of those stages was built in, as it
/// saw it, where its programs' runtime closure is found.
pub fn assemble(
    spec: &Spec,
    image: &Image,
    parent: Option<&Assembled>,
    outputs: &BTreeMap<Name, StageOutput>,
    roots: &BTreeMap<Name, crate::closure::Root>,
    layer_cache: &Path,
    opts: &LayerSettings,
) -> Result<Assembled, ExportError> {
    // What it adds is relative to its file's (or instance's) directory.
    let dir = spec.dir_of(&image.scope, image.name.span);
    let own = image
        .contents
        .par_iter()
        .map(|content| plan::content(spec, dir, content, outputs))
        .collect::<Result<Vec<_>, _>>()?;
    let mut files = parent.as_ref().map(|p| p.files.clone()).unwrap_or_default();
    own.iter().for_each(|plan| files.add(&plan.entries));
    let closure = runtime::layers(spec, &wanted(image, &own, roots, outputs), &files)?;
    closure.iter().for_each(|plan| files.add(&plan.entries));
    let local = spec.local(image.name.span, &image.scope);
    let title = local.name(image.name.value.as_str());
    let config = config::merge(parent.as_ref().map(|p| &p.config), image, title);
    check::entrypoint(spec, image, &config, &files)?;

    let mut summary = parent.as_ref().map(|p| p.closure).unwrap_or_default();
    closure.iter().for_each(|plan| summary.add(&plan.entries));
    let mut plans = closure;
    plans.extend(own);
    let mut origins = parent
        .as_ref()
        .map(|p| p.origins.clone())
        .unwrap_or_default();
    plans.iter().for_each(|plan| record(&mut origins, plan));
    // `max` bounds the whole image, the parent's layers included: those never
    // merge, so a parent that alone fills `max` (or exceeds it, with no layer
    // of the image's own to hide behind) cannot be exported.
    let inherited = parent.as_ref().map_or(0, |p| p.layers.len());
    let max = image.max_layers as usize;
    if inherited > max || (inherited == max && !plans.is_empty()) {
        return Err(too_many_layers(spec, image, inherited, !plans.is_empty()));
    }
    let plans = merge::limit(plans, max - inherited);
    let packed = plans
        .par_iter()
        .map(|plan| plan::pack(plan, layer_cache, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let mut layers = parent.map(|p| p.layers.clone()).unwrap_or_default();
    layers.extend(packed);

    let arch = config::host_arch();
    let config_json = config::config_json(&config, &layers, opts.epoch, arch);
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
        origins,
        closure: summary,
        epoch: opts.epoch,
    })
}

fn too_many_layers(spec: &Spec, image: &Image, inherited: usize, own: bool) -> ExportError {
    let parent = match &image.from.value {
        ImageRoot::Base(name) => format!("base `{name}`"),
        ImageRoot::Image(name) => format!("parent image `{name}`"),
        ImageRoot::Scratch => unreachable!("kiln bug: a scratch image inherits no layers"),
    };
    ExportError::TooManyLayers {
        image: image.name.value.clone(),
        max: image.max_layers,
        parent,
        count: inherited,
        own: if own { " before its own" } else { "" },
        src: spec.snippet(image.from.span).0,
        span: spec.snippet(image.from.span).1,
    }
}

/// The `copy`s of `image` that want their runtime closure, with their roots.
fn wanted<'a>(
    image: &'a Image,
    own: &'a [Planned],
    roots: &BTreeMap<Name, crate::closure::Root>,
    outputs: &'a BTreeMap<Name, StageOutput>,
) -> Vec<Wanted<'a>> {
    let copies = image
        .contents
        .iter()
        .zip(own)
        .filter_map(|(content, plan)| {
            let Content::Copy { stage, attrs, .. } = content else {
                return None;
            };
            attrs.closure.then(|| Wanted {
                content,
                attrs,
                entries: &plan.entries,
                root: roots.get(&stage.value).cloned(),
                output: &outputs
                    .get(&stage.value)
                    .expect("kiln bug: a planned copy's stage is built")
                    .path,
            })
        });
    copies.collect()
}

/// Notes why each path of `plan` is in the image: a later layer's file wins,
/// a directory keeps the reason it was first made for.
fn record(origins: &mut BTreeMap<String, Origin>, plan: &Planned) {
    for e in &plan.entries {
        let Some(origin) = plan.origins.get(&e.path) else {
            continue;
        };
        if matches!(e.kind, Kind::Dir) && origins.contains_key(&e.path) {
            continue;
        }
        origins.insert(e.path.clone(), origin.clone());
    }
}

#[cfg(test)]
mod tests;
