//! Why a closure cannot be resolved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClosureError {
    #[error(
        "`{program}` needs `{library}`, which is not in the stage's root; looked in: {}",
        searched.join(", ")
    )]
    #[diagnostic(
        code(kiln::closure::not_found),
        help(
            "install the library in the stage's root, or link statically, or use `closure=#false`"
        )
    )]
    NotFound {
        /// The program being copied (its path in the image).
        program: String,
        /// The DT_NEEDED name, or the PT_INTERP path.
        library: String,
        /// Every directory (or path) tried, in order.
        searched: Vec<String>,
    },
    #[error(
        "`{program}` names `{interpreter}` as its ELF interpreter, which is not an ELF object for this machine"
    )]
    #[diagnostic(
        code(kiln::closure::bad_interpreter),
        help(
            "link the program with the dynamic loader of the stage's root (gcc's default `--dynamic-linker`), or statically"
        )
    )]
    BadInterpreter {
        program: String,
        interpreter: String,
    },
    #[error(
        "`{object}` (needed by `{program}`) uses `{token}` in its library search path, which kiln does not support"
    )]
    #[diagnostic(
        code(kiln::closure::unsupported_token),
        help("only `$ORIGIN` is expanded; link with a search path without `$LIB` or `$PLATFORM`")
    )]
    UnsupportedToken {
        program: String,
        object: String,
        token: String,
    },
    #[error("Too many levels of symlinks resolving `{path}` in `{root}`")]
    #[diagnostic(code(kiln::closure::symlink_loop))]
    SymlinkLoop { root: PathBuf, path: String },
    #[error("`{path}` is not a UTF-8 path")]
    #[diagnostic(code(kiln::closure::non_utf8))]
    NonUtf8 { path: PathBuf },
    #[error("Failed to read `{path}`")]
    #[diagnostic(code(kiln::closure::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::fsx::PathError> for ClosureError {
    fn from(e: crate::fsx::PathError) -> Self {
        ClosureError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl ClosureError {
    pub(super) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ClosureError::Io { path, source }
    }
}
