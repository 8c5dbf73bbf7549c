//! Command-line arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Docker multi-stage builds, the Nix way",
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The spec to read.
    #[arg(short = 'f', long, global = true, default_value = "kiln.kdl")]
    pub file: PathBuf,
    /// Set an `arg` of the spec (repeatable).
    #[arg(long = "arg", global = true, value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, String)>,
    /// Stages to run at the same time (default: the number of CPUs).
    #[arg(short, long, global = true)]
    pub jobs: Option<usize>,
    /// The store directory.
    #[arg(long, global = true, env = "KILN_HOME")]
    pub store: Option<PathBuf>,
    /// Isolate stages in namespaces: `auto` where the kernel allows it (else
    /// without, with a warning), `on` or fail, `off`.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub sandbox: crate::build::sandbox::SandboxMode,
    /// Kill a stage that runs longer (`90s`, `15m`, `2h`) unless it sets its
    /// own `timeout`; none by default.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// Fail (exit 2) before building anything when an input no longer
    /// matches kiln.lock (a tool, a fetch's sha256, a base's digest), or
    /// there is no kiln.lock, as `cargo --locked` does.
    #[arg(long, global = true)]
    pub locked: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more: each stage's status, key and store path.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Speak plain HTTP to this registry (repeatable; a name without a port
    /// covers every port). Registries on this machine without a CA
    /// configured get HTTP anyway.
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        env = "KILN_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Trust this PEM CA for every registry (repeatable), besides the
    /// system's roots and `<certs.d>/HOST[:PORT]/*.crt`.
    #[arg(long, global = true, value_name = "FILE", env = "KILN_REGISTRY_CA")]
    pub registry_ca: Vec<PathBuf>,
    /// Docker's per-registry CA directory: `DIR/HOST[:PORT]/*.crt` is
    /// trusted for that registry.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "KILN_CERTS_D",
        default_value = crate::registry::DOCKER_CERTS_D
    )]
    pub registry_certs_d: PathBuf,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The remote build cache (see README, "Registries").
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Pull stages from this registry repository (`host[:port]/repository`)
    /// before building them.
    #[arg(
        long = "cache",
        global = true,
        env = "KILN_CACHE",
        value_name = "REPOSITORY"
    )]
    pub repository: Option<String>,
    /// Push what this build built to the cache (CI).
    #[arg(long = "cache-push", global = true, env = "KILN_CACHE_PUSH")]
    pub push: bool,
    /// Sign pushed entries with this secret key file (`kiln cache keygen`).
    #[arg(
        long = "cache-sign-key",
        global = true,
        env = "KILN_CACHE_SIGN_KEY",
        value_name = "FILE"
    )]
    pub sign_key: Option<PathBuf>,
    /// Use only entries signed by one of these public keys (`name:base64`;
    /// comma-separated in the variable).
    #[arg(
        long = "cache-trust",
        global = true,
        env = "KILN_CACHE_TRUST",
        value_delimiter = ',',
        value_name = "KEY"
    )]
    pub trust: Vec<String>,
}

impl Global {
    /// How registries are reached, from the registry options.
    pub fn registry_access(&self) -> crate::registry::Access {
        crate::registry::Access {
            insecure: self.insecure_registries.clone(),
            ca_files: self.registry_ca.clone(),
            certs_d: self.registry_certs_d.clone(),
        }
    }
}

fn parse_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, found `{s}`"))
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::spec::parse_duration(s).ok_or_else(|| {
        format!("expected a duration from 1s to 7d (`90s`, `15m`, `2h`), found `{s}`")
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build stages and images (all of them, or the named stages, images and bases, and what they need).
    Build(BuildArgs),
    /// Validate kiln.kdl without building anything.
    Check,
    /// Resolve every base given by tag to its digest and write kiln.lock
    /// beside kiln.kdl, with every base's digest, fetch's sha256 and host
    /// tool's hash.
    Lock(LockArgs),
    /// Print the graph of stages, fetches, bases and images.
    Graph(GraphArgs),
    /// Say why a stage or image is not cached: which inputs changed since its last build.
    Explain {
        /// The stage or image.
        stage: String,
        /// How its images were built (`kiln build --compression`).
        #[command(flatten)]
        layers: LayerArgs,
    },
    /// Build an image and write it as an archive (or an OCI layout directory).
    Export(ExportArgs),
    /// Build an image and load it into Docker (or podman).
    Load(LoadArgs),
    /// Build an image and push it to a registry: to the REFs given, else to
    /// the image's tags. Prints `REF@DIGEST` for each.
    Push(PushArgs),
    /// Show an image's layers, sizes, contents and config.
    Inspect(InspectArgs),
    /// Say why a path is in an image: which `copy` or `add` put it there, or
    /// which program needed it through which libraries.
    Why(WhyArgs),
    /// Inspect and maintain the store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Keys for the remote build cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Make a signing key pair: the secret key goes to FILE (mode 0600), the
    /// public key (`name:base64`, for `--cache-trust`) to stdout.
    Keygen {
        /// The key's name, e.g. `team-ci-1`.
        name: String,
        /// Where to write the secret key.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Stages or images to build; every stage and image when none are named.
    pub targets: Vec<String>,
    /// Stop starting stages after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Then build every stage again with empty caches and compare its
    /// output with the stored one (as `nix-build --check`): exit 1 on a
    /// difference, naming the stage and the first differing file.
    #[arg(long)]
    pub rebuild: bool,
    #[command(flatten)]
    pub layers: LayerArgs,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Re-resolve only these bases' tags (repeatable); the others keep
    /// what kiln.lock has. Every tag is resolved again when none is named.
    #[arg(long, value_name = "BASE")]
    pub update: Vec<String>,
}

/// How image layers are written (part of each image's key).
#[derive(Debug, Clone, Args)]
pub struct LayerArgs {
    /// Layer compression. zstd needs Docker 23+ (or podman) to load.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Graphviz DOT instead of text.
    #[arg(long)]
    pub dot: bool,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// List store entries, then `cache` directories with their sizes.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Print the store path of a stage's (or image's) current build.
    Path {
        stage: String,
        /// How its images were built (`kiln build --compression`).
        #[command(flatten)]
        layers: LayerArgs,
    },
    /// Re-hash every entry and report any that changed.
    Verify,
    /// Delete entries (and `cache` directories) no build has used for a while.
    Gc {
        /// Keep entries and caches used within this many days.
        #[arg(long, default_value_t = 30)]
        keep_days: u64,
        /// Delete every `cache` directory no build holds, however recent.
        #[arg(long)]
        caches: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The `image` of kiln.kdl.
    pub image: String,
    #[command(flatten)]
    pub layers: LayerArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressionArg {
    Zstd,
    Gzip,
    None,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Where to write: a file, `-` for stdout, or a directory with `--format oci`.
    #[arg(short, long)]
    pub output: PathBuf,
    /// `docker`: one tar that docker load, podman load and skopeo all read
    /// (an OCI layout with a docker-archive manifest.json); `oci`: an OCI
    /// layout directory.
    #[arg(long, value_enum, default_value = "docker")]
    pub format: ExportFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Docker,
    Oci,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// The engine to load into (`docker` honours DOCKER_HOST).
    #[arg(long, default_value = "docker", value_parser = ["docker", "podman"])]
    pub engine: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Where to push, `host[:port]/repository[:tag]`; the image's `tag`s if
    /// none is given.
    pub refs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WhyArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// An absolute path in the image, e.g. `/usr/lib/x86_64-linux-gnu/libc.so.6`.
    pub path: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}
