//! What the closure analysis takes and returns: plain data, no IO.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The root filesystem a stage ran in, as the stage saw it: its programs'
/// closure is looked up there and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// An unpacked image: all of this directory, which was the stage's `/`.
    Image(PathBuf),
    /// The host's `/` as the sandbox shows it to a `from host` stage: only
    /// these absolute paths and what lies below them (`/usr`, `/lib64`,
    /// `/etc/ssl`, a tool's directory), each at the path the host has it.
    Host { shown: Vec<PathBuf> },
}

impl Root {
    /// Where the root is on disk: the image's directory, or the host's `/`.
    pub fn dir(&self) -> &std::path::Path {
        match self {
            Root::Image(dir) => dir,
            Root::Host { .. } => std::path::Path::new("/"),
        }
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Image(dir) => write!(f, "`{}`", dir.display()),
            Root::Host { shown } => {
                let shown: Vec<String> = shown.iter().map(|d| d.display().to_string()).collect();
                write!(
                    f,
                    "the host's `{}` (what the stage saw)",
                    shown.join("`, `")
                )
            }
        }
    }
}

/// One ELF program being copied into an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Where the file is on disk now, e.g. in a store entry.
    pub file: PathBuf,
    /// Where it lands in the image, e.g. `/app/goapp`. Absolute.
    pub image_path: String,
    /// The stage output `file` is in. A lookup beside the program
    /// (`$ORIGIN`) stays inside it: what is outside is not found.
    pub tree: PathBuf,
}

/// Everything the programs need at run time, beyond themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// Absolute path in the image (and, for files found in the root, in the
    /// root) → what goes there. Sorted, so export is deterministic.
    pub files: BTreeMap<String, Needed>,
}

/// One file or symlink of the closure, and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub kind: NeededKind,
    /// Where it is on disk now: `<root>/<path>` for what was found in the
    /// root, a path beside a program's file for what `$ORIGIN` found. For a
    /// file, export copies its contents from here.
    pub source: PathBuf,
    /// Why it is needed, from the program down: `["/app/goapp",
    /// "libsqlite3.so.0", "libc.so.6"]`, or `["/app/goapp", "interpreter
    /// /lib64/ld-linux-x86-64.so.2"]`. The first (shortest) reason wins.
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeededKind {
    /// A regular file, copied with its contents and mode.
    File,
    /// A symlink, kept as is: `target` is its text, relative or absolute.
    Symlink { target: String },
}

impl Closure {
    /// Records `path` unless an earlier (shorter) reason already did.
    pub(super) fn insert(&mut self, path: String, needed: Needed) {
        self.files.entry(path).or_insert(needed);
    }
}
