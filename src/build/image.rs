//! Producing an image or base node: import a base (verified against its
//! pinned digest), or assemble an image from its parent and the stages it
//! copies; either way the result is stored as an entry (`image::stored`).
//! Also the root filesystem a stage runs in, made from such an entry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::node::{Ctx, Done, Finished, NodeError};
use crate::closure::Root;
use crate::eval::Work;
use crate::hash::Digest;
use crate::image::stored::{self, Part};
use crate::image::{self, ExportError, StageOutput};
use crate::registry::Pulled;
use crate::spec::{Base, BaseSource, Platform};
use crate::store::Pending;

/// The config digest a base is pinned to, without pulling it: an
/// archive's pin is its config digest; a registry image's is read from its
/// manifest (network IO). `None` if that cannot be read: the base is then
/// pulled, which says why.
pub(super) fn pinned_config(base: &Base, access: &crate::registry::Access) -> Option<Digest> {
    match &base.source {
        BaseSource::Archive { digest, .. } => Some(digest.value),
        BaseSource::Registry { image, platform } => {
            let platform = (platform.as_ref()).map_or_else(Platform::host, |p| p.value.clone());
            crate::registry::config_of(&image.value, &platform, access).ok()
        }
        BaseSource::Tagged { .. } => None,
    }
}

/// A base's verified image, its blobs in the store: read from its archive
/// or pulled from its registry (which lists the layers it downloads on the
/// way: the listings `image::from_base_listed` would otherwise make).
fn import(ctx: &Ctx<'_, '_>, base: &Base) -> Result<Pulled, NodeError> {
    let blobs = ctx.store.blobs_dir();
    match &base.source {
        BaseSource::Archive { path, digest } => {
            let dir = ctx.spec.dir_of(&base.scope, base.name.span);
            let archive = path.value.on_disk(dir);
            let image = crate::base::import(&archive, &digest.value, &blobs).map_err(|cause| {
                NodeError::Image(ExportError::Base {
                    base: base.name.value.clone(),
                    src: ctx.spec.snippet(digest.span).0,
                    span: ctx.spec.snippet(digest.span).1,
                    cause: vec![cause],
                })
            })?;
            Ok(Pulled {
                image,
                listings: Vec::new(),
            })
        }
        BaseSource::Registry { image, platform } => {
            let platform = platform
                .as_ref()
                .map_or_else(Platform::host, |p| p.value.clone());
            Ok(crate::registry::pull(
                &image.value,
                &platform,
                &blobs,
                ctx.registry,
            )?)
        }
        BaseSource::Tagged { .. } => {
            unreachable!("kiln bug: planning refuses a base by tag that kiln.lock does not pin")
        }
    }
}

/// Imports or assembles node `i` into `pending`. `done`: what it waits on.
pub(super) fn produce(
    ctx: &Ctx<'_, '_>,
    i: usize,
    done: &Done,
    pending: &Pending,
) -> Result<(), NodeError> {
    let planned = &ctx.plan.nodes[i];
    let img = match planned.work {
        Work::Import(base) => {
            let Pulled { image, listings } = import(ctx, base)?;
            image::from_base_listed(ctx.spec, base, &image, listings)?
        }
        Work::Assemble(spec_image) => {
            let parent = match planned.root {
                Some(r) => Some(stored::read(done[&r].path.as_path(), Part::WithFiles)?),
                None => None,
            };
            let mut outputs = BTreeMap::new();
            let mut roots = BTreeMap::new();
            for &d in &planned.deps {
                let stage = &ctx.plan.nodes[d];
                let output = StageOutput {
                    path: done[&d].path.as_path().to_path_buf(),
                    hash: done[&d].hash,
                };
                outputs.insert(stage.name().clone(), output);
                roots.insert(stage.name().clone(), closure_root(ctx, d, done)?);
            }
            let cache = ctx.store.layer_cache_dir();
            image::assemble(
                ctx.spec,
                spec_image,
                parent.as_ref(),
                &outputs,
                &roots,
                &cache,
                &ctx.plan.layers,
            )?
        }
        Work::Run(_) | Work::Fetch(_) => unreachable!("kiln bug: a stage is not an image"),
    };
    stored::write(&img, pending.out_dir())?;
    Ok(())
}

/// The root filesystem stage `d` ran in, as it saw it: where the runtime
/// closure of its programs is found.
fn closure_root(ctx: &Ctx<'_, '_>, d: usize, done: &Done) -> Result<Root, NodeError> {
    let stage = &ctx.plan.nodes[d];
    Ok(match stage.root {
        None => Root::Host {
            shown: crate::build::sandbox::host_paths(&stage.tool_dirs())
                .map_err(ExportError::io("/"))?,
        },
        Some(r) => Root::Image(rootfs(ctx, &done[&r])?),
    })
}

/// The stored image `root` unpacked (once per config digest) into a
/// directory a stage can run in.
pub(super) fn rootfs(ctx: &Ctx<'_, '_>, root: &Finished) -> Result<PathBuf, NodeError> {
    let record = (root.image.as_ref())
        .expect("kiln bug: a root is an image or base node, whose outcome carries its record");
    let imported = stored::as_imported(record)?;
    Ok(crate::base::rootfs(&imported, &ctx.store.rootfs_dir())?)
}
