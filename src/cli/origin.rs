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
    /// The template instance the node belongs to, as kiln.kdl names it
    /// (`hello`, `go.hello`); empty for a node written out in its file.
    pub instance: &'a str,
}

/// Where the node called `name` is defined, if the spec has one.
pub(super) fn defined<'a>(spec: &'a Spec, name: &str) -> Option<Defined<'a>> {
    let (span, scope) = match spec.lookup(name)? {
        NodeRef::Stage(s) => (s.name.span, &s.scope),
        NodeRef::Base(b) => (b.name.span, &b.scope),
        NodeRef::Fetch(f) => (f.name.span, &f.scope),
        NodeRef::Image(i) => (i.name.span, &i.scope),
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
        instance: match *scope == file.alias {
            true => "",
            false => scope,
        },
    })
}

impl Defined<'_> {
    /// Whether the node is not written out in kiln.kdl: imported, or
    /// made by a template.
    pub fn imported(&self) -> bool {
        !self.alias.is_empty() || !self.instance.is_empty()
    }
}

impl fmt::Display for Defined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if !self.alias.is_empty() {
            write!(f, ", imported as `{}`", self.alias)?;
        }
        if !self.instance.is_empty() {
            write!(f, ", instance `{}`", self.instance)?;
        }
        Ok(())
    }
}
