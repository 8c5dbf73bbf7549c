//! The validated model of a kiln.kdl as a whole: [`Spec`], and the lookup
//! of its nodes by name (a reference in `from` or `use`, or a target on the
//! command line). The nodes themselves are in `nodes.rs`. Pure data; no IO.
//!
//! Every value here has been checked: names are unique and resolve, the
//! graph is acyclic, sources exist inside the build context, `${arg}`
//! substitutions are done, digests parse. Code after `spec::load` never
//! re-checks; it only reads.
//!
//! Spans point into [`Spec::source`] so later steps (a failed `run`, a missing
//! program in an image) can still show the user the line in kiln.kdl.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use miette::NamedSource;

use super::SpecFile;
pub use super::name::{Name, SrcPath};
use super::nodes::{Arg, Base, Fetch, Image, Spanned, Stage};

/// A whole kiln.kdl, valid.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The kiln.kdl text, named by its path, for diagnostics after loading;
    /// each imported file's text follows it, after a line break, where
    /// [`Spec::files`] says (so every span of the model is an offset into
    /// this one text, whichever file it points into).
    pub source: Arc<NamedSource<String>>,
    /// The build context: the canonical directory that holds kiln.kdl.
    pub context: PathBuf,
    /// kiln.kdl (first) and every file it imports, directly or not, in the
    /// order their text follows in [`Spec::source`].
    pub files: Vec<SpecFile>,
    /// Each template instance's scope (`hello`, `go.hello`, `hello.inner`)
    /// → the directory its paths are relative to: that of the file that
    /// instantiates it (a template's body is written where it is used).
    pub instance_dirs: BTreeMap<String, PathBuf>,
    /// Declared args with their final values (default or `--arg`), file order.
    pub args: Vec<Arg>,
    /// Stages in file order; every name in `uses`/`from` resolves, no cycles.
    pub stages: Vec<Stage>,
    pub bases: Vec<Base>,
    pub fetches: Vec<Fetch>,
    pub images: Vec<Image>,
    /// Name → node, for [`Spec::lookup`].
    pub names: NameIndex,
}

/// Where each name of a [`Spec`] is declared, built on the first lookup:
/// a linear scan per lookup made planning quadratic (`kiln graph` took 41 s
/// at 60,000 stages). A Spec is not changed after it is loaded; should a
/// test push a node afterwards, a name the index does not know, or finds
/// elsewhere, is looked up by a scan.
#[derive(Debug, Clone, Default)]
pub struct NameIndex(std::sync::OnceLock<std::collections::HashMap<String, (NodeKind, usize)>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Stage,
    Base,
    Fetch,
    Image,
}

/// What a name in `from` or `use` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRef<'a> {
    Stage(&'a Stage),
    Base(&'a Base),
    Fetch(&'a Fetch),
    Image(&'a Image),
}

impl Spec {
    /// The spec's file name without its directory (`kiln.kdl`): how an
    /// image or base names it in its key and in what `kiln why` reports,
    /// which must not depend on the path the file was named by (`-f`).
    pub fn file_name(&self) -> &str {
        let name = self.source.name();
        name.rsplit('/').next().unwrap_or(name)
    }

    /// The 1-based line that `span` starts on, in the file it points into.
    pub fn line(&self, span: miette::SourceSpan) -> usize {
        let text = self.source.inner();
        let start = span.offset().min(text.len());
        let base = self.file_at(span).base.min(start);
        text.get(base..start)
            .unwrap_or_default()
            .matches('\n')
            .count()
            + 1
    }

    /// The node a reference of this spec (a `from`, a `use`, a `copy`'s
    /// stage) names. Validation checked that every reference resolves, so
    /// this is the one place that says so; a name from the user (a target
    /// on the command line) is looked up with [`Spec::lookup`] instead.
    pub fn resolve(&self, name: &Name) -> NodeRef<'_> {
        self.lookup(name.as_str()).unwrap_or_else(|| {
            unreachable!("kiln bug: spec validation let `{name}` through unresolved")
        })
    }

    /// The node called `name`, if any.
    pub fn lookup(&self, name: &str) -> Option<NodeRef<'_>> {
        let indexed = self.names.0.get_or_init(|| self.index()).get(name);
        match indexed.and_then(|&(kind, i)| self.node(kind, i)) {
            Some(node) if node_name(node) == name => Some(node),
            _ => self.scan(name),
        }
    }

    /// Every name, first declaration first (as [`Spec::scan`] finds them).
    fn index(&self) -> std::collections::HashMap<String, (NodeKind, usize)> {
        let mut index = std::collections::HashMap::new();
        let names = (self.stages.iter().enumerate())
            .map(|(i, s)| (&s.name, NodeKind::Stage, i))
            .chain((self.bases.iter().enumerate()).map(|(i, b)| (&b.name, NodeKind::Base, i)))
            .chain((self.fetches.iter().enumerate()).map(|(i, f)| (&f.name, NodeKind::Fetch, i)))
            .chain((self.images.iter().enumerate()).map(|(i, m)| (&m.name, NodeKind::Image, i)));
        for (name, kind, i) in names {
            index
                .entry(name.value.as_str().to_owned())
                .or_insert((kind, i));
        }
        index
    }

    fn node(&self, kind: NodeKind, i: usize) -> Option<NodeRef<'_>> {
        match kind {
            NodeKind::Stage => self.stages.get(i).map(NodeRef::Stage),
            NodeKind::Base => self.bases.get(i).map(NodeRef::Base),
            NodeKind::Fetch => self.fetches.get(i).map(NodeRef::Fetch),
            NodeKind::Image => self.images.get(i).map(NodeRef::Image),
        }
    }

    fn scan(&self, name: &str) -> Option<NodeRef<'_>> {
        let by = |n: &Spanned<Name>| n.value.as_str() == name;
        (self.stages.iter().find(|s| by(&s.name)).map(NodeRef::Stage))
            .or_else(|| self.bases.iter().find(|b| by(&b.name)).map(NodeRef::Base))
            .or_else(|| {
                self.fetches
                    .iter()
                    .find(|f| by(&f.name))
                    .map(NodeRef::Fetch)
            })
            .or_else(|| self.images.iter().find(|i| by(&i.name)).map(NodeRef::Image))
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        match self.lookup(name) {
            Some(NodeRef::Stage(stage)) => Some(stage),
            _ => None,
        }
    }

    pub fn image(&self, name: &str) -> Option<&Image> {
        match self.lookup(name) {
            Some(NodeRef::Image(image)) => Some(image),
            _ => None,
        }
    }
}

fn node_name(node: NodeRef<'_>) -> &str {
    match node {
        NodeRef::Stage(s) => s.name.value.as_str(),
        NodeRef::Base(b) => b.name.value.as_str(),
        NodeRef::Fetch(f) => f.name.value.as_str(),
        NodeRef::Image(i) => i.name.value.as_str(),
    }
}
