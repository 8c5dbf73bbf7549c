//! `kiln build`, `kiln check`, `kiln graph`, `kiln explain`.

use std::io::IsTerminal;

use super::args::{BuildArgs, GraphArgs};
use super::{CliError, Global, load_spec, open_store, plan};
use crate::build::sandbox::SandboxMode;
use crate::build::{self, BuildOptions, BuildReport, Status};
use crate::spec::{Content, ImageRoot, Root, Spec};

pub fn build(g: &Global, a: &BuildArgs) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    let report = build_targets(g, &spec, &a.targets, a.fail_fast)?;
    // A failed build is reported before a failed write of its report.
    let printed = match a.json {
        true => crate::outln!("{}", json_report(&report)),
        false => Ok(()),
    };
    finish(g, report)?;
    printed
}

/// Plans and builds `targets`; shared by every command that needs outputs.
pub(super) fn build_targets(
    g: &Global,
    spec: &Spec,
    targets: &[String],
    fail_fast: bool,
) -> Result<BuildReport, CliError> {
    let store = open_store(g)?;
    let plan = plan(spec, &store, targets)?;
    let opts = BuildOptions {
        jobs: g
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        fail_fast,
        live: std::io::stderr().is_terminal(),
        quiet: g.quiet,
        timeout: g.timeout,
    };
    let executor: Box<dyn build::Executor> = match g.sandbox {
        // Asked for explicitly: check now and fail before building anything.
        SandboxMode::On => build::sandbox::executor(SandboxMode::On)?,
        SandboxMode::Auto => Box::new(build::sandbox::Lazy::auto()),
        SandboxMode::Off => Box::new(build::Local),
    };
    Ok(build::run_with(
        spec,
        &plan,
        &store,
        &opts,
        executor.as_ref(),
    ))
}

/// Prints failures and the summary line; a failed build is exit 1.
pub(super) fn finish(g: &Global, mut report: BuildReport) -> Result<(), CliError> {
    if g.verbose {
        for stage in &report.stages {
            let key = stage.key.map_or_else(|| "-".to_owned(), |k| k.short());
            let output = stage
                .output
                .as_ref()
                .map(|(p, _)| p.as_path().display().to_string());
            crate::errln!(
                "{:>8} {} {key} {}",
                format!("{:?}", stage.status).to_lowercase(),
                stage.name,
                output.unwrap_or_default()
            );
        }
    }
    for stage in &mut report.stages {
        if let Some(failure) = stage.failure.take() {
            if !failure.log_tail.is_empty() {
                crate::errln!(
                    "── last lines of the log of `{}` ──\n{}\n",
                    stage.name,
                    failure.log_tail
                );
            }
            crate::errln!("{:?}", miette::Report::new(failure));
        }
    }
    let (built, cached) = (report.count(Status::Built), report.count(Status::Cached));
    let (failed, skipped) = (report.count(Status::Failed), report.count(Status::Skipped));
    let secs = report.elapsed.as_secs_f64();
    let summary = if built == 0 && failed == 0 && skipped == 0 {
        format!("nothing to build: {cached} stage(s) cached ({secs:.2}s)")
    } else {
        let mut s = format!("built {built}, cached {cached}");
        if failed > 0 || skipped > 0 {
            s += &format!(", failed {failed}, skipped {skipped}");
        }
        format!("{s} ({secs:.2}s)")
    };
    if !report.succeeded() {
        return Err(CliError::Failed(summary));
    }
    if !g.quiet {
        crate::errln!("{summary}");
    }
    Ok(())
}

fn json_report(report: &BuildReport) -> serde_json::Value {
    let stages: Vec<_> = (report.stages.iter())
        .map(|s| {
            serde_json::json!({
                "name": s.name.as_str(),
                "key": s.key.map(|k| k.to_string()),
                "status": s.status,
                "output": s.output.as_ref().map(|(p, _)| p.as_path().display().to_string()),
                "output_hash": s.output.as_ref().map(|(_, h)| h.to_string()),
            })
        })
        .collect();
    serde_json::json!({
        "stages": stages,
        "built": report.count(Status::Built),
        "cached": report.count(Status::Cached),
        "failed": report.count(Status::Failed),
        "skipped": report.count(Status::Skipped),
        "elapsed_ms": report.elapsed.as_millis() as u64,
    })
}

pub fn check(g: &Global) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    if !g.quiet {
        crate::errln!(
            "{}: ok ({} stage(s), {} image(s))",
            g.file.display(),
            spec.stages.len(),
            spec.images.len()
        );
    }
    Ok(())
}

pub fn graph(g: &Global, a: &GraphArgs) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    let edges = edges(&spec);
    if a.dot {
        crate::outln!("digraph kiln {{\n  rankdir=LR;")?;
        for s in &spec.stages {
            crate::outln!("  \"{}\" [shape=box];", s.name.value)?;
        }
        for i in &spec.images {
            crate::outln!("  \"{}\" [shape=box3d];", i.name.value)?;
        }
        for (from, to, label) in &edges {
            crate::outln!("  \"{to}\" -> \"{from}\" [label=\"{label}\"];")?;
        }
        crate::outln!("}}")?;
        return Ok(());
    }
    for s in &spec.stages {
        crate::outln!("stage {}", s.name.value)?;
        print_edges(&edges, s.name.value.as_str())?;
    }
    for i in &spec.images {
        crate::outln!("image {}", i.name.value)?;
        print_edges(&edges, i.name.value.as_str())?;
    }
    Ok(())
}

fn print_edges(edges: &[(String, String, &'static str)], node: &str) -> Result<(), CliError> {
    for (from, to, label) in edges.iter().filter(|(from, _, _)| from == node) {
        let _ = from;
        crate::outln!("  {label} {to}")?;
    }
    Ok(())
}

/// (node, node it depends on, how).
fn edges(spec: &Spec) -> Vec<(String, String, &'static str)> {
    let mut edges = Vec::new();
    for s in &spec.stages {
        let name = s.name.value.to_string();
        match &s.from.value {
            Root::Host => {}
            Root::Base(b) | Root::Image(b) => edges.push((name.clone(), b.to_string(), "from")),
        }
        for u in &s.uses {
            edges.push((name.clone(), u.value.to_string(), "uses"));
        }
    }
    for i in &spec.images {
        let name = i.name.value.to_string();
        if let ImageRoot::Base(b) | ImageRoot::Image(b) = &i.from.value {
            edges.push((name.clone(), b.to_string(), "from"));
        }
        for c in &i.contents {
            if let Content::Copy { stage, .. } = c {
                edges.push((name.clone(), stage.value.to_string(), "copies"));
            }
        }
    }
    edges.dedup();
    edges
}

pub fn explain(g: &Global, stage: &str) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    let store = open_store(g)?;
    let plan = plan(&spec, &store, &[stage.to_owned()])?;
    let Some(target) = spec.stage(stage) else {
        return Err(CliError::Usage {
            message: format!("`{stage}` is not a stage"),
            help: "explain takes a stage name".into(),
        });
    };
    let resolved = build::resolve(&spec, &plan, &store)?;
    let idx = plan
        .stages
        .iter()
        .position(|p| p.name() == &target.name.value)
        .expect("kiln bug: target not planned");
    let Some(now) = &resolved[idx] else {
        let missing: Vec<_> = (plan.stages[idx].deps.iter())
            .filter(|&&d| resolved[d].as_ref().is_none_or(|r| r.entry.is_none()))
            .map(|&d| plan.stages[d].name().to_string())
            .collect();
        crate::outln!(
            "`{stage}` cannot be keyed yet: it uses {} which is not built",
            missing.join(", ")
        )?;
        return Ok(());
    };
    if now.entry.is_some() {
        crate::outln!("`{stage}` is cached: key {}", now.key)?;
        return Ok(());
    }
    let previous = store.get_ref(&spec.context, &target.name.value)?;
    let Some(old) = previous.map(|k| store.lookup(&k)).transpose()?.flatten() else {
        crate::outln!("`{stage}` has never been built here (key {})", now.key)?;
        return Ok(());
    };
    crate::outln!(
        "`{stage}` is not cached: key {} was {}",
        now.key,
        old.meta.key
    )?;
    print_diff(&old.meta.inputs, &now.manifest)
}

fn print_diff(
    old: &std::collections::BTreeMap<String, String>,
    new: &std::collections::BTreeMap<String, String>,
) -> Result<(), CliError> {
    for (label, value) in new {
        match old.get(label) {
            Some(was) if was != value => crate::outln!("  changed {label}: {was} → {value}")?,
            None => crate::outln!("  added   {label}: {value}")?,
            _ => {}
        }
    }
    for (label, was) in old.iter().filter(|(l, _)| !new.contains_key(*l)) {
        crate::outln!("  removed {label}: {was}")?;
    }
    Ok(())
}
