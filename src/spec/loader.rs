//! What loading a spec keeps across its files: the files read and their
//! text (see `files.rs`), the chain of imports being read, the templates
//! read and the chain of instances being made. Pure data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use miette::SourceSpan;

use super::SpecFile;
use super::template::TemplateDef;

/// Files a spec may read, kiln.kdl included (each import of a file counts).
pub(crate) const MAX_FILES: usize = 256;
/// Bytes of text all of them may hold together.
pub(crate) const MAX_TOTAL_BYTES: usize = 16 << 20;

/// Instances a spec may make, nested ones included.
pub(crate) const MAX_INSTANCES: usize = 20_000;
/// How deep instances may nest (an instance in a template's body is one
/// deeper): each level is a frame of validation on the stack.
pub(crate) const MAX_INSTANCE_DEPTH: usize = 64;
/// Nodes all instances may make together: a body is copied per instance,
/// so a few kilobytes of text could otherwise ask for millions of nodes.
pub(crate) const MAX_INSTANCE_NODES: usize = 100_000;

/// The files read so far, their text, and the chain of imports being read;
/// the templates read, and the chain of instances being made.
pub(crate) struct Loader {
    pub text: String,
    pub files: Vec<SpecFile>,
    /// The files being validated, kiln.kdl first: canonical path (`None`
    /// for kiln.kdl, which an import can still name: it is compared by
    /// path), display name, the import that brought it in.
    pub stack: Vec<(PathBuf, String, Option<SourceSpan>)>,
    /// Every template read, by id (`TemplateRef::id`).
    pub templates: Vec<TemplateDef>,
    /// The templates being instantiated, innermost last, with where and
    /// the instance's name.
    pub instantiating: Vec<(usize, SourceSpan, String)>,
    /// Each instance's scope as kiln.kdl sees it → its paths' directory.
    pub instance_dirs: BTreeMap<String, PathBuf>,
    /// Problems met in a template's body, by template, message and place:
    /// the same mistake met again by another instance of the template is
    /// not reported again.
    pub reported: BTreeSet<(usize, String, usize)>,
    /// Instances made so far.
    pub instances: usize,
    /// Nodes instances have made so far, and names they declared.
    pub instance_nodes: usize,
    pub declared_names: usize,
}

impl Loader {
    pub fn new(root: SpecFile, text: &str, root_path: PathBuf) -> Loader {
        let stack = vec![(root_path, root.name.clone(), None)];
        Loader {
            text: text.to_owned(),
            files: vec![root],
            stack,
            templates: Vec::new(),
            instantiating: Vec::new(),
            instances: 0,
            instance_nodes: 0,
            declared_names: 0,
            instance_dirs: BTreeMap::new(),
            reported: BTreeSet::new(),
        }
    }

    /// The alias of the file being validated (`""` for kiln.kdl).
    pub fn alias(&self) -> &str {
        self.files
            .iter()
            .rev()
            .find(|f| self.stack.last().is_some_and(|(p, ..)| *p == f.path))
            .map_or("", |f| f.alias.as_str())
    }
}
