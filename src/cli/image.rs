//! `kiln export`, `kiln load`, `kiln inspect`, `kiln why`: build what an
//! image needs, assemble it, and hand it out or describe it.

use std::collections::BTreeMap;
use std::io::Write;

use super::args::{ExportArgs, ExportFormat, ImageArgs, InspectArgs, LoadArgs, WhyArgs};
use super::{CliError, Global, load_spec, open_store, out};
use crate::build::BuildReport;
use crate::closure::Root;
use crate::export::{self, Engine};
use crate::image::{self, Assembled, Compression, ExportOptions, StageOutput};
use crate::spec::{Name, Spec};
use crate::store::Store;

pub fn export(g: &Global, a: &ExportArgs) -> Result<(), CliError> {
    let (_, img) = assemble(g, &a.image)?;
    let summary = format!("{} ({} layer(s))", img.digest(), img.layers().len());
    match (&a.format, a.output.to_str()) {
        (ExportFormat::Oci, _) => {
            export::write_oci_dir(&img, &a.output)?;
        }
        (ExportFormat::Docker, Some("-")) => {
            export::check_blobs(&img)?;
            let mut stdout = out::Stdout::default();
            let written = export::write_archive(&img, &mut stdout)
                .map_err(CliError::from)
                .and_then(|()| stdout.flush().map_err(out::stdout_error));
            // A failed write to stdout is that, not a failed export.
            if let Some(failure) = stdout.failure() {
                return Err(failure);
            }
            written?;
        }
        (ExportFormat::Docker, _) => write_file_atomically(&img, &a.output)?,
    }
    if !g.quiet {
        crate::errln!(
            "exported `{}` {summary} to {}",
            a.image.image,
            a.output.display()
        );
    }
    Ok(())
}

pub fn load(g: &Global, a: &LoadArgs) -> Result<(), CliError> {
    let (_, img) = assemble(g, &a.image)?;
    let engine = match a.engine.as_str() {
        "podman" => Engine::Podman,
        _ => Engine::Docker,
    };
    for tag in export::load(&img, engine)? {
        crate::outln!("{tag}")?;
    }
    Ok(())
}

pub fn inspect(g: &Global, a: &InspectArgs) -> Result<(), CliError> {
    let (_, img) = assemble(g, &a.image)?;
    let inspection = export::inspect(&img);
    if a.json {
        let json = serde_json::to_string_pretty(&inspection)
            .expect("kiln bug: inspection is always serializable");
        crate::outln!("{json}")?;
    } else {
        crate::out!("{inspection}")?;
    }
    Ok(())
}

/// `kiln why`: exit 1 when the path is not in the image.
pub fn why(g: &Global, a: &WhyArgs) -> Result<(), CliError> {
    if !a.path.starts_with('/') {
        return Err(CliError::Usage {
            message: format!("`{}` is not an absolute path", a.path),
            help: format!("paths in an image start with `/`: `/{}`", a.path),
        });
    }
    let (_, img) = assemble(g, &a.image)?;
    let answer = export::why(&img, &a.path);
    if a.json {
        let json = serde_json::to_string_pretty(&answer)
            .expect("kiln bug: a why answer is always serializable");
        crate::outln!("{json}")?;
    } else if answer.origin.is_some() {
        crate::out!("{answer}")?;
    }
    match answer.origin {
        Some(_) => Ok(()),
        None => Err(CliError::Failed(answer.to_string().trim_end().to_owned())),
    }
}

/// The root filesystem each built stage ran in, as it saw it: the host's
/// directories the sandbox shows, else its image unpacked in the store
/// (already there if the stage ran here, unpacked now if its output came
/// from the cache). Closures are resolved in it.
fn stage_roots(store: &Store, report: &BuildReport) -> Result<BTreeMap<Name, Root>, CliError> {
    let mut roots = BTreeMap::new();
    for stage in &report.stages {
        let root = match &stage.root {
            None => Root::Host {
                shown: crate::build::sandbox::host_paths(&stage.tool_dirs)
                    .map_err(image::ExportError::io("/"))?,
            },
            Some(image) => Root::Image(crate::base::rootfs(image, &store.rootfs_dir())?),
        };
        roots.insert(stage.name.clone(), root);
    }
    Ok(roots)
}

/// Builds the stages `image` copies from, then assembles it.
fn assemble(g: &Global, a: &ImageArgs) -> Result<(Spec, Assembled), CliError> {
    let spec = load_spec(g)?;
    let Some(image) = spec.image(&a.image) else {
        let names: Vec<&str> = spec.images.iter().map(|i| i.name.value.as_str()).collect();
        return Err(CliError::Usage {
            message: format!("No image named `{}`", a.image),
            help: match names.is_empty() {
                true => "kiln.kdl declares no `image`".to_owned(),
                false => format!("the spec has: {}", names.join(", ")),
            },
        });
    };
    let report = super::build::build_targets(g, &spec, std::slice::from_ref(&a.image), false)?;
    let outputs: BTreeMap<_, StageOutput> = (report.stages.iter())
        .filter_map(|s| {
            let (path, hash) = s.output.as_ref()?;
            Some((
                s.name.clone(),
                StageOutput {
                    path: path.as_path().to_path_buf(),
                    hash: *hash,
                },
            ))
        })
        .collect();
    let store = open_store(g)?;
    let roots = stage_roots(&store, &report)?;
    super::build::finish(
        &Global {
            quiet: true,
            ..g.clone()
        },
        report,
    )?;
    let opts = ExportOptions {
        compression: a.compression.into(),
        source_date_epoch: source_date_epoch()?,
        blobs_dir: store.blobs_dir(),
    };
    let cache = store.layer_cache_dir();
    let img = image::assemble_with_roots(&spec, image, &outputs, &roots, &cache, &opts)?;
    Ok((spec, img))
}

/// `SOURCE_DATE_EPOCH` from the environment (the reproducible-builds
/// convention), else 0: every timestamp in the image.
fn source_date_epoch() -> Result<u64, CliError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) => v.trim().parse().map_err(|_| CliError::Usage {
            message: format!("SOURCE_DATE_EPOCH is `{v}`, not a number of seconds"),
            help: "unset it, or set it to a Unix timestamp such as 0".into(),
        }),
    }
}

/// Writes the archive next to `path` and renames it into place, so a failed
/// export never leaves a truncated archive where a good one was.
fn write_file_atomically(img: &Assembled, path: &std::path::Path) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_error(path, e))?;
    let mut out = std::io::BufWriter::new(tmp);
    export::write_archive(img, &mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| io_error(path, e.into_error()))?;
    // A temp file is private (0600); the archive is an ordinary file.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::Permissions::from_mode(0o644);
    tmp.as_file()
        .set_permissions(mode)
        .map_err(|e| io_error(path, e))?;
    tmp.persist(path).map_err(|e| io_error(path, e.error))?;
    Ok(())
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> CliError {
    CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<super::args::CompressionArg> for Compression {
    fn from(c: super::args::CompressionArg) -> Self {
        match c {
            super::args::CompressionArg::Zstd => Compression::Zstd,
            super::args::CompressionArg::Gzip => Compression::Gzip,
            super::args::CompressionArg::None => Compression::None,
        }
    }
}
