//! The table of declared names: each name's kind (stage, base, fetch,
//! image) and where it is declared, and how a file names a template. Pure
//! data, filled by `names.rs` and read by the rest of validation through
//! `Cx`.

use std::collections::BTreeMap;
use std::sync::Arc;

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
    pub(super) names: Layered<(Kind, SourceSpan)>,
}

/// A map over another, shared one: what a template instance sees is its
/// own names over its template's file's, which are not copied per
/// instance (a copy each made 20,000 instances of a big file quadratic).
#[derive(Debug, Clone)]
pub(crate) struct Layered<V> {
    own: BTreeMap<String, V>,
    outer: Option<Arc<BTreeMap<String, V>>>,
}

impl<V> Default for Layered<V> {
    fn default() -> Self {
        Layered {
            own: BTreeMap::new(),
            outer: None,
        }
    }
}

impl<V: Clone> Layered<V> {
    /// An empty map over `outer`.
    pub fn over(outer: Arc<BTreeMap<String, V>>) -> Self {
        Layered {
            own: BTreeMap::new(),
            outer: Some(outer),
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        (self.own.get(key)).or_else(|| self.outer.as_ref()?.get(key))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` here (over the outer map's, if it has one).
    pub fn insert(&mut self, key: String, value: V) {
        self.own.insert(key, value);
    }

    /// Sets `key` unless it is known already.
    pub fn insert_new(&mut self, key: String, value: V) {
        if !self.contains_key(&key) {
            self.own.insert(key, value);
        }
    }

    /// Every key, this map's first (an outer key it shadows comes again).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let outer = self.outer.iter().flat_map(|o| o.keys());
        self.own.keys().chain(outer).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.own.len() + self.outer.as_ref().map_or(0, |o| o.len())
    }

    /// Both maps in one, this one's values over the outer's.
    pub fn flatten(&self) -> BTreeMap<String, V> {
        let mut all = self.outer.as_deref().cloned().unwrap_or_default();
        all.extend(self.own.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }
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
