//! Why a tree could not be scanned or copied; every variant names its path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("Failed to read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is neither a file, a directory nor a symlink")]
    Special { path: PathBuf },
    #[error("`{path}` is not valid UTF-8: kiln needs UTF-8 file names and symlink targets")]
    NonUtf8 { path: PathBuf },
    #[error("`{path}` is not a directory: a source path can only go through directories")]
    NotADir { path: PathBuf },
    #[error("`{path}` changed while kiln was building; build again to key the new content")]
    Changed { path: PathBuf },
    #[error("Failed to apply the ignore rules in `{path}`")]
    Ignore {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
}

impl From<crate::fsx::PathError> for TreeError {
    fn from(e: crate::fsx::PathError) -> Self {
        TreeError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl TreeError {
    pub(super) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TreeError {
        let path = path.into();
        move |source| TreeError::Io { path, source }
    }

    pub(super) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TreeError {
        let path = path.into();
        move |source| TreeError::Write { path, source }
    }
}
