//! The one namespace of stages, bases, fetches and images: built before any
//! node is read in detail, so references (`use`, `from`, `copy`) resolve
//! whatever the order of the file.

use kdl::{KdlDocument, KdlNode, KdlValue};

use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::help::suggest;
use super::name_table::{Kind, NameTable};
use super::{Name, Spanned};

/// The name argument of a top-level node, if it is valid and this node is
/// the one that declared it (reported otherwise by [`Cx::declare_names`]).
pub(crate) fn node_name(names: &NameTable, node: &KdlNode) -> Option<Spanned<Name>> {
    let entry = node.entries().iter().find(|e| e.name().is_none())?;
    let KdlValue::String(s) = entry.value() else {
        return None;
    };
    let name = Name::local(s).filter(|_| names.declared_at(s, entry.span()))?;
    Some(Spanned {
        value: name,
        span: entry.span(),
    })
}

fn is_reserved(name: &str) -> bool {
    matches!(name, "host" | "scratch")
}

impl Cx {
    /// Fills the name table from the top-level nodes, reporting invalid,
    /// reserved and duplicate names.
    pub fn declare_names(&mut self, doc: &KdlDocument) {
        for node in doc.nodes() {
            let Some(kind) = Kind::of(node) else { continue };
            let example = match kind {
                Kind::Stage => "stage server { … }",
                Kind::Base => "base golang { … }",
                Kind::Fetch => "fetch zlib url=\"https://…\" sha256=\"…\"",
                Kind::Image => "image app { … }",
            };
            let args = self.args(node, (1, 1), "a name", example);
            let Some(entry) = args.first() else { continue };
            let Some(name) = self.raw_string(node, entry) else {
                continue;
            };
            if is_reserved(&name.value) {
                let kind = ProblemKind::ReservedName {
                    name: name.value.clone(),
                };
                self.report(kind, vec![label(name.span, "reserved")]);
            } else if Name::local(&name.value).is_none() {
                let kind = ProblemKind::InvalidName {
                    name: name.value.clone(),
                };
                self.report(kind, vec![label(name.span, "invalid name")]);
            } else if let Some((first_kind, first)) = self.names.names.get(&name.value) {
                let labels = vec![
                    label(
                        *first,
                        format!("first declared here, as {}", first_kind.a()),
                    ),
                    label(name.span, format!("declared again here, as {}", kind.a())),
                ];
                self.report(
                    ProblemKind::DuplicateName {
                        name: name.value.clone(),
                    },
                    labels,
                );
            } else {
                self.names.names.insert(name.value, (kind, name.span));
            }
        }
    }

    /// Resolves a reference, reporting an unknown name with a suggestion.
    pub fn resolve(&mut self, name: &Spanned<String>) -> Option<(Kind, Name)> {
        if let Some(kind) = self.names.kind(&name.value) {
            let resolved = Name::new(&name.value).expect("kiln bug: declared names are valid");
            return Some((kind, resolved));
        }
        if let Some((alias, rest)) = name.value.split_once('.')
            && let Some((file, _)) = self.aliases.get(alias).cloned()
        {
            let prefix = format!("{alias}.");
            let suggestion = match self.afford_suggestion(self.names.names.len()) {
                true => suggest(
                    rest,
                    (self.names.names.keys()).filter_map(|n| n.strip_prefix(prefix.as_str())),
                ),
                false => None,
            };
            let text = "not declared there".to_owned();
            let kind = ProblemKind::UnknownImported {
                alias: alias.to_owned(),
                name: rest.to_owned(),
                file,
                suggestion,
            };
            self.report(kind, vec![label(name.span, text)]);
            return None;
        }
        let suggestion = match self.afford_suggestion(self.names.names.len()) {
            true => suggest(&name.value, self.names.names.keys()),
            false => None,
        };
        let kind = ProblemKind::UnknownReference {
            name: name.value.clone(),
            suggestion,
        };
        let file = self.file.as_deref().unwrap_or("kiln.kdl");
        let text = format!("not declared in {file}");
        self.report(kind, vec![label(name.span, text)]);
        None
    }

    /// Reports a reference to something `node` cannot name here.
    pub fn wrong_kind(
        &mut self,
        node: &'static str,
        name: &Spanned<String>,
        what: &'static str,
        expected: &'static str,
        help: String,
    ) {
        let text = what.to_owned();
        let problem = ProblemKind::WrongKind {
            node,
            name: name.value.clone(),
            what,
            expected,
            help,
        };
        self.report(problem, vec![label(name.span, text)]);
    }
}
