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

    #[error(
        "Layer blob `{path}` in kiln's store is damaged: its sha256 is {actual} ({size} bytes), the image needs {expected}",
        path = path.display()
    )]
    #[diagnostic(
        code(kiln::export::damaged_blob),
        help(
            "`kiln store verify` names every damaged entry and blob; delete them (`find PATH -type d -exec chmod u+w {{}} +`, then `rm -rf PATH`) and kiln makes them again; not `chmod -R`: blobs are hard links other entries share"
        )
    )]
    DamagedBlob {
        path: PathBuf,
        expected: crate::hash::Digest,
        actual: crate::hash::Digest,
        size: u64,
    },

    #[error(
        "Layer blob `{path}` in kiln's store changed while it was copied",
        path = path.display()
    )]
    #[diagnostic(
        code(kiln::export::blob_changed),
        help(
            "Something wrote into kiln's store during the export (a file or directory output is not written). `kiln store verify` names damaged blobs"
        )
    )]
    BlobChanged { path: PathBuf },

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

    #[error("`{path}` leads out of the output of stage `{stage}` through a symlink")]
    #[diagnostic(
        code(kiln::export::copy_outside),
        help(
            "A copy takes files from the stage's `$out` only; copy the link itself, or have the stage write the file into `$out`"
        )
    )]
    CopyOutside {
        stage: Name,
        path: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("resolves outside the stage output")]
        span: SourceSpan,
    },

    #[error("`{}` exists and is not an OCI layout", dir.display())]
    #[diagnostic(
        code(kiln::export::not_a_layout),
        help("`--format oci` replaces an earlier layout only; choose an empty or new directory")
    )]
    NotALayout { dir: PathBuf },

    #[error("Failed to list what `add` takes from the build context")]
    #[diagnostic(code(kiln::export::add))]
    Tree(#[from] crate::tree::TreeError),

    #[error("Failed to import base image `{base}`")]
    #[diagnostic(code(kiln::export::base))]
    Base {
        base: Name,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("imported from here")]
        span: SourceSpan,
        #[related]
        cause: Vec<crate::base::BaseError>,
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

    #[error("The runtime closure of this `copy` cannot be resolved in {root}")]
    #[diagnostic(
        code(kiln::export::closure),
        help(
            "Install the library in the stage's root, link the program statically, or write `closure=#false` on the `copy` and ship the libraries yourself"
        )
    )]
    Closure {
        root: crate::closure::Root,
        #[source]
        /// Boxed: it is the largest variant, and errors travel by value.
        source: Box<crate::closure::ClosureError>,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("its programs need what the root does not have")]
        span: SourceSpan,
    },

    #[error(
        "kiln cannot find the runtime closure of a program built in stage `{stage}`'s root yet"
    )]
    #[diagnostic(
        code(kiln::export::closure_root_unknown),
        help(
            "Only stages built `from host` have their closure resolved for now: link the program statically, or write `closure=#false` on the `copy` and ship its libraries yourself"
        )
    )]
    RootUnknown {
        stage: Name,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("a dynamically linked program, or a closure-extra")]
        span: SourceSpan,
    },

    #[error(
        "`closure-extra \"{path}\"` {} in the stage's root `{}`",
        if *looped { "loops through symlinks" } else { "does not exist" },
        root.display()
    )]
    #[diagnostic(
        code(kiln::export::closure_extra_missing),
        help("Name a file that exists in the root the stage was built in")
    )]
    ExtraMissing {
        path: String,
        root: PathBuf,
        looped: bool,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("wanted here")]
        span: SourceSpan,
    },

    #[error("The runtime closure needs `{path}` to be {wants}, but the image has {has} there")]
    #[diagnostic(
        code(kiln::export::closure_conflict),
        help(
            "Move what the image puts at `{path}` elsewhere, or write `closure=#false` on this `copy` and ship the libraries yourself"
        )
    )]
    ClosureConflict {
        path: String,
        wants: String,
        has: &'static str,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("this copy's closure")]
        span: SourceSpan,
    },

    #[error(
        "Image `{image}` may have at most {max} layers, but {parent} already has {count} layers{own}"
    )]
    #[diagnostic(
        code(kiln::export::too_many_layers),
        help(
            "Docker loads at most 127 layers: raise `layers max=` (up to 127), or flatten {parent} into fewer layers (export its filesystem and import it as one layer, or `crane flatten`)"
        )
    )]
    TooManyLayers {
        image: Name,
        max: u32,
        /// `base `b`` or `parent image `x``.
        parent: String,
        count: usize,
        /// ` before its own` when the image adds layers, else empty.
        own: &'static str,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("{parent} has {count} layers")]
        span: SourceSpan,
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

impl From<crate::fsx::PathError> for ExportError {
    fn from(e: crate::fsx::PathError) -> Self {
        ExportError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io { path, source }
    }

    /// A failed write into the output `path` names it, as every IO error
    /// does.
    pub fn written_to(self, path: &std::path::Path) -> ExportError {
        match self {
            ExportError::Write { source } => ExportError::Io {
                path: path.to_owned(),
                source,
            },
            e => e,
        }
    }
}

impl ExportError {
    /// A mistake in kiln.kdl (exit code 2), not a failure of the machine.
    pub fn is_spec_error(&self) -> bool {
        if let ExportError::Base { cause, .. } = self {
            return !cause.iter().any(crate::base::BaseError::is_environment);
        }
        matches!(
            self,
            ExportError::CopySourceMissing { .. }
                | ExportError::CopyOutside { .. }
                | ExportError::Entrypoint { .. }
                | ExportError::ExtraMissing { .. }
                | ExportError::ClosureConflict { .. }
                | ExportError::TooManyLayers { .. }
        )
    }
}
