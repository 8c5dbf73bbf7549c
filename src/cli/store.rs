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
                println!("{}", serde_json::Value::Array(list));
            } else {
                for e in &entries {
                    println!(
                        "{}  {}  {}",
                        e.meta.name,
                        e.meta.key.short(),
                        e.path.as_path().display()
                    );
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
                Some(e) => println!("{}", e.path.as_path().display()),
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
            let swept = store.gc(*keep_days)?;
            for e in &swept.entries {
                println!("{}", e.path.as_path().display());
            }
            for path in &swept.removed {
                println!("{}", path.display());
            }
            for (path, cause) in &swept.failed {
                eprintln!("Cannot remove `{}`: {}", path.display(), chain(cause.as_ref()));
            }
            if !g.quiet {
                eprintln!(
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
