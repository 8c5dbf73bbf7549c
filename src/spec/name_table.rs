//! The table of declared names: each name's kind (stage, base, fetch,
//! image) and where it is declared, and how a file names a template. Pure
//! data, filled by `names.rs` and read by the rest of validation through
//! `Cx`.

use std::collections::BTreeMap;

use kdl::KdlNode;
use miette::SourceSpan;

/// What a name was declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Stage,
    Base,
    Fetch,
    Image,
}

impl Kind {
    pub fn of(node: &KdlNode) -> Option<Kind> {
        match node.name().value() {
            "stage" => Some(Kind::Stage),
            "base" => Some(Kind::Base),
            "fetch" => Some(Kind::Fetch),
            "image" => Some(Kind::Image),
            _ => None,
        }
    }

    /// The noun with its article, as messages use it.
    pub fn a(self) -> &'static str {
        match self {
            Kind::Stage => "a stage",
            Kind::Base => "a base",
            Kind::Fetch => "a fetch",
            Kind::Image => "an image",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Stage => "stage",
            Kind::Base => "base",
            Kind::Fetch => "fetch",
            Kind::Image => "image",
        }
    }
}

/// Declared names, their kind and where each is declared.
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    pub(super) names: BTreeMap<String, (Kind, SourceSpan)>,
}

impl NameTable {
    /// Whether the node whose name argument is at `span` is the one that
    /// declared `name` (a duplicate is reported once, then skipped).
    pub fn declared_at(&self, name: &str, span: SourceSpan) -> bool {
        self.names.get(name).is_some_and(|(_, at)| *at == span)
    }

    pub fn kind(&self, name: &str) -> Option<Kind> {
        self.names.get(name).map(|(kind, _)| *kind)
    }
}

/// A template as a file sees it: which one, and the alias path from that
/// file to the file that defines it (`""` there, `go` through `as=go`).
#[derive(Debug, Clone)]
pub(crate) struct TemplateRef {
    pub id: usize,
    pub alias: String,
}
