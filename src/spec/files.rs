//! The files a [`Spec`] was read from: kiln.kdl and every file it imports.
//!
//! All their texts live in one [`Spec::source`], one after the other, so a
//! span of the model is one offset whichever file it points into; this is
//! the table that says which file an offset falls in, under which alias
//! its nodes are seen, and which directory its paths are relative to.
//! Pure data and lookups, no IO.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use serde::{Deserialize, Serialize};

use super::Spec;

/// One file of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecFile {
    /// How diagnostics name the file: kiln.kdl by the path it was given
    /// as, an imported file by that path's directory joined to the path
    /// the `import` gives (`examples/toolchains/go.kdl`).
    pub name: String,
    /// The canonical path of an imported file (empty for kiln.kdl, whose
    /// text the caller gave): what the spec cache reads again.
    pub path: PathBuf,
    /// The path the import names, joined to its importer's directory but
    /// not resolved (empty for kiln.kdl): a symlink on it can be retargeted
    /// without changing either file, so the spec cache resolves it again
    /// and compares with `path`.
    pub written: PathBuf,
    /// The canonical directory holding the file: the context its `src`,
    /// `add`, `archive` and `import` paths are relative to.
    pub dir: PathBuf,
    /// The aliases it is seen through from kiln.kdl, joined by dots: empty
    /// for kiln.kdl, `go` for `import "go.kdl" as=go`, `go.c` for a file
    /// that `go.kdl` imports `as=c`. A node `x` of the file is `go.x` in the
    /// spec; no key ever holds the alias.
    pub alias: String,
    /// Where its text starts in [`Spec::source`], and its length.
    pub base: usize,
    pub len: usize,
    /// The `import` node that brought the file in (`None` for kiln.kdl).
    #[serde(with = "super::stored::opt_span")]
    pub imported_at: Option<SourceSpan>,
    /// blake3 of its text (empty for kiln.kdl): what a cached spec checks.
    pub hash: String,
}

impl SpecFile {
    /// kiln.kdl itself, named `name`, in `context`, `len` bytes long.
    pub fn root(name: &str, context: &Path, len: usize) -> SpecFile {
        SpecFile {
            name: name.to_owned(),
            path: PathBuf::new(),
            written: PathBuf::new(),
            dir: context.to_path_buf(),
            alias: String::new(),
            base: 0,
            len,
            imported_at: None,
            hash: String::new(),
        }
    }

    /// The file name without its directory (`go.kdl`).
    pub fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

impl Spec {
    /// The file `span` points into (kiln.kdl for a span of no file: one
    /// a test made, or a spec built without its files).
    pub fn file_at(&self, span: SourceSpan) -> &SpecFile {
        let at = self
            .files
            .partition_point(|f| f.base <= span.offset())
            .saturating_sub(1);
        self.files.get(at).unwrap_or_else(|| root_file())
    }

    /// The directory the paths of the node of `scope` whose name is at
    /// `span` are relative to: its instance's, else its file's.
    pub fn dir_of(&self, scope: &str, span: SourceSpan) -> &Path {
        if let Some(dir) = self.instance_dirs.get(scope) {
            return dir;
        }
        match self.files.is_empty() {
            true => &self.context,
            false => &self.file_at(span).dir,
        }
    }

    /// How the node whose name is at `span`, of `scope` (`Stage::scope`),
    /// writes the names it holds.
    pub fn local(&self, span: SourceSpan, scope: &str) -> Local {
        Local {
            scope: scope.to_owned(),
            file: self.file_at(span).alias.clone(),
        }
    }

    /// The file name (no directory) of the file `span` points into, and for
    /// kiln.kdl the name it was given by (`kiln.kdl`).
    pub fn file_name_at(&self, span: SourceSpan) -> &str {
        match self.files.is_empty() {
            true => self.file_name(),
            false => self.file_at(span).file_name(),
        }
    }
}

impl Spec {
    /// The text of the file `span` points into, named as that file, and
    /// `span` in it: for a diagnostic after loading, whose source is one
    /// file (kiln.kdl's own spans come back as they are).
    pub fn snippet(&self, span: SourceSpan) -> (Arc<NamedSource<String>>, SourceSpan) {
        let file = self.file_at(span);
        if file.base == 0 || self.files.len() <= 1 {
            return (self.source.clone(), span);
        }
        let text = self.source.inner();
        let end = (file.base + file.len).min(text.len());
        let own = text.get(file.base.min(end)..end).unwrap_or_default();
        let local = SourceSpan::new((span.offset() - file.base).into(), span.len());
        (
            Arc::new(NamedSource::new(&file.name, own.to_owned())),
            local,
        )
    }
}

/// A name as the node holding it writes it: what enters its key and its
/// environment (`$data`, not `$t_data`, in the file that declares `data`).
/// The node's scope is taken off its own names and those of its template
/// instance (`go.hello.build` → `build`), its file's alias off the other
/// names of its file (`go.golang` → `golang`, `go.c.x` → `c.x`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    scope: String,
    file: String,
}

impl Local {
    pub fn name<'a>(&self, name: &'a str) -> &'a str {
        strip(&self.scope, name)
            .or_else(|| strip(&self.file, name))
            .unwrap_or(name)
    }
}

fn strip<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    match prefix.is_empty() {
        true => None,
        false => name.strip_prefix(prefix)?.strip_prefix('.'),
    }
}

fn root_file() -> &'static SpecFile {
    static ROOT: std::sync::OnceLock<SpecFile> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| SpecFile::root("kiln.kdl", Path::new("."), 0))
}

/// `path` (as an `import` gives it) joined to the directory of `importer`
/// (as diagnostics name it), `.` and `..` taken out where they can be:
/// `examples/go-module/kiln.kdl` + `../toolchains/go.kdl` →
/// `examples/toolchains/go.kdl`.
pub(crate) fn display_join(importer: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let mut parts: Vec<&str> = importer.split('/').collect();
    parts.pop();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != ".." && *p != ".") => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.retain(|p| *p != ".");
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_paths_join_like_a_user_would_type_them() {
        let join = display_join;
        assert_eq!(
            join("examples/go-module/kiln.kdl", "../toolchains/go.kdl"),
            "examples/toolchains/go.kdl"
        );
        assert_eq!(join("kiln.kdl", "../t/go.kdl"), "../t/go.kdl");
        assert_eq!(join("./kiln.kdl", "lib/a.kdl"), "lib/a.kdl");
        assert_eq!(join("a/kiln.kdl", "./b/../c.kdl"), "a/c.kdl");
        assert_eq!(join("kiln.kdl", "/abs/x.kdl"), "/abs/x.kdl");
    }

    #[test]
    fn local_names_lose_only_their_scope_or_their_files_alias() {
        let local = |scope: &str, file: &str| Local {
            scope: scope.into(),
            file: file.into(),
        };
        assert_eq!(local("", "").name("go.x"), "go.x");
        assert_eq!(local("go", "go").name("go.x"), "x");
        assert_eq!(local("go", "go").name("go.c.x"), "c.x");
        assert_eq!(local("go", "go").name("gox"), "gox");
        assert_eq!(local("go.hello", "go").name("go.hello.build"), "build");
        assert_eq!(local("go.hello", "go").name("go.golang"), "golang");
        assert_eq!(local("hello", "go").name("hello.build"), "build");
        assert_eq!(local("hello", "go").name("go.golang"), "golang");
    }
}
