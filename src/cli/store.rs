//! `kiln store ls|path|verify|gc`.

use super::args::StoreCommand;
use super::{CliError, Global, load_spec, open_store, plan};
use crate::store::{Store, Swept};

pub fn run(g: &Global, command: &StoreCommand) -> Result<(), CliError> {
    let store = open_store(g)?;
    match command {
        StoreCommand::Ls { json } => {
            let entries = store.list()?;
            let caches = store.caches()?;
            if *json {
                let list = entries.iter().map(|e| {
                    serde_json::json!({
                        "name": e.meta.name, "key": e.meta.key, "output_hash": e.meta.output_hash,
                        "path": e.path.as_path(), "duration_ms": e.meta.duration_ms,
                    })
                });
                let caches = caches.iter().map(|c| {
                    serde_json::json!({
                        "cache": c.record.id, "project": c.record.project,
                        "size": c.size, "path": c.dir,
                    })
                });
                crate::outln!("{}", serde_json::Value::Array(list.chain(caches).collect()))?;
            } else {
                for e in &entries {
                    crate::outln!(
                        "{}  {}  {}",
                        e.meta.name,
                        e.meta.key.short(),
                        e.path.as_path().display()
                    )?;
                }
                for c in &caches {
                    crate::outln!(
                        "cache {}  {}  {}",
                        c.record.id,
                        crate::export::human_size(c.size),
                        c.dir.display()
                    )?;
                }
            }
        }
        StoreCommand::Path { stage, layers } => {
            let spec = load_spec(g)?;
            let layers = super::layer_settings(layers)?;
            let plan = plan(g, &spec, &store, std::slice::from_ref(stage), layers)?;
            let resolved = crate::build::resolve(&plan, &store)?;
            let entry = (plan.nodes.iter().zip(&resolved))
                .find(|(p, _)| p.name().as_str() == stage)
                .and_then(|(_, r)| r.as_ref()?.entry.as_ref());
            match entry {
                Some(e) => crate::outln!("{}", e.path.as_path().display())?,
                None => {
                    return Err(CliError::Failed(format!(
                        "`{stage}` is not built with its current inputs: run `kiln build {stage}`"
                    )));
                }
            }
        }
        StoreCommand::Verify => {
            let bad = store.verify()?;
            for (entry, how) in &bad {
                crate::errln!(
                    "modified: {} ({how}; recorded output hash {})",
                    entry.path.as_path().display(),
                    entry.meta.output_hash
                );
            }
            let (blobs, roots) = (store.blobs_dir(), store.rootfs_dir());
            let mut damage = crate::base::verify(&blobs, &roots);
            damage.extend(crate::image::verify_layer_cache(&store.layer_cache_dir()));
            for d in &damage {
                crate::errln!("damaged: {} ({})", d.path.display(), d.problem);
            }
            let total = bad.len() + damage.len();
            if total > 0 {
                return Err(CliError::Failed(format!(
                    "{total} item(s) of the store modified or damaged since kiln wrote them"
                )));
            }
            if !g.quiet {
                let (blobs, roots) = crate::base::count(&blobs, &roots);
                let layers = crate::image::count_layer_cache(&store.layer_cache_dir());
                crate::errln!(
                    "verified {} entr(y/ies), {blobs} blob(s), {layers} cached layer(s), {roots} root filesystem(s)",
                    store.list()?.len()
                );
            }
        }
        StoreCommand::Gc { keep_days, caches } => {
            let mut swept = collect_garbage(g, &store, *keep_days)?;
            let keep = (!caches).then(|| crate::store::days(*keep_days));
            swept.absorb(store.gc_caches(keep));
            for e in &swept.entries {
                crate::outln!("{}", e.path.as_path().display())?;
            }
            for path in &swept.removed {
                crate::outln!("{}", path.display())?;
            }
            for (path, cause) in &swept.failed {
                crate::errln!(
                    "Cannot remove `{}`: {}",
                    path.display(),
                    chain(cause.as_ref())
                );
            }
            if !g.quiet {
                crate::errln!(
                    "removed {} entr(y/ies) and {} other item(s) unused for {keep_days} day(s)",
                    swept.entries.len(),
                    swept.removed.len()
                );
            }
            if !swept.failed.is_empty() {
                return Err(CliError::Failed(format!(
                    "{} item(s) could not be removed (the rest was collected)",
                    swept.failed.len()
                )));
            }
        }
    }
    Ok(())
}

/// Everything the store holds that nothing used for `keep_days`: entries
/// (each skipped while built or held), then the caches, if no other kiln
/// process has the store open (any of them may be using any blob, root
/// filesystem or layer; gc does not wait for them).
fn collect_garbage(g: &Global, store: &Store, keep_days: u64) -> Result<Swept, CliError> {
    let mut swept = store.gc(keep_days)?;
    match store.lock_caches()? {
        Some(_caches) => {
            let keep = crate::store::days(keep_days);
            swept.absorb(crate::base::collect(
                &store.blobs_dir(),
                &store.rootfs_dir(),
                keep,
            ));
            swept.absorb(crate::image::collect_layer_cache(
                &store.layer_cache_dir(),
                keep,
            ));
        }
        None if !g.quiet => crate::errln!(
            "blobs, root filesystems and cached layers kept: another kiln process uses this store"
        ),
        None => {}
    }
    Ok(swept)
}

/// An error and its causes, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
