//! `kiln build`, `kiln check`, `kiln graph`.

use std::io::IsTerminal;

use super::args::{BuildArgs, GraphArgs};
use super::origin::{Defined, defined};
use super::{CliError, Global, load_spec, open_store, plan};
use crate::build::sandbox::SandboxMode;
use crate::build::{self, BuildOptions, BuildReport, Failure, NodeReport, Status};
use crate::image::LayerSettings;
use crate::spec::{Content, ImageRoot, Root, Spec};

pub fn build(g: &Global, a: &BuildArgs) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    let layers = super::layer_settings(&a.layers)?;
    if a.rebuild {
        return super::rebuild::run(g, a, &spec, layers);
    }
    let mut report = build_targets(g, &spec, &a.targets, a.fail_fast, layers)?;
    // A failed build is reported before a failed write of its report.
    let printed = match a.json {
        true => crate::outln!("{}", json_report(&spec, &report)),
        false => Ok(()),
    };
    finish(g, &mut report)?;
    printed
}

/// Plans and builds `targets`; shared by every command that needs outputs.
pub(super) fn build_targets(
    g: &Global,
    spec: &Spec,
    targets: &[String],
    fail_fast: bool,
    layers: LayerSettings,
) -> Result<BuildReport, CliError> {
    let store = open_store(g)?;
    let plan = plan(g, spec, &store, targets, layers)?;
    if g.sandbox == SandboxMode::Off {
        refuse_caches(spec, &plan)?;
    }
    let opts = options(g, fail_fast)?;
    let executor = executor(g)?;
    Ok(build::run_with(
        spec,
        &plan,
        &store,
        &opts,
        executor.as_ref(),
    ))
}

/// How a build runs, from the global flags.
pub(super) fn options(g: &Global, fail_fast: bool) -> Result<BuildOptions, CliError> {
    Ok(BuildOptions {
        jobs: g
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        fail_fast,
        live: std::io::stderr().is_terminal(),
        quiet: g.quiet,
        timeout: g.timeout,
        registry: g.registry_access(),
        cache: super::cache::remote(g)?,
    })
}

/// What runs the stages: `--sandbox`.
pub(super) fn executor(g: &Global) -> Result<Box<dyn build::Executor>, CliError> {
    Ok(match g.sandbox {
        // Asked for explicitly: check now and fail before building anything.
        SandboxMode::On => build::sandbox::executor(SandboxMode::On)?,
        SandboxMode::Auto => Box::new(build::sandbox::Lazy::auto()),
        SandboxMode::Off => Box::new(build::Local),
    })
}

/// `--sandbox off` mounts nothing: a planned stage with a `cache` is
/// refused before anything runs.
pub(super) fn refuse_caches(spec: &Spec, plan: &crate::eval::Plan<'_>) -> Result<(), CliError> {
    for planned in &plan.nodes {
        if let crate::eval::Work::Run(stage) = planned.work
            && let Some(cache) = stage.caches.first()
        {
            return Err(CliError::CacheWithoutSandbox {
                stage: stage.name.value.to_string(),
                src: spec.source.clone(),
                span: cache.path.span,
            });
        }
    }
    Ok(())
}

/// Prints failures, the images made and the summary line; a failed build
/// is exit 1, or 2 when kiln.kdl asks for an image that cannot be made.
pub(super) fn finish(g: &Global, report: &mut BuildReport) -> Result<(), CliError> {
    if g.verbose {
        for node in &report.nodes {
            let key = node.key.map_or_else(|| "-".to_owned(), |k| k.short());
            let output = node
                .output
                .as_ref()
                .map(|(p, _)| p.as_path().display().to_string());
            crate::errln!(
                "{:>8} {} {} {key} {}",
                format!("{:?}", node.status).to_lowercase(),
                node.kind,
                node.name,
                output.unwrap_or_default()
            );
        }
    }
    let mut refused = false;
    for node in &mut report.nodes {
        let Some(failure) = node.failure.take() else {
            continue;
        };
        refused |= failure.is_spec_error();
        if let Failure::Stage(stage) = &failure
            && !stage.log_tail.is_empty()
        {
            crate::errln!(
                "── last lines of the log of `{}` ──\n{}\n",
                node.name,
                stage.log_tail
            );
        }
        crate::errln!("{:?}", miette::Report::new(failure));
    }
    let summary = summary(report);
    if !report.succeeded() {
        return Err(match refused {
            true => CliError::Refused(summary),
            false => CliError::Failed(summary),
        });
    }
    if !g.quiet {
        for node in report.nodes.iter().filter(|n| n.kind == "image") {
            if let Some(img) = &node.image {
                crate::errln!(
                    "image {} {} ({} layer(s), {}) {}",
                    node.name,
                    img.digest(),
                    img.layers().len(),
                    crate::export::human_size(img.size()),
                    img.tags().join(" ")
                );
            }
        }
        crate::errln!("{summary}");
    }
    Ok(())
}

fn summary(report: &BuildReport) -> String {
    let (built, cached) = (report.count(Status::Built), report.count(Status::Cached));
    let (pulled, remote) = (report.count(Status::Pulled), report.count(Status::Remote));
    let (failed, skipped) = (report.count(Status::Failed), report.count(Status::Skipped));
    let secs = report.elapsed.as_secs_f64();
    // Nodes nothing here needed the files of, which stay in the cache (a
    // base: at its registry or in its archive).
    let remote_bases = (report.nodes.iter())
        .filter(|n| n.status == Status::Remote && n.kind == "base")
        .count();
    let mut left = String::new();
    if remote > remote_bases {
        left += &format!(", {} left in the cache", remote - remote_bases);
    }
    match remote_bases {
        0 => {}
        1 => left += ", 1 base not pulled",
        b => left += &format!(", {b} bases not pulled"),
    }
    if built == 0 && pulled == 0 && failed == 0 && skipped == 0 {
        let here = |n: &&NodeReport| n.status == Status::Cached;
        let images = (report.nodes.iter().filter(here))
            .filter(|n| n.kind == "image")
            .count();
        let others = cached - images;
        return format!(
            "nothing to build: {others} stage(s), {images} image(s) cached{left} ({secs:.2}s)"
        );
    }
    let mut s = format!("built {built}, cached {cached}");
    if pulled > 0 {
        s += &format!(", pulled {pulled}");
    }
    s += &left;
    if failed > 0 || skipped > 0 {
        s += &format!(", failed {failed}, skipped {skipped}");
    }
    format!("{s} ({secs:.2}s)")
}

pub(super) fn json_report(spec: &Spec, report: &BuildReport) -> serde_json::Value {
    let is_image = |n: &&NodeReport| n.kind == "image" || n.kind == "base";
    // The file that defines the node: kiln.kdl or a file it imports.
    let file = |n: &NodeReport| defined(spec, n.name.as_str()).map(|d| d.file.to_owned());
    let stages: Vec<_> = (report.nodes.iter().filter(|n| !is_image(n)))
        .map(|s| {
            serde_json::json!({
                "name": s.name.as_str(),
                "file": file(s),
                "key": s.key.map(|k| k.to_string()),
                "status": s.status,
                "output": s.output.as_ref().map(|(p, _)| p.as_path().display().to_string()),
                "output_hash": s.output.as_ref().map(|(_, h)| h.to_string()),
            })
        })
        .collect();
    let image = |n: &NodeReport| {
        let img = n.image.as_deref();
        serde_json::json!({
            "name": n.name.as_str(),
            "file": file(n),
            "key": n.key.map(|k| k.to_string()),
            "status": n.status,
            "digest": img.filter(|_| n.kind == "image").map(|i| i.digest().to_string()),
            "config_digest": img.map(|i| i.config_digest().to_string()),
            "tags": img.map(|i| i.tags().to_vec()).unwrap_or_default(),
            "layers": img.map(|i| i.layers().len()),
            "size": img.map(|i| i.size()),
            "output": n.output.as_ref().map(|(p, _)| p.as_path().display().to_string()),
        })
    };
    let of_kind = |kind: &str| -> Vec<_> {
        (report.nodes.iter().filter(|n| n.kind == kind))
            .map(image)
            .collect()
    };
    serde_json::json!({
        "stages": stages,
        "images": of_kind("image"),
        "bases": of_kind("base"),
        "built": report.count(Status::Built),
        "cached": report.count(Status::Cached),
        "pulled": report.count(Status::Pulled),
        "remote": report.count(Status::Remote),
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
    let nodes = (spec
        .fetches
        .iter()
        .map(|f| ("fetch", &f.name.value, "note")))
    .chain(
        spec.bases
            .iter()
            .map(|b| ("base", &b.name.value, "cylinder")),
    )
    .chain(spec.stages.iter().map(|s| ("stage", &s.name.value, "box")))
    .chain(
        spec.images
            .iter()
            .map(|i| ("image", &i.name.value, "box3d")),
    );
    if a.dot {
        crate::outln!("digraph kiln {{\n  rankdir=LR;")?;
        for (_, name, shape) in nodes {
            match defined(&spec, name.as_str()).filter(Defined::imported) {
                Some(at) => crate::outln!("  \"{name}\" [shape={shape}, tooltip=\"{at}\"];")?,
                None => crate::outln!("  \"{name}\" [shape={shape}];")?,
            }
        }
        for (from, to, label) in &edges {
            crate::outln!("  \"{to}\" -> \"{from}\" [label=\"{label}\"];")?;
        }
        crate::outln!("}}")?;
        return Ok(());
    }
    for (kind, name, _) in nodes {
        crate::outln!("{kind} {name}")?;
        if let Some(at) = defined(&spec, name.as_str()).filter(Defined::imported) {
            crate::outln!("  defined in {at}")?;
        }
        print_edges(&edges, name.as_str())?;
    }
    Ok(())
}

fn print_edges(edges: &[(String, String, &'static str)], node: &str) -> Result<(), CliError> {
    for (_, to, label) in edges.iter().filter(|(from, _, _)| from == node) {
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
