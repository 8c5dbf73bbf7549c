//! The validation context: what every check needs (declared args, the name
//! table, the build context) and the problems found so far, plus typed
//! access to the raw KDL layer. Raw KDL nodes keep every span; this is the
//! one place that turns an entry into a checked value or a diagnostic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::{LabeledSpan, SourceSpan};

use super::Spanned;
use super::error::{Problem, ProblemKind, label};
use super::help::suggest;
use super::name_table::{Layered, NameTable, TemplateRef};

/// Everything a check reads, and where it reports.
pub(crate) struct Cx {
    pub problems: Vec<Problem>,
    /// Declared args by name: `None` when the arg has no value.
    pub args: BTreeMap<String, Option<String>>,
    pub names: NameTable,
    /// The canonical directory holding kiln.kdl, or the imported file
    /// being checked: what its paths are relative to.
    pub context: PathBuf,
    /// The imported file being checked, as diagnostics name it (`None`:
    /// kiln.kdl).
    pub file: Option<String>,
    /// This file's imports and template instances: alias → what it is
    /// (`imported from `go.kdl``, `an instance of `go-program``) and the
    /// alias's span.
    pub aliases: Layered<(String, SourceSpan)>,
    /// The templates this file can instantiate, by the name it uses.
    pub templates: Layered<TemplateRef>,
    /// Where this file defines each of its own templates.
    pub template_spans: BTreeMap<String, SourceSpan>,
    /// How many more name comparisons did-you-mean may make: comparing every
    /// unknown name with every declared one is quadratic (20,000 of each
    /// took minutes), and only the first problems are shown anyway.
    suggestion_budget: usize,
}

/// Enough for a suggestion on every problem of any hand-written kiln.kdl
/// (and about a second of comparisons in a debug build).
const SUGGESTION_BUDGET: usize = 200_000;

impl Cx {
    pub fn new(context: PathBuf) -> Cx {
        Cx {
            problems: Vec::new(),
            args: BTreeMap::new(),
            names: Default::default(),
            context,
            file: None,
            aliases: Layered::default(),
            templates: Layered::default(),
            template_spans: BTreeMap::new(),
            suggestion_budget: SUGGESTION_BUDGET,
        }
    }

    /// Whether a did-you-mean among `candidates` names is still affordable
    /// (and if so, spends them from the budget).
    pub fn afford_suggestion(&mut self, candidates: usize) -> bool {
        match self.suggestion_budget.checked_sub(candidates) {
            Some(left) => {
                self.suggestion_budget = left;
                true
            }
            None => false,
        }
    }

    pub fn report(&mut self, kind: ProblemKind, labels: Vec<LabeledSpan>) {
        self.problems.push(Problem::new(kind, labels));
    }

    /// Reports `node` as unknown where only `known` nodes may appear.
    pub fn unknown_node(&mut self, node: &KdlNode, parent: &str, known: &'static [&'static str]) {
        let suggestion = suggest(node.name().value(), known.iter().copied());
        self.report_unknown(node, parent, known, suggestion);
    }

    /// Reports `node` as unknown in `parent`, with `suggestion` (what
    /// [`Cx::unknown_node`] and `unknown_top` found nearest).
    pub(super) fn report_unknown(
        &mut self,
        node: &KdlNode,
        parent: &str,
        known: &'static [&'static str],
        suggestion: Option<String>,
    ) {
        let kind = ProblemKind::UnknownNode {
            name: node.name().value().to_owned(),
            parent: parent.to_owned(),
            suggestion,
            known,
        };
        self.report(kind, vec![label(node.name().span(), "unknown node")]);
    }

    /// Reports properties not in `known`, and any given twice.
    pub fn check_props(&mut self, node: &KdlNode, known: &'static [&'static str]) {
        let mut seen: BTreeMap<&str, SourceSpan> = BTreeMap::new();
        for entry in node.entries() {
            let Some(key) = entry.name() else { continue };
            let name = key.value();
            if !known.contains(&name) {
                let kind = ProblemKind::UnknownProperty {
                    name: name.to_owned(),
                    node: node.name().value().to_owned(),
                    suggestion: suggest(name, known.iter().copied()),
                    known,
                };
                self.report(kind, vec![label(key.span(), "unknown property")]);
            } else if let Some(first) = seen.insert(name, entry.span()) {
                self.duplicate_key("Property", name, first, entry.span());
            }
        }
    }

    pub fn duplicate_key(
        &mut self,
        what: &'static str,
        key: &str,
        first: SourceSpan,
        again: SourceSpan,
    ) {
        let kind = ProblemKind::DuplicateKey {
            what,
            key: key.to_owned(),
        };
        self.report(
            kind,
            vec![label(first, "first here"), label(again, "again here")],
        );
    }

    /// Reports a `{ … }` block on a node that takes none.
    pub fn no_children(&mut self, node: &KdlNode) {
        if let Some(children) = node.children() {
            let kind = ProblemKind::UnexpectedChildren {
                node: node.name().value().to_owned(),
            };
            self.report(kind, vec![label(children.span(), "not expected here")]);
        }
    }

    /// Checks that a node given at most once per parent is not repeated.
    pub fn once(&mut self, seen: &mut Option<SourceSpan>, node: &KdlNode, parent: &str) -> bool {
        let span = node.name().span();
        if let Some(first) = *seen {
            let kind = ProblemKind::DuplicateNode {
                node: node.name().value().to_owned(),
                parent: parent.to_owned(),
            };
            self.report(
                kind,
                vec![label(first, "first here"), label(span, "again here")],
            );
            return false;
        }
        *seen = Some(span);
        true
    }

    /// The positional arguments of `node`, after checking there are
    /// `min..=max` of them (`what` and `example` explain a missing one).
    pub fn args<'n>(
        &mut self,
        node: &'n KdlNode,
        (min, max): (usize, usize),
        what: &str,
        example: &'static str,
    ) -> Vec<&'n KdlEntry> {
        let args: Vec<&KdlEntry> = node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .collect();
        let name = node.name().value().to_owned();
        if args.len() < min {
            let kind = ProblemKind::Missing {
                node: name,
                what: what.to_owned(),
                example,
            };
            self.report(kind, vec![label(node.name().span(), "incomplete")]);
        } else if args.len() > max {
            let extra = args[max].span();
            self.report(
                ProblemKind::TooManyArguments { node: name, max },
                vec![label(extra, "extra")],
            );
            return args[..max].to_vec();
        }
        args
    }

    /// The property `key` of `node`; the last one if given twice (which
    /// `check_props` reports).
    pub fn prop<'n>(&self, node: &'n KdlNode, key: &str) -> Option<&'n KdlEntry> {
        node.entries()
            .iter()
            .rev()
            .find(|e| e.name().is_some_and(|n| n.value() == key))
    }

    /// A required property: reports it when absent.
    pub fn required<'n>(
        &mut self,
        node: &'n KdlNode,
        key: &str,
        example: &'static str,
    ) -> Option<&'n KdlEntry> {
        let entry = self.prop(node, key);
        if entry.is_none() {
            let kind = ProblemKind::Missing {
                node: node.name().value().to_owned(),
                what: format!("a `{key}=` property"),
                example,
            };
            self.report(
                kind,
                vec![label(node.name().span(), format!("no `{key}=`"))],
            );
        }
        entry
    }

    /// The string value of `entry`, unsubstituted.
    pub fn raw_string(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Spanned<String>> {
        match entry.value() {
            KdlValue::String(s) => Some(Spanned {
                value: s.clone(),
                span: entry.span(),
            }),
            other => self.wrong_type(node, entry, "a string", other),
        }
    }

    /// The string value of `entry` with `${arg}` substituted.
    pub fn string(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Spanned<String>> {
        let raw = self.raw_string(node, entry)?;
        let value = self.substitute(&raw.value, raw.span)?;
        Some(Spanned {
            value,
            span: raw.span,
        })
    }

    /// A string, or an integer written as its decimal text (`env PORT=8080`).
    pub fn scalar(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<String> {
        match entry.value() {
            KdlValue::Integer(i) => Some(i.to_string()),
            KdlValue::String(_) => self.string(node, entry).map(|s| s.value),
            other => self.wrong_type(node, entry, "a string or an integer", other),
        }
    }

    pub fn integer(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<i128> {
        match entry.value() {
            KdlValue::Integer(i) => Some(*i),
            other => self.wrong_type(node, entry, "an integer", other),
        }
    }

    pub fn boolean(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<bool> {
        match entry.value() {
            KdlValue::Bool(b) => Some(*b),
            other => self.wrong_type(node, entry, "a boolean (`#true` or `#false`)", other),
        }
    }

    pub fn wrong_type<T>(
        &mut self,
        node: &KdlNode,
        entry: &KdlEntry,
        expected: &'static str,
        found: &KdlValue,
    ) -> Option<T> {
        let node = node.name().value();
        let what = match entry.name() {
            Some(key) => format!("`{node} {}=`", key.value()),
            None => format!("An argument of `{node}`"),
        };
        let kind = ProblemKind::WrongType {
            what,
            expected,
            found: type_name(found),
        };
        self.report(
            kind,
            vec![label(entry.span(), format!("expected {expected}"))],
        );
        None
    }
}

fn type_name(value: &KdlValue) -> &'static str {
    match value {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a float",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "`#null`",
    }
}
