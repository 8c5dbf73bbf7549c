//! Where a node of the spec is defined: kiln.kdl or a file it imports, and
//! under which alias. What `kiln graph`, `kiln explain` and `kiln build
//! --json` say of each node.

use std::fmt;

use crate::spec::{NodeRef, Spec};

/// The file (as diagnostics name it), line and alias of a node.
pub(super) struct Defined<'a> {
    pub file: &'a str,
    pub line: usize,
    /// Empty for a node of kiln.kdl.
    pub alias: &'a str,
}

/// Where the node called `name` is defined, if the spec has one.
pub(super) fn defined<'a>(spec: &'a Spec, name: &str) -> Option<Defined<'a>> {
    let span = match spec.lookup(name)? {
        NodeRef::Stage(s) => s.name.span,
        NodeRef::Base(b) => b.name.span,
        NodeRef::Fetch(f) => f.name.span,
        NodeRef::Image(i) => i.name.span,
    };
    let file = spec.file_at(span);
    let shown = match spec.files.len() {
        0 => spec.source.name(),
        _ => file.name.as_str(),
    };
    Some(Defined {
        file: shown,
        line: spec.line(span),
        alias: &file.alias,
    })
}

impl Defined<'_> {
    pub fn imported(&self) -> bool {
        !self.alias.is_empty()
    }
}

impl fmt::Display for Defined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if self.imported() {
            write!(f, ", imported as `{}`", self.alias)?;
        }
        Ok(())
    }
}
