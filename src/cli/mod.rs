//! The command line: parses arguments and wires the pipeline steps together.
//! No logic of its own beyond choosing what to print; stdout carries data
//! only (paths, JSON, graphs), written through `out` (never `println!`, which
//! panics on a closed pipe); progress and diagnostics go to stderr.

mod args;
mod build;
mod cache;
mod explain;
mod image;
mod lock;
mod origin;
pub mod out;
mod rebuild;
mod store;

use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command, Global};

use crate::eval::EvalError;
use crate::spec::{Spec, SpecError};
use crate::store::{Store, StoreError};

/// Everything that ends a kiln command early. The variant picks the exit code.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CliError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    #[diagnostic(code(kiln::store))]
    Store(#[from] StoreError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Export(#[from] crate::image::ExportError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] crate::build::sandbox::SandboxError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Base(#[from] crate::base::BaseError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("Failed to write `{}`", path.display())]
    #[diagnostic(code(kiln::io))]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot write to stdout")]
    #[diagnostic(code(kiln::stdout))]
    Stdout {
        #[source]
        source: std::io::Error,
    },
    /// Whoever read stdout stopped (`kiln graph | head -1`): kiln ends
    /// quietly, with success, as ripgrep does.
    #[error("stdout was closed")]
    StdoutClosed,
    #[error("{message}")]
    #[diagnostic(code(kiln::usage), help("{help}"))]
    Usage { message: String, help: String },
    /// A build or check failed; its diagnostics were already printed.
    #[error("{0}")]
    Failed(String),
    /// `--sandbox off` for a stage with a `cache`: nothing would mount it.
    #[error("Stage `{stage}` has a `cache`, which needs the sandbox")]
    #[diagnostic(
        code(kiln::build::cache_without_sandbox),
        help(
            "Build with `--sandbox on` (or `auto` where the kernel has user namespaces), or remove \
             the `cache` line: without the sandbox's mounts its path would be the host's own"
        )
    )]
    CacheWithoutSandbox {
        stage: String,
        #[source_code]
        src: std::sync::Arc<miette::NamedSource<String>>,
        #[label("needs the sandbox")]
        span: miette::SourceSpan,
    },
    /// A build failed because kiln.kdl asks for an image that cannot be
    /// made (exit 2); its diagnostics were already printed.
    #[error("{0}")]
    Refused(String),
}

impl From<crate::fsx::PathError> for CliError {
    fn from(e: crate::fsx::PathError) -> Self {
        CliError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Spec(_) | CliError::Eval(_) | CliError::Usage { .. } => 2,
            CliError::Refused(_) | CliError::CacheWithoutSandbox { .. } => 2,
            CliError::Export(e) if e.is_spec_error() => 2,
            CliError::Registry(crate::registry::RegistryError::BadTarget { .. }) => 2,
            CliError::Lock(e) if e.is_user_error() => 2,
            CliError::Store(_)
            | CliError::Failed(_)
            | CliError::Export(_)
            | CliError::Sandbox(_)
            | CliError::Base(_)
            | CliError::Registry(_)
            | CliError::Lock(_)
            | CliError::Io { .. }
            | CliError::Stdout { .. } => 1,
            CliError::StdoutClosed => 0,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(CliError::Failed(summary)) => {
            crate::errln!("{summary}");
            ExitCode::from(1)
        }
        Err(CliError::Refused(summary)) => {
            crate::errln!("{summary}");
            ExitCode::from(2)
        }
        Err(e) => {
            let code = e.exit_code();
            crate::errln!("{:?}", miette::Report::new(e));
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    match &cli.command {
        Command::Build(a) => build::build(g, a),
        Command::Check => build::check(g),
        Command::Lock(a) => lock::lock(g, a),
        Command::Graph(a) => build::graph(g, a),
        Command::Explain { stage, layers } => explain::explain(g, stage, layers),
        Command::Export(a) => image::export(g, a),
        Command::Load(a) => image::load(g, a),
        Command::Push(a) => image::push(g, a),
        Command::Inspect(a) => image::inspect(g, a),
        Command::Why(a) => image::why(g, a),
        Command::Store { command } => store::run(g, command),
        Command::Cache { command } => cache::run(command),
    }
}

/// Loads kiln.kdl with the `--arg` overrides, through the store's spec
/// cache (what a full load would return, without the parse when cached),
/// and pins its bases by tag with kiln.lock's digests.
fn load_spec(g: &Global) -> Result<Spec, CliError> {
    let mut spec = load_unlocked(g)?;
    let path = crate::lock::path_beside(&g.file);
    match crate::lock::read(&path)? {
        Some(lock) => crate::lock::pin(&mut spec, &lock),
        None if g.locked => return Err(crate::lock::LockError::Missing { path }.into()),
        None => {}
    }
    Ok(spec)
}

/// kiln.kdl as written: bases by tag not pinned (what `kiln lock` resolves).
fn load_unlocked(g: &Global) -> Result<Spec, CliError> {
    let root = g.store.clone().unwrap_or_else(Store::default_root);
    let cache = Store::spec_cache_dir(&root);
    Ok(crate::spec::load_cached(&g.file, &g.args, &cache)?)
}

/// Plans `targets` against `store`'s stat cache, images with `layers`;
/// with `--locked`, fails when a planned input no longer matches kiln.lock.
fn plan<'s>(
    g: &Global,
    spec: &'s Spec,
    store: &Store,
    targets: &[String],
    layers: crate::image::LayerSettings,
) -> Result<crate::eval::Plan<'s>, CliError> {
    let stat_cache = crate::tree::StatCache::load(store.stat_cache_path());
    let env = crate::eval::PlanEnv {
        stat_cache: &stat_cache,
        layers,
    };
    let plan = crate::eval::plan(spec, targets, &env)?;
    // A cache that failed to save only costs re-reading files next time.
    let _ = stat_cache.save();
    if g.locked {
        // `load_spec` refused a missing lock already; read again rather than
        // thread the lock through every command that plans.
        let path = crate::lock::path_beside(&g.file);
        let lock = crate::lock::read(&path)?.ok_or(crate::lock::LockError::Missing { path })?;
        crate::lock::verify(spec, &plan, &lock)?;
    }
    Ok(plan)
}

/// How images are written: `--compression`, and `SOURCE_DATE_EPOCH` from
/// the environment (the reproducible-builds convention), else 0.
fn layer_settings(a: &args::LayerArgs) -> Result<crate::image::LayerSettings, CliError> {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => 0,
        Ok(v) => v.trim().parse().map_err(|_| CliError::Usage {
            message: format!("SOURCE_DATE_EPOCH is `{v}`, not a number of seconds"),
            help: "unset it, or set it to a Unix timestamp such as 0".into(),
        })?,
    };
    let compression = match a.compression {
        args::CompressionArg::Zstd => crate::image::Compression::Zstd,
        args::CompressionArg::Gzip => crate::image::Compression::Gzip,
        args::CompressionArg::None => crate::image::Compression::None,
    };
    Ok(crate::image::LayerSettings { compression, epoch })
}

fn open_store(g: &Global) -> Result<Store, CliError> {
    let root = g.store.clone().unwrap_or_else(Store::default_root);
    Ok(Store::open(&root)?)
}
