//! `kiln export`, `kiln load`, `kiln inspect`, `kiln why`: build what an
//! image needs, assemble it, and hand it out or describe it.

use std::io::Write;
use std::sync::Arc;

use super::args::{ExportArgs, ExportFormat, ImageArgs, InspectArgs, LoadArgs, PushArgs, WhyArgs};
use super::{CliError, Global, load_spec, out};
use crate::build::BuildReport;
use crate::export::{self, Engine};
use crate::fsx::{AtomicFile, IoContext};
use crate::image::stored::Part;
use crate::image::{self, Assembled};
use crate::registry::{PushTarget, Sources};

pub fn export(g: &Global, a: &ExportArgs) -> Result<(), CliError> {
    let (img, _held) = assemble(g, &a.image, Part::Record)?;
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
        (ExportFormat::Docker, _) if is_stream(&a.output) => write_into(&img, &a.output)?,
        (ExportFormat::Docker, _) => write_file_atomically(&img, &through_symlinks(&a.output))?,
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
    let (img, _held) = assemble(g, &a.image, Part::Record)?;
    let engine = match a.engine.as_str() {
        "podman" => Engine::Podman,
        _ => Engine::Docker,
    };
    for tag in export::load(&img, engine)? {
        crate::outln!("{tag}")?;
    }
    Ok(())
}

/// `kiln push`: every target is parsed before anything is built or sent.
pub fn push(g: &Global, a: &PushArgs) -> Result<(), CliError> {
    let spec = load_spec(g)?;
    let named: Vec<String> = match a.refs.is_empty() {
        false => a.refs.clone(),
        true => spec
            .image(&a.image.image)
            .map(|i| i.tags.iter().map(|t| t.value.clone()).collect())
            .unwrap_or_default(),
    };
    if named.is_empty() && spec.image(&a.image.image).is_some() {
        return Err(CliError::Usage {
            message: format!("Image `{}` has no tag to push to", a.image.image),
            help: "name a target: `kiln push IMAGE host:port/repository:tag`".to_owned(),
        });
    }
    let targets = named
        .iter()
        .map(|r| r.parse::<PushTarget>())
        .collect::<Result<Vec<_>, _>>()?;
    let (img, _held) = assemble(g, &a.image, Part::Record)?;
    let sources = Sources::at(&super::open_store(g)?.blobs_dir());
    for target in &targets {
        let digest = crate::registry::push(&img, target, &g.registry_access(), &sources)?;
        crate::outln!("{target}@{digest}")?;
    }
    Ok(())
}

pub fn inspect(g: &Global, a: &InspectArgs) -> Result<(), CliError> {
    let (img, _held) = assemble(g, &a.image, Part::Record)?;
    let inspection = export::inspect(&img);
    if a.json {
        let json = serde_json::to_string_pretty(&inspection)
            .expect("kiln bug: inspection is always serializable");
        crate::outln!("{json}")?;
    } else {
        crate::out!("{}", out::printable(&inspection.to_string()))?;
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
    let (img, _held) = assemble(g, &a.image, Part::WithFiles)?;
    let answer = export::why(&img, &a.path);
    if a.json {
        let json = serde_json::to_string_pretty(&answer)
            .expect("kiln bug: a why answer is always serializable");
        crate::outln!("{json}")?;
    } else if answer.origin.is_some() {
        crate::out!("{}", out::printable(&answer.to_string()))?;
    }
    match answer.origin {
        Some(_) => Ok(()),
        None => Err(CliError::Failed(
            out::printable(answer.to_string().trim_end()).into_owned(),
        )),
    }
}

/// Builds `image` and what it needs (a no-op when it is stored), and
/// returns the record the build read of it (with its file list, read now,
/// only for `why`): nothing is packed or resolved here. With it comes the
/// build's report, to keep while the image is used: its holds keep the
/// entry from gc, and the caches its blobs are hard links of.
fn assemble(
    g: &Global,
    a: &ImageArgs,
    part: Part,
) -> Result<(Arc<Assembled>, BuildReport), CliError> {
    let spec = load_spec(g)?;
    if spec.image(&a.image).is_none() {
        let names: Vec<&str> = spec.images.iter().map(|i| i.name.value.as_str()).collect();
        return Err(CliError::Usage {
            message: format!("No image named `{}`", a.image),
            help: match names.is_empty() {
                true => "kiln.kdl declares no `image`".to_owned(),
                false => format!("the spec has: {}", names.join(", ")),
            },
        });
    }
    let layers = super::layer_settings(&a.layers)?;
    let targets = std::slice::from_ref(&a.image);
    let mut report = super::build::build_targets(g, &spec, targets, false, layers)?;
    let quiet = Global {
        quiet: true,
        ..g.clone()
    };
    super::build::finish(&quiet, &mut report)?;
    let node = report.node(&a.image);
    let built = node.and_then(|n| Some((n.output.as_ref()?, n.image.clone()?)));
    let ((path, _), record) = built.expect("kiln bug: a built image has an entry and a record");
    let img = match part {
        Part::Record => record,
        // The report's holds keep the entry from gc while it is read.
        Part::WithFiles => Arc::new(image::stored::read(path.as_path(), part)?),
    };
    Ok((img, report))
}

/// Whether `path` (through symlinks) is something other than a file or a
/// directory: a named pipe, a device (`/dev/null`), a socket. Written
/// aside and renamed over, it would be replaced by a file (as root,
/// `-o /dev/full` would delete the device); it is written to instead.
fn is_stream(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The file a symlink `path` leads to, to be replaced instead of the
/// link: `-o /dev/stdout > app.tar` is `app.tar` (by `/proc/self/fd/1`),
/// not a new file in `/dev` renamed over `/dev/stdout` with `app.tar` left
/// empty. Any other path (or a link that leads nowhere) as it is.
fn through_symlinks(path: &std::path::Path) -> std::path::PathBuf {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match is_link {
        true => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        false => path.to_owned(),
    }
}

/// Writes the archive into `path` as it is: what reads it takes the bytes
/// as they come and cannot give them back, so, as for stdout, every blob
/// is checked before the first one goes.
fn write_into(img: &Assembled, path: &std::path::Path) -> Result<(), CliError> {
    export::check_blobs(img)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .at(path)?;
    export::write_archive(img, &file).map_err(|e| e.written_to(path))?;
    Ok(())
}

/// Writes the archive next to `path` and renames it into place, so a failed
/// export never leaves a truncated archive where a good one was.
fn write_file_atomically(img: &Assembled, path: &std::path::Path) -> Result<(), CliError> {
    let tmp = AtomicFile::create(path)?;
    export::write_archive(img, tmp.file()).map_err(|e| e.written_to(path))?;
    // A temp file is private (0600); the archive is an ordinary file.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::Permissions::from_mode(0o644);
    tmp.file().set_permissions(mode).at(path)?;
    // Unsynced: the archive is the size of the whole image.
    tmp.commit_unsynced()?;
    Ok(())
}
