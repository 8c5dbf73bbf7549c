//! `template NAME { param …; stage …; image … }`: a parameterised group of
//! nodes, defined once in a file and instantiated (`instance.rs`) any
//! number of times, there or in a file that imports it. Like a macro, an
//! instance is written where it is used: its paths are relative to the
//! directory of the file that instantiates it, its names resolve in the
//! file that defines the template.
//!
//! A definition is read here: its params, and the names its body declares
//! (so a file can name an instance's nodes, `hello.build`, before the
//! instance is validated). Its body is validated once per instance, in the
//! scope of the file that defines it: that file's names, args, imports and
//! templates, snapshotted when the file's names are all declared
//! ([`FileScope`]). Pure: reads only the KDL it is given.

use std::collections::BTreeMap;
use std::sync::Arc;

use kdl::{KdlNode, KdlValue};
use miette::SourceSpan;

use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::name_table::{Kind, Layered, TemplateRef};
use super::{Name, Spanned};

/// What a template's body may hold.
pub(crate) const TEMPLATE_NODES: &[&str] = &["param", "stage", "base", "fetch", "image"];

/// One template, as its file defines it.
#[derive(Debug)]
pub(crate) struct TemplateDef {
    pub name: String,
    /// The `template` node (its params and body).
    pub node: KdlNode,
    pub params: Vec<Param>,
    /// The names the body's stages, bases, fetches and images declare.
    pub own: Vec<(String, Kind, SourceSpan)>,
    /// The body's instances: (template as written, instance name).
    pub instances: Vec<(String, String)>,
    /// The scope of its file, once that file's names are declared.
    pub scope: Option<Arc<FileScope>>,
}

/// `param NAME default=… type="…"`.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: Spanned<Name>,
    pub ty: ParamType,
    /// `None`: the instance must give it.
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamType {
    String,
    Integer,
}

impl ParamType {
    pub fn a(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
        }
    }
}

/// What a template's body resolves names against: its file's names, args,
/// imports and templates. (Its paths are the instantiating file's.)
#[derive(Debug)]
pub(crate) struct FileScope {
    pub names: Arc<BTreeMap<String, (Kind, SourceSpan)>>,
    pub args: BTreeMap<String, Option<String>>,
    pub aliases: Arc<BTreeMap<String, (String, SourceSpan)>>,
    pub templates: Arc<BTreeMap<String, TemplateRef>>,
}

impl Cx {
    /// What a template of this file resolves against: a snapshot, taken
    /// once every name of the file is declared.
    pub fn scope(&self) -> FileScope {
        FileScope {
            names: Arc::new(self.names.names.flatten()),
            args: self.args.clone(),
            aliases: Arc::new(self.aliases.flatten()),
            templates: Arc::new(self.templates.flatten()),
        }
    }

    /// Reads a `template` node, to be template `id`, and names it in this
    /// file; `None` (with problems reported) if it cannot be one.
    pub fn define_template(&mut self, node: &KdlNode, id: usize) -> Option<TemplateDef> {
        self.check_props(node, &[]);
        let example = "template go-program { param main; stage build { … } }";
        let args = self.args(node, (1, 1), "a name", example);
        let name = args.first().and_then(|e| self.raw_string(node, e))?;
        if Name::local(&name.value).is_none() {
            let kind = ProblemKind::InvalidName { name: name.value };
            self.report(kind, vec![label(name.span, "invalid name")]);
            return None;
        }
        if let Some(first) = self.template_spans.insert(name.value.clone(), name.span) {
            self.duplicate_key("Template", &name.value, first, name.span);
            return None;
        }
        let mut def = TemplateDef {
            name: name.value.clone(),
            node: node.clone(),
            params: Vec::new(),
            own: Vec::new(),
            instances: Vec::new(),
            scope: None,
        };
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let what = child.name().value();
            if what == "param" {
                def.params.extend(self.param(child, &def.params));
            } else if let Some(kind) = Kind::of(child) {
                let first = child.entries().iter().find(|e| e.name().is_none());
                if let Some(KdlValue::String(s)) = first.map(|e| e.value()) {
                    def.own
                        .push((s.clone(), kind, first.map_or(child.span(), |e| e.span())));
                }
            } else if !TEMPLATE_NODES.contains(&what) {
                let first = child.entries().iter().find(|e| e.name().is_none());
                if let Some(KdlValue::String(s)) = first.map(|e| e.value()) {
                    def.instances.push((what.to_owned(), s.clone()));
                }
            }
        }
        let at = TemplateRef {
            id,
            alias: String::new(),
        };
        self.templates.insert(name.value, at);
        Some(def)
    }

    fn param(&mut self, node: &KdlNode, before: &[Param]) -> Option<Param> {
        self.check_props(node, &["default", "type"]);
        self.no_children(node);
        let example = "param main default=\".\"";
        let args = self.args(node, (1, 1), "a name", example);
        let name = args.first().and_then(|e| self.raw_string(node, e))?;
        let Some(valid) = Name::local(&name.value) else {
            let kind = ProblemKind::InvalidName { name: name.value };
            self.report(kind, vec![label(name.span, "invalid name")]);
            return None;
        };
        if let Some(first) = before.iter().find(|p| p.name.value == valid) {
            self.duplicate_key("Param", &name.value, first.name.span, name.span);
            return None;
        }
        let default = self.prop(node, "default");
        let ty = match self.prop(node, "type") {
            None => match default.map(|d| d.value()) {
                Some(KdlValue::Integer(_)) => ParamType::Integer,
                _ => ParamType::String,
            },
            Some(entry) => match entry.value() {
                KdlValue::String(s) if s == "string" => ParamType::String,
                KdlValue::String(s) if s == "integer" => ParamType::Integer,
                other => {
                    self.wrong_type(node, entry, "\"string\" or \"integer\"", other)?;
                    return None;
                }
            },
        };
        let default = match default {
            None => None,
            Some(entry) => Some(self.param_value(node, entry, ty)?),
        };
        Some(Param {
            name: Spanned {
                value: valid,
                span: name.span,
            },
            ty,
            default,
        })
    }

    /// A param's value (a default, or given by an instance) as the text
    /// `${param}` becomes; a value of another type is reported.
    pub fn param_value(
        &mut self,
        node: &KdlNode,
        entry: &kdl::KdlEntry,
        ty: ParamType,
    ) -> Option<String> {
        match (ty, entry.value()) {
            (ParamType::String, KdlValue::String(_)) => self.string(node, entry).map(|s| s.value),
            (ParamType::Integer, KdlValue::Integer(i)) => Some(i.to_string()),
            (ty, other) => self.wrong_type(node, entry, ty.a(), other),
        }
    }
}

/// Names an instance may declare, nested instances' included: more is
/// refused at instantiation (`loader::MAX_INSTANCES`), and an instance of
/// a template that doubles at each of 16 levels declares too many names.
const MAX_DECLARED: usize = 100_000;

/// Appends to `names` those an instance of template `id` declares, its
/// nested instances' too (`inner.x`), each after `prefix`, as written in
/// the template; `table` resolves the templates of a file whose scope is
/// not snapshotted yet. A template that instantiates itself declares what
/// it can (instantiating it is the diagnostic).
pub(crate) fn declared(
    templates: &[TemplateDef],
    id: usize,
    table: &Layered<TemplateRef>,
    stack: &mut Vec<usize>,
    prefix: &str,
    names: &mut Vec<(String, Kind, SourceSpan)>,
) {
    let Some(def) = templates.get(id) else {
        return;
    };
    for (name, kind, span) in &def.own {
        if names.len() >= MAX_DECLARED {
            return;
        }
        names.push((format!("{prefix}{name}"), *kind, *span));
    }
    let theirs = def
        .scope
        .as_ref()
        .map(|s| Layered::over(s.templates.clone()));
    let table = theirs.as_ref().unwrap_or(table);
    for (template, instance) in &def.instances {
        let Some(at) = table.get(template) else {
            continue;
        };
        // Deeper than an instance may nest is refused when instantiated.
        let deep = stack.len() > super::loader::MAX_INSTANCE_DEPTH;
        if deep || stack.contains(&at.id) || names.len() >= MAX_DECLARED {
            continue;
        }
        stack.push(at.id);
        let inner = format!("{prefix}{instance}.");
        declared(templates, at.id, table, stack, &inner, names);
        stack.pop();
    }
}
