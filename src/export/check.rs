//! Build-time checks on an assembled image: an entrypoint (or, without one,
//! a cmd) must name a program the image holds, so kiln never ships a
//! container that cannot start. Pure: works on the image's planned file set.

use std::collections::{BTreeMap, VecDeque};

use super::config::ConfigSummary;
use super::error::ExportError;
use super::walk::{Entry, Kind};
use crate::spec::{Image, Spec};

/// What engines use when the image sets no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Linux's limit on symlinks followed while resolving one path.
const MAX_LINKS: usize = 40;

/// Every path of an image's layers, later layers over earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileSet(BTreeMap<String, Node>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { executable: bool },
    Symlink(String),
}

/// Where resolving a path inside the image ended.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    File { path: String, executable: bool },
    Dir(String),
    Missing,
}

impl FileSet {
    pub(crate) fn add(&mut self, entries: &[Entry]) {
        for e in entries {
            let node = match &e.kind {
                Kind::Dir => Node::Dir,
                Kind::File { .. } => Node::File {
                    executable: e.mode & 0o111 != 0,
                },
                Kind::Symlink { target } => Node::Symlink(target.clone()),
            };
            self.0.insert(e.path.clone(), node);
        }
    }

    /// Whether the image has `path` (relative) as a directory (`Some(true)`),
    /// as a file or symlink (`Some(false)`), or not at all.
    pub(crate) fn is_dir(&self, path: &str) -> Option<bool> {
        self.0.get(path).map(|n| matches!(n, Node::Dir))
    }

    /// Where the absolute `path` leads through the image's symlinks, when
    /// something is there.
    pub(crate) fn real_path(&self, path: &str) -> Option<String> {
        match self.resolve(path) {
            Resolved::File { path, .. } | Resolved::Dir(path) => Some(path),
            Resolved::Missing => None,
        }
    }

    /// Resolves `path` (absolute) component by component, following symlinks
    /// (absolute ones from the image root) as the kernel would in the container.
    fn resolve(&self, path: &str) -> Resolved {
        let mut pending: VecDeque<String> = components(path).collect();
        let mut at: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => at.push(part),
            }
            match self.0.get(&at.join("/")) {
                None => return Resolved::Missing,
                Some(Node::Symlink(target)) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Resolved::Missing;
                    }
                    at.pop();
                    if target.starts_with('/') {
                        at.clear();
                    }
                    components(target).rev().for_each(|c| pending.push_front(c));
                }
                Some(_) => {}
            }
        }
        let path = format!("/{}", at.join("/"));
        match self.0.get(&at.join("/")) {
            Some(Node::File { executable }) => Resolved::File {
                path,
                executable: *executable,
            },
            _ => Resolved::Dir(path),
        }
    }

    fn executables(&self) -> impl Iterator<Item = String> + '_ {
        let executable = |(_, n): &(&String, &Node)| matches!(n, Node::File { executable: true });
        self.0
            .iter()
            .filter(executable)
            .map(|(p, _)| format!("/{p}"))
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned)
}

/// Refuses an image whose entrypoint (or cmd, without one) cannot start.
pub(crate) fn entrypoint(
    spec: &Spec,
    image: &Image,
    config: &ConfigSummary,
    files: &FileSet,
) -> Result<(), ExportError> {
    let (what, argv, node) = match (&config.entrypoint, &config.cmd) {
        (Some(argv), _) => ("entrypoint", argv, &image.entrypoint),
        (None, Some(argv)) => ("cmd", argv, &image.cmd),
        (None, None) => return Ok(()),
    };
    let fail = |reason: String, help: String| ExportError::Entrypoint {
        image: image.name.value.clone(),
        what,
        reason,
        src: spec.source.clone(),
        span: node.as_ref().map_or(image.name.span, |n| n.span),
        help,
    };
    let Some(program) = argv.first() else {
        return Err(fail(
            "it is empty".into(),
            format!("Give `{what}` a program to run"),
        ));
    };
    let shell_script = match argv.as_slice() {
        [sh, c, script] if sh == "/bin/sh" && c == "-c" => Some(script),
        _ => None,
    };
    let has_shell = || {
        matches!(
            files.resolve("/bin/sh"),
            Resolved::File {
                executable: true,
                ..
            }
        )
    };
    if let Some(script) = shell_script.filter(|_| !has_shell()) {
        let exec: Vec<String> = script
            .split_whitespace()
            .map(|w| format!("\"{w}\""))
            .collect();
        return Err(fail(
            "the image has no `/bin/sh` to run its shell form".into(),
            format!(
                "Use the exec form, which needs no shell: `{what} {}`",
                exec.join(" ")
            ),
        ));
    }
    match find_program(files, program, config) {
        Resolved::File {
            executable: true, ..
        } => Ok(()),
        Resolved::File { path, .. } => Err(fail(
            format!("`{path}` is not executable"),
            "Give it an executable mode, e.g. `mode=0o755` on its `copy`".into(),
        )),
        Resolved::Dir(path) => Err(fail(
            format!("`{path}` is a directory"),
            format!("Point `{what}` at a program inside it"),
        )),
        Resolved::Missing => {
            let held: Vec<String> = files.executables().take(5).collect();
            let help = if held.is_empty() {
                "The image holds no executable: `copy` the program in".to_owned()
            } else {
                format!("Executables in the image: {}", held.join(", "))
            };
            Err(fail(format!("`{program}` is not in the image"), help))
        }
    }
}

/// An absolute program as is, a relative one against the workdir, a bare
/// name through the image's `PATH`.
fn find_program(files: &FileSet, program: &str, config: &ConfigSummary) -> Resolved {
    if program.starts_with('/') {
        return files.resolve(program);
    }
    if program.contains('/') {
        let workdir = config.workdir.as_deref().unwrap_or("/");
        return files.resolve(&format!("{workdir}/{program}"));
    }
    let path = config.env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
    let mut found = Resolved::Missing;
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        match files.resolve(&format!("{dir}/{program}")) {
            hit @ Resolved::File {
                executable: true, ..
            } => return hit,
            other @ Resolved::File { .. } if found == Resolved::Missing => found = other,
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests;
