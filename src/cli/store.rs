//! `kiln store ls|path|verify|gc`.

use super::args::StoreCommand;
use super::{CliError, Global, load_spec, open_store, plan};

pub fn run(g: &Global, command: &StoreCommand) -> Result<(), CliError> {
    let store = open_store(g)?;
    match command {
        StoreCommand::Ls { json } => {
            let entries = store.list()?;
            if *json {
                let list: Vec<_> = entries.iter().map(|e| serde_json::json!({
                    "name": e.meta.name, "key": e.meta.key, "output_hash": e.meta.output_hash,
                    "path": e.path.as_path(), "duration_ms": e.meta.duration_ms,
                })).collect();
                crate::outln!("{}", serde_json::Value::Array(list))?;
            } else {
                for e in &entries {
                    crate::outln!(
                        "{}  {}  {}",
                        e.meta.name,
                        e.meta.key.short(),
                        e.path.as_path().display()
                    )?;
                }
            }
        }
        StoreCommand::Path { stage } => {
            let spec = load_spec(g)?;
            let plan = plan(&spec, &store, std::slice::from_ref(stage))?;
            let resolved = crate::build::resolve(&spec, &plan, &store)?;
            let entry = (plan.stages.iter().zip(&resolved))
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
            for (entry, actual) in &bad {
                eprintln!(
                    "modified: {} (expected {}, found {actual})",
                    entry.path.as_path().display(),
                    entry.meta.output_hash
                );
            }
            if !bad.is_empty() {
                return Err(CliError::Failed(format!(
                    "{} store entr(y/ies) modified since they were built",
                    bad.len()
                )));
            }
            if !g.quiet {
                eprintln!("{} entries verified", store.list()?.len());
            }
        }
        StoreCommand::Gc { keep_days } => {
            let removed = store.gc(*keep_days)?;
            for e in &removed {
                crate::outln!("{}", e.path.as_path().display())?;
            }
            if !g.quiet {
                eprintln!(
                    "removed {} entr(y/ies) unused for {keep_days} day(s)",
                    removed.len()
                );
            }
        }
    }
    Ok(())
}
