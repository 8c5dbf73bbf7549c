//! Why an export failed: IO (with paths), a spec the image cannot honour
//! (with a span into kiln.kdl), or an engine that refused the image.

use std::path::PathBuf;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

use crate::spec::Name;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExportError {
    #[error("Failed to access `{path}`")]
    #[diagnostic(code(kiln::export::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("Failed to write the image archive")]
    #[diagnostic(code(kiln::export::write))]
    Write {
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is neither a file, a directory nor a symlink")]
    #[diagnostic(code(kiln::export::special_file))]
    Special { path: PathBuf },

    #[error("Stage `{stage}` has no built output to copy from")]
    #[diagnostic(
        code(kiln::export::unbuilt_stage),
        help("Build the stages an image copies from before exporting it")
    )]
    UnbuiltStage {
        stage: Name,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("copied here")]
        span: SourceSpan,
    },

    #[error("`{path}` does not exist in the output of stage `{stage}`")]
    #[diagnostic(
        code(kiln::export::copy_missing),
        help("Check the path against what the stage writes to `$out`")
    )]
    CopySourceMissing {
        stage: Name,
        path: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("not in the stage output")]
        span: SourceSpan,
    },

    #[error("Image `{image}` is built `from` base `{base}`, which export does not support yet")]
    #[diagnostic(
        code(kiln::export::base_unsupported),
        help("Use `from scratch` or another image of this kiln.kdl for now")
    )]
    BaseUnsupported {
        image: Name,
        base: Name,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("an imported base")]
        span: SourceSpan,
    },

    #[error("The {what} of image `{image}` cannot start: {reason}")]
    #[diagnostic(code(kiln::export::entrypoint))]
    Entrypoint {
        image: Name,
        /// `entrypoint` or `cmd`.
        what: &'static str,
        reason: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("{reason}")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("Failed to run `{engine} load`")]
    #[diagnostic(
        code(kiln::export::engine_missing),
        help("Install {engine}, or pick another engine with `--engine`")
    )]
    EngineSpawn {
        engine: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("`{engine} load` failed ({status}): {stderr}")]
    #[diagnostic(code(kiln::export::engine_failed))]
    EngineFailed {
        engine: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io { path, source }
    }
}

impl ExportError {
    /// A mistake in kiln.kdl (exit code 2), not a failure of the machine.
    pub fn is_spec_error(&self) -> bool {
        matches!(
            self,
            ExportError::CopySourceMissing { .. }
                | ExportError::BaseUnsupported { .. }
                | ExportError::Entrypoint { .. }
        )
    }
}
