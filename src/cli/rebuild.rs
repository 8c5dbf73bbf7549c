//! `kiln build --rebuild [TARGET…]`: the build, then every stage of it
//! again with empty caches (`build::rebuild`), each difference told as a
//! diagnostic at the stage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

use super::args::BuildArgs;
use super::build::{executor, finish, json_report, options, refuse_caches};
use super::{CliError, Global, open_store, plan};
use crate::build::sandbox::SandboxMode;
use crate::build::{self, Checked, Rebuilt};
use crate::spec::Spec;

/// A stage whose second build made other bytes than its first.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("Stage `{stage}` is not reproducible: `{first}` differs ({how})")]
#[diagnostic(code(kiln::build::not_reproducible), help("{help}"))]
pub struct NotReproducible {
    stage: String,
    first: String,
    how: String,
    help: String,
    #[source_code]
    src: Arc<NamedSource<String>>,
    #[label("built again from the same inputs, with empty caches")]
    span: SourceSpan,
}

pub fn run(
    g: &Global,
    a: &BuildArgs,
    spec: &Spec,
    layers: crate::image::LayerSettings,
) -> Result<(), CliError> {
    let store = open_store(g)?;
    let mut plan = plan(g, spec, &store, &a.targets, layers)?;
    // Every stage is run again from its inputs' files: with `--cache`,
    // nothing may stay in the cache (a stage left there would go unchecked,
    // and one made from it would have no files to run with).
    plan.wanted = (0..plan.nodes.len()).collect();
    if g.sandbox == SandboxMode::Off {
        refuse_caches(spec, &plan)?;
    }
    let opts = options(g, a.fail_fast)?;
    let executor = executor(g)?;
    let mut report = build::run_with(spec, &plan, &store, &opts, executor.as_ref());
    if !report.succeeded() {
        // As `kiln build --json`: the report of a failed build too.
        let printed = match a.json {
            true => crate::outln!("{}", json_report(spec, &report)),
            false => Ok(()),
        };
        finish(g, &mut report)?;
        return printed;
    }
    finish(g, &mut report)?;
    let checked = build::rebuild(spec, &plan, &store, &opts, executor.as_ref(), &report);
    let printed = match a.json {
        true => {
            let mut json = json_report(spec, &report);
            json["rebuild"] = checked.iter().map(json_of).collect();
            crate::outln!("{json}")
        }
        false => Ok(()),
    };
    let mut bad = 0;
    for c in checked {
        let stage = spec.stage(c.name.as_str());
        let span = stage.map_or((0, 0).into(), |s| s.name.span);
        match c.outcome {
            Rebuilt::Same if !g.quiet => {
                crate::errln!("same output: {} ({})", c.name, c.stored.1);
            }
            Rebuilt::Same => {}
            Rebuilt::Failed(failure) => {
                bad += 1;
                crate::errln!("{:?}", miette::Report::new(*failure));
            }
            Rebuilt::Differs {
                path, first, how, ..
            } => {
                bad += 1;
                let diagnostic = NotReproducible {
                    stage: c.name.to_string(),
                    // Names and symlink targets the script chose.
                    first: super::out::printable(&first).into_owned(),
                    how: super::out::printable(&how).into_owned(),
                    help: compare_help(&c.stored.0, &path),
                    src: spec.source.clone(),
                    span,
                };
                crate::errln!("{:?}", miette::Report::new(diagnostic));
            }
        }
    }
    if bad > 0 {
        return Err(CliError::Failed(format!(
            "{bad} stage(s) did not rebuild to the bytes stored"
        )));
    }
    printed
}

fn json_of(c: &Checked) -> serde_json::Value {
    let (status, rebuilt, first) = match &c.outcome {
        Rebuilt::Same => ("same", None, None),
        Rebuilt::Differs {
            path, hash, first, ..
        } => (
            "differs",
            Some(serde_json::json!({"path": path, "output_hash": hash.to_string()})),
            Some(first.clone()),
        ),
        Rebuilt::Failed(_) => ("failed", None, None),
    };
    serde_json::json!({
        "name": c.name.as_str(),
        "status": status,
        "output": c.stored.0,
        "output_hash": c.stored.1.to_string(),
        "rebuilt": rebuilt,
        "first_difference": first,
    })
}

/// Where the two trees are, and the tool to compare them with.
fn compare_help(stored: &Path, rebuilt: &Path) -> String {
    let (a, b) = (stored.display(), rebuilt.display());
    match on_path("diffoscope") {
        Some(_) => format!(
            "The stored output is {a}, the rebuilt one {b}: `diffoscope {a} {b}` shows every difference"
        ),
        None => format!(
            "The stored output is {a}, the rebuilt one {b} (kept until `kiln store gc`): compare them with `diff -r {a} {b}`, or diffoscope where installed"
        ),
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
