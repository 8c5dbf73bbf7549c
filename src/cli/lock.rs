//! `kiln lock`: resolves every base given by tag through its registry
//! (`registry::resolve`), plans every stage to hash its host tools as a
//! build keys them, and writes kiln.lock beside kiln.kdl when that changes
//! it (with `--locked`, fails instead). Network IO for the tags; writes
//! only kiln.lock.

use super::args::LockArgs;
use super::{CliError, Global};
use crate::lock::{LockedBase, LockedSource, Lockfile};
use crate::spec::BaseSource;

pub fn lock(g: &Global, a: &LockArgs) -> Result<(), CliError> {
    let mut spec = super::load_unlocked(g)?;
    let path = crate::lock::path_beside(&g.file);
    let old = crate::lock::read(&path)?;
    let by_tag = |name: &str| {
        (spec.bases.iter())
            .any(|b| b.name.value.as_str() == name && matches!(b.source, BaseSource::Tagged { .. }))
    };
    if let Some(name) = a.update.iter().find(|n| !by_tag(n)) {
        return Err(CliError::Usage {
            message: format!("`--update {name}`: kiln.kdl has no base `{name}` given by tag"),
            help: "name a base whose `image` has a tag and no digest".into(),
        });
    }
    let access = g.registry_access();
    let mut tags = Lockfile::default();
    for base in &spec.bases {
        let BaseSource::Tagged { image, .. } = &base.source else {
            continue;
        };
        let name = &base.name.value;
        let source = LockedSource::Image(image.value.to_string());
        // `--update` names what to resolve again; the rest keep their entry
        // while it is for the same reference.
        let kept = (old.as_ref())
            .filter(|_| !a.update.is_empty() && !a.update.iter().any(|u| u == name.as_str()))
            .and_then(|old| old.bases.get(name))
            .filter(|entry| entry.source == source);
        let digest = match kept {
            Some(entry) => entry.digest,
            None => crate::registry::resolve(&image.value, &access)?,
        };
        if !g.quiet && kept.is_none() {
            crate::errln!("base {name}: {} resolves to {digest}", image.value);
        }
        tags.bases
            .insert(name.clone(), LockedBase { source, digest });
    }
    crate::lock::pin(&mut spec, &tags);
    let store = super::open_store(g)?;
    // How layers are written is part of an image's key but not of the lock.
    let layers = crate::image::LayerSettings {
        compression: crate::image::Compression::Gzip,
        epoch: 0,
    };
    // Planning every stage hashes every host tool, as a build would; not
    // `--locked`, which would compare against the lock being replaced.
    let unlocked = Global {
        locked: false,
        ..g.clone()
    };
    let plan = super::plan(&unlocked, &spec, &store, &[], layers)?;
    let lock = Lockfile::of(&spec, &plan);
    // `kiln lock --locked` checks, as `cargo generate-lockfile --locked`
    // does: the lock must already say this.
    if g.locked && old.as_ref() != Some(&lock) {
        return Err(CliError::Usage {
            message: format!(
                "`{}` is not up to date, and `--locked` forbids changing it",
                path.display()
            ),
            help: "run `kiln lock` without `--locked` to update it".into(),
        });
    }
    let wrote = crate::lock::write(&path, &lock)?;
    if !g.quiet {
        crate::errln!(
            "{}: {} ({} base(s), {} fetch(es), {} tool(s))",
            path.display(),
            if wrote { "written" } else { "up to date" },
            lock.bases.len(),
            lock.fetches.len(),
            lock.tools.len()
        );
    }
    Ok(())
}
