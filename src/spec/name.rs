//! The two validated strings every node holds: a [`Name`] (declared or
//! referenced) and a [`SrcPath`] (a source relative to its file's
//! directory). Each has one constructor that checks it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of a stage, base, fetch or image: `[A-Za-z_][A-Za-z0-9_-]*`,
/// or such names joined by dots when the node comes from an imported file
/// (`go.golang`: the node `golang` of the file imported `as=go`). All four
/// kinds share one namespace. Valid as a directory name, and as an
/// environment variable name once dashes and dots become underscores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Returns `None` when `s` is not a valid name: one or more
    /// identifiers joined by dots (a declaration takes one: [`Name::local`]).
    pub fn new(s: &str) -> Option<Name> {
        s.split('.').all(is_identifier).then(|| Name(s.to_owned()))
    }

    /// A name as a node declares it: one identifier, no dots.
    pub fn local(s: &str) -> Option<Name> {
        is_identifier(s).then(|| Name(s.to_owned()))
    }

    /// `alias.self`: this name as the file that imports its file sees it.
    pub fn qualified(&self, alias: &str) -> Name {
        Name(format!("{alias}.{}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The environment variable a `use`d stage or an arg is visible as.
    pub fn env_var(&self) -> String {
        self.0.replace(['-', '.'], "_")
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path relative to the build context (the directory holding kiln.kdl),
/// normalized (`/`-separated, no `.`, no `..`, no trailing `/`, never empty:
/// the context itself is `.`), and known to exist when the spec was loaded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SrcPath(String);

impl SrcPath {
    /// Normalizes `s`; `None` if it is absolute or leaves the context.
    pub fn new(s: &str) -> Option<SrcPath> {
        if s.starts_with('/') {
            return None;
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Some(SrcPath(".".to_owned()));
        }
        Some(SrcPath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path on disk, under `context`.
    pub fn on_disk(&self, context: &Path) -> PathBuf {
        if self.0 == "." {
            context.to_path_buf()
        } else {
            context.join(&self.0)
        }
    }
}

impl fmt::Display for SrcPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn src_paths_normalize_and_never_leave_the_context() {
        assert_eq!(SrcPath::new("./a//b/").unwrap().as_str(), "a/b");
        assert_eq!(SrcPath::new("a/../b").unwrap().as_str(), "b");
        assert_eq!(SrcPath::new(".").unwrap().as_str(), ".");
        assert_eq!(SrcPath::new("../x"), None);
        assert_eq!(SrcPath::new("a/../../x"), None);
        assert_eq!(SrcPath::new("/etc/passwd"), None);
    }

    #[test]
    fn names_are_identifiers_with_dashes() {
        assert!(Name::new("go-http").is_some());
        assert!(Name::new("_x1").is_some());
        assert!(Name::new("1x").is_none());
        assert!(Name::new("").is_none());
        assert!(Name::local("a.b").is_none());
        assert_eq!(Name::new("go.go-dist").unwrap().env_var(), "go_go_dist");
        for bad in ["a..b", ".a", "a.", "a.1b"] {
            assert!(Name::new(bad).is_none(), "{bad}");
        }
        assert_eq!(Name::new("go-http").unwrap().env_var(), "go_http");
    }
}
