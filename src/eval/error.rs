//! Why planning failed: a target or host tool not found, a tag kiln.lock
//! does not pin, a source, tool or base archive that could not be hashed.

use std::path::PathBuf;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

use crate::tree;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EvalError {
    #[error("No stage or image named `{name}`")]
    #[diagnostic(code(kiln::eval::unknown_target), help("{help}"))]
    UnknownTarget { name: String, help: String },

    #[error("Host tool `{tool}` is not on PATH")]
    #[diagnostic(
        code(kiln::eval::tool_not_found),
        help("install `{tool}`, or remove it from `tools`; kiln looked in: {path}")
    )]
    ToolNotFound {
        tool: String,
        path: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("declared here")]
        span: SourceSpan,
    },

    #[error("Stage `{stage}` declares host `tools` but does not run on the host")]
    #[diagnostic(
        code(kiln::eval::tools_need_host),
        help(
            "`tools` are programs of the host, hashed into the key; a stage `from` a base or an image runs that image's programs: drop `tools`, or put the program in the image"
        )
    )]
    ToolsNeedHost {
        stage: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("host programs")]
        span: SourceSpan,
    },

    #[error("Base `{base}` is given by tag (`{reference}`) and kiln.lock does not pin it")]
    #[diagnostic(
        code(kiln::eval::unlocked_base),
        help(
            "run `kiln lock` to resolve the tag to its digest and record it in kiln.lock (or pin it here: `{reference}@sha256:…`)"
        )
    )]
    Unlocked {
        base: String,
        reference: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("a tag that kiln.lock does not pin")]
        span: SourceSpan,
    },

    #[error("Failed to hash the sources of stage `{stage}`")]
    #[diagnostic(code(kiln::eval::sources))]
    Sources {
        stage: String,
        #[source]
        source: tree::TreeError,
    },

    #[error("Failed to hash host tool `{}`", path.display())]
    #[diagnostic(code(kiln::eval::tool_io))]
    ToolIo {
        path: PathBuf,
        #[source]
        source: tree::TreeError,
    },

    #[error("Failed to hash the archive of base `{base}`")]
    #[diagnostic(
        code(kiln::eval::base_archive),
        help(
            "an image made from a base is keyed by the archive's content, read before anything is built: a tar file, or an image directory of files, directories and symlinks only"
        )
    )]
    Archive {
        base: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("read from here")]
        span: SourceSpan,
        // Boxed: the span makes this the largest variant.
        #[source]
        source: Box<tree::TreeError>,
    },
}
