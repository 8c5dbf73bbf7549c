//! `TEMPLATE INSTANCE param=value …`: one instance of a template, its nodes
//! seen as `INSTANCE.NAME`.
//!
//! The template's body is validated in the scope of the file that defines
//! it (`template::FileScope`: its directory, names, args, imports and
//! templates), with each param an arg of the body (given here, or its
//! default). The nodes come out named as the body writes them, then the
//! body's own names get the instance's name before them and the others the
//! alias path to the template's file, as an import's do; each node's scope
//! becomes the instance's, so keys take both off again. Problems inside
//! the body point into the template, with a second label here.

use std::collections::{BTreeMap, BTreeSet};

use kdl::KdlNode;

use super::Name;
use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::help::suggest;
use super::loader::{Loader, MAX_INSTANCE_DEPTH, MAX_INSTANCE_NODES, MAX_INSTANCES};
use super::name_table::{Layered, TemplateRef};
use super::qualify::Parts;
use super::template::{TEMPLATE_NODES, declared};

impl Cx {
    /// Declares the names an instance's nodes will have (`hello.build`),
    /// so the file can refer to them in any order.
    pub fn declare_instance(&mut self, node: &KdlNode, loader: &mut Loader) {
        let template = node.name().value();
        let Some(at) = self.templates.get(template).cloned() else {
            return;
        };
        let first = node.entries().iter().find(|e| e.name().is_none());
        let Some(kdl::KdlValue::String(instance)) = first.map(|e| e.value()) else {
            return;
        };
        let span = first.map_or(node.span(), |e| e.span());
        if Name::local(instance).is_none() {
            return;
        }
        if let Some((_, first)) = self.aliases.get(instance) {
            let labels = vec![label(*first, "first here"), label(span, "again here")];
            let kind = ProblemKind::AliasClash {
                alias: instance.clone(),
            };
            return self.report(kind, labels);
        }
        let what = format!("an instance of `{template}`");
        self.aliases.insert(instance.clone(), (what, span));
        let mut names = Vec::new();
        let table = &self.templates;
        declared(
            &loader.templates,
            at.id,
            table,
            &mut vec![at.id],
            "",
            &mut names,
        );
        // A file's own instances declare every node they will make (their
        // nested instances are declared again inside, not counted again):
        // past what instances may make, instantiating is refused, and the
        // names are not worth their memory (2,000 instances of a body of
        // 1,000 stages would declare 2,000,000).
        if loader.instantiating.is_empty() {
            loader.declared_names += names.len();
        }
        if loader.declared_names > MAX_INSTANCE_NODES {
            return;
        }
        for (name, kind, _) in names {
            self.names
                .names
                .insert_new(format!("{instance}.{name}"), (kind, span));
        }
    }

    /// Instantiates the template `node` names; its nodes as this file
    /// sees them, `None` when there are problems (reported).
    pub fn instantiate(&mut self, node: &KdlNode, loader: &mut Loader) -> Option<Parts> {
        let template = node.name().value().to_owned();
        let at = self.templates.get(&template).cloned()?;
        let example = "go-program hello main=\"./cmd/hello\"";
        self.no_children(node);
        let args = self.args(node, (1, 1), "an instance name", example);
        let instance = args.first().and_then(|e| self.raw_string(node, e))?;
        let Some(name) = Name::local(&instance.value) else {
            let kind = ProblemKind::InvalidName {
                name: instance.value,
            };
            self.report(kind, vec![label(instance.span, "invalid name")]);
            return None;
        };
        let params = self.params(node, &at, loader, &name)?;
        if let Some(from) = loader
            .instantiating
            .iter()
            .position(|(id, ..)| *id == at.id)
        {
            self.template_cycle(loader, from, node);
            return None;
        }
        if loader.instantiating.len() >= MAX_INSTANCE_DEPTH {
            let kind = ProblemKind::InstancesTooDeep {
                max: MAX_INSTANCE_DEPTH,
            };
            self.report(kind, vec![label(instance.span, "one too deep")]);
            return None;
        }
        if loader.instance_nodes >= MAX_INSTANCE_NODES {
            let kind = ProblemKind::TooManyInstanceNodes {
                max: MAX_INSTANCE_NODES,
            };
            // Once, at the first instance refused, not at every one after.
            if loader.reported.insert((usize::MAX, kind.to_string(), 0)) {
                self.report(kind, vec![label(instance.span, "one too many")]);
            }
            return None;
        }
        if loader.instances >= MAX_INSTANCES {
            let kind = ProblemKind::TooManyInstances { max: MAX_INSTANCES };
            self.report(kind, vec![label(instance.span, "one too many")]);
            return None;
        }
        loader.instances += 1;
        let def = &loader.templates[at.id];
        let scope = (def.scope.clone())
            .expect("kiln bug: a template is instantiated once its file's names are declared");
        let body = def.node.clone();
        // Names resolve in the template's file; paths in the directory of
        // the file that instantiates it, where the body is written.
        let mut cx = Cx::new(self.context.clone());
        cx.file = self.file.clone();
        cx.names.names = Layered::over(scope.names.clone());
        cx.args = scope.args.clone();
        cx.args
            .extend(params.into_iter().map(|(k, v)| (k, Some(v))));
        cx.aliases = Layered::over(scope.aliases.clone());
        cx.templates = Layered::over(scope.templates.clone());
        let nodes = body.children().map(|c| c.nodes()).unwrap_or_default();
        if let Some(doc) = body.children() {
            cx.declare_names(doc);
        }
        for child in nodes {
            if cx.templates.contains_key(child.name().value()) {
                cx.declare_instance(child, loader);
            }
        }
        let chain = loader.instantiating.iter().map(|(.., n)| n.as_str());
        let scope: Vec<&str> = std::iter::once(loader.alias())
            .filter(|a| !a.is_empty())
            .chain(chain)
            .chain([name.as_str()])
            .collect();
        let scope = scope.join(".");
        loader.instance_dirs.insert(scope, self.context.clone());
        loader
            .instantiating
            .push((at.id, node.name().span(), name.to_string()));
        let mut parts = Parts::default();
        for child in nodes {
            let made = matches!(child.name().value(), "stage" | "base" | "fetch" | "image");
            if made && loader.instance_nodes >= MAX_INSTANCE_NODES {
                let kind = ProblemKind::TooManyInstanceNodes {
                    max: MAX_INSTANCE_NODES,
                };
                loader.reported.insert((usize::MAX, kind.to_string(), 0));
                cx.report(kind, vec![label(child.name().span(), "one too many")]);
                break;
            }
            loader.instance_nodes += usize::from(made);
            match child.name().value() {
                "param" => {}
                "stage" => parts.stages.extend(cx.stage(child)),
                "base" => parts.bases.extend(cx.base(child)),
                "fetch" => parts.fetches.extend(cx.fetch(child)),
                "image" => parts.images.extend(cx.image(child)),
                other if cx.templates.contains_key(other) => {
                    parts.extend(cx.instantiate(child, loader).unwrap_or_default());
                }
                _ => cx.unknown_top(child, "a template", TEMPLATE_NODES),
            }
        }
        loader.instantiating.pop();
        cx.check_cycles(&parts.stages, &parts.images);
        let clean = cx.problems.is_empty();
        for mut problem in cx.problems {
            let seen = (at.id, problem.to_string(), problem.offset());
            if !loader.reported.insert(seen) {
                continue;
            }
            if !matches!(problem.kind, ProblemKind::TemplateCycle { .. }) {
                problem.add_label(label(instance.span, "instantiated here"));
            }
            self.problems.push(problem);
        }
        clean.then(|| qualify(parts, name.as_str(), &at.alias))
    }

    /// Reports `node`, at the top of a file or a template's body, as
    /// neither a node kiln knows nor a template this file can instantiate,
    /// with a did-you-mean among both (`go.go-progam` → `go.go-program`).
    pub fn unknown_top(&mut self, node: &KdlNode, parent: &str, known: &'static [&'static str]) {
        let templates = self.templates.keys();
        let suggestion = suggest(node.name().value(), known.iter().copied().chain(templates));
        self.report_unknown(node, parent, known, suggestion);
    }

    /// The values of the template's params for this instance: given, or
    /// the defaults; unknown, missing and mistyped ones reported.
    fn params(
        &mut self,
        node: &KdlNode,
        at: &TemplateRef,
        loader: &Loader,
        instance: &Name,
    ) -> Option<BTreeMap<String, String>> {
        let def = &loader.templates[at.id];
        let (template, declared) = (def.name.clone(), def.params.clone());
        let mut values = BTreeMap::new();
        let mut ok = true;
        let mut seen: BTreeMap<String, miette::SourceSpan> = BTreeMap::new();
        for entry in node.entries() {
            let Some(key) = entry.name() else { continue };
            if let Some(first) = seen.insert(key.value().to_owned(), entry.span()) {
                self.duplicate_key("Param", key.value(), first, entry.span());
                ok = false;
                continue;
            }
            let Some(param) = declared
                .iter()
                .find(|p| p.name.value.as_str() == key.value())
            else {
                let names = declared.iter().map(|p| p.name.value.as_str());
                let kind = ProblemKind::UnknownParam {
                    name: key.value().to_owned(),
                    template: template.clone(),
                    declared: names.clone().map(str::to_owned).collect(),
                    suggestion: suggest(key.value(), names),
                };
                self.report(kind, vec![label(key.span(), "not a param")]);
                ok = false;
                continue;
            };
            match self.param_value(node, entry, param.ty) {
                Some(value) => {
                    values.insert(key.value().to_owned(), value);
                }
                None => ok = false,
            }
        }
        for param in &declared {
            let name = param.name.value.as_str();
            match (&param.default, values.contains_key(name)) {
                (_, true) => {}
                (Some(default), false) => {
                    values.insert(name.to_owned(), default.clone());
                }
                (None, false) => {
                    let kind = ProblemKind::MissingParam {
                        name: name.to_owned(),
                        template: template.clone(),
                        instance: instance.to_string(),
                    };
                    let text = format!("no `{name}=`");
                    self.report(kind, vec![label(node.name().span(), text)]);
                    ok = false;
                }
            }
        }
        ok.then_some(values)
    }

    /// Reports `node`, an instance of a template already being
    /// instantiated at `loader.instantiating[from]`: every instance of the
    /// chain from there is an edge.
    fn template_cycle(&mut self, loader: &Loader, from: usize, node: &KdlNode) {
        let chain = &loader.instantiating[from..];
        let name = |id: usize| loader.templates[id].name.clone();
        let mut templates: Vec<String> = chain.iter().map(|(id, ..)| name(*id)).collect();
        templates.push(name(chain[0].0));
        let mut labels = Vec::new();
        for (i, (_, span, _)) in chain.iter().enumerate().skip(1) {
            let text = format!("`{}` instantiates `{}`", templates[i - 1], templates[i]);
            labels.push(label(*span, text));
        }
        let last = &templates[templates.len() - 2];
        let text = format!("`{last}` instantiates `{}`", templates[0]);
        labels.push(label(node.name().span(), text));
        self.report(ProblemKind::TemplateCycle { templates }, labels);
    }
}

/// An instance's nodes, named as the template's body writes them, as the
/// file holding the instance sees them: the body's own names after the
/// instance's name, the others after the alias path to the template's file.
fn qualify(parts: Parts, instance: &str, alias: &str) -> Parts {
    let own: BTreeSet<String> = parts.names().map(|(n, _)| n.value.to_string()).collect();
    let rename = |name: &Name| match (own.contains(name.as_str()), alias.is_empty()) {
        (true, _) => name.qualified(instance),
        (false, true) => name.clone(),
        (false, false) => name.qualified(alias),
    };
    parts.renamed(rename, instance)
}
