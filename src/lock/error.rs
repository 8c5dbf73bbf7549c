//! What can be wrong with kiln.lock: it cannot be read, it is malformed
//! (pointing into kiln.lock), or, under `--locked`, an input of kiln.kdl
//! or the host no longer matches it (pointing into kiln.kdl).

use std::path::PathBuf;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error("kiln.lock is malformed: {message}")]
    #[diagnostic(code(kiln::lock::malformed), help("{help}"))]
    Malformed {
        message: String,
        help: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("here")]
        span: SourceSpan,
    },

    #[error("`--locked` needs `{}`, and there is none", path.display())]
    #[diagnostic(
        code(kiln::lock::missing),
        help("run `kiln lock` to write it (and commit it), then build with `--locked`")
    )]
    Missing { path: PathBuf },

    #[error("`--locked`: {input} is not in kiln.lock")]
    #[diagnostic(
        code(kiln::lock::not_locked),
        help("run `kiln lock` to record it, then build with `--locked` again")
    )]
    NotLocked {
        input: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("not in kiln.lock")]
        span: SourceSpan,
    },

    #[error("`--locked`: {input} no longer matches kiln.lock")]
    #[diagnostic(
        code(kiln::lock::changed),
        help(
            "kiln.lock has {locked}, now it is {actual}; run `kiln lock` if the change is intended, or undo it"
        )
    )]
    Changed {
        input: String,
        locked: String,
        actual: String,
        #[source_code]
        src: Arc<NamedSource<String>>,
        #[label("changed since `kiln lock`")]
        span: SourceSpan,
    },

    #[error("Cannot read or write `{}`", path.display())]
    #[diagnostic(code(kiln::lock::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// Whether the user can fix it in kiln.kdl, kiln.lock or by running
    /// `kiln lock` (exit 2), rather than the machine failing (exit 1).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, LockError::Io { .. })
    }
}

impl From<crate::fsx::PathError> for LockError {
    fn from(e: crate::fsx::PathError) -> Self {
        LockError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
