//! `copy` and `add` lines of an image → [`Content`], with their attributes
//! (`to=`, `mode=`, `owner=`, `closure=`, `closure-extra`).

use kdl::KdlNode;
use miette::SourceSpan;

use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::name_table::Kind;
use super::values::{parse_mode, parse_owner};
use super::{Content, ContentAttrs, Owner, Spanned, SrcPath};

const COPY_EXAMPLE: &str = "copy server \"goapp\" to=\"/app/goapp\"";
const ADD_EXAMPLE: &str = "add \"templates\" to=\"/app/templates\"";

/// From the node's name to its last entry: the node without its trailing
/// whitespace or children block.
pub(crate) fn node_span(node: &KdlNode) -> SourceSpan {
    let start = node.name().span().offset();
    let end = node
        .entries()
        .iter()
        .map(|e| e.span().offset() + e.span().len())
        .chain([start + node.name().span().len()])
        .max()
        .unwrap_or(start);
    SourceSpan::from(start..end)
}

/// A value as the user wrote it: integers in octal, strings unquoted.
fn written(value: &kdl::KdlValue) -> String {
    match value {
        kdl::KdlValue::Integer(i) if *i >= 0 => format!("0o{i:o}"),
        kdl::KdlValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Cx {
    pub fn copy(&mut self, node: &KdlNode) -> Option<Content> {
        self.check_props(node, &["to", "mode", "owner", "closure"]);
        let args = self.args(node, (2, 2), "a stage and a path", COPY_EXAMPLE);
        let stage = args.first().and_then(|e| self.string(node, e));
        let stage = stage.and_then(|s| self.copied_stage(&s));
        let path = args.get(1).and_then(|e| self.string(node, e));
        let path = path.and_then(|path| match SrcPath::new(&path.value) {
            Some(value) => Some(Spanned {
                value,
                span: path.span,
            }),
            None => {
                let kind = ProblemKind::CopyPathEscapes {
                    path: path.value.clone(),
                };
                self.report(kind, vec![label(path.span, "outside the stage output")]);
                None
            }
        });
        let mut attrs = self.attrs(node, COPY_EXAMPLE);
        if let Some(entry) = self.prop(node, "closure") {
            let closure = self.boolean(node, entry);
            if let Some(attrs) = &mut attrs {
                attrs.closure = closure.unwrap_or(true);
            }
        }
        let extra = self.closure_extra(node);
        let mut attrs = attrs?;
        attrs.closure_extra = extra;
        Some(Content::Copy {
            stage: stage?,
            path: path?,
            attrs,
        })
    }

    fn copied_stage(&mut self, name: &Spanned<String>) -> Option<Spanned<super::Name>> {
        let (kind, resolved) = self.resolve(name)?;
        if kind != Kind::Stage {
            let help = match kind {
                Kind::Fetch => format!(
                    "Use the fetch in a stage with `use {resolved}`, then copy from that stage"
                ),
                _ => format!(
                    "To build on {} `{resolved}`, write `from {resolved}`",
                    kind.noun()
                ),
            };
            self.wrong_kind("copy", name, kind.a(), "a stage", help);
            return None;
        }
        Some(Spanned {
            value: resolved,
            span: name.span,
        })
    }

    /// The `{ closure-extra "/abs"… }` block of a `copy`.
    fn closure_extra(&mut self, node: &KdlNode) -> Vec<String> {
        let mut extra = Vec::new();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            if child.name().value() != "closure-extra" {
                self.unknown_node(child, "a `copy` block", &["closure-extra"]);
                continue;
            }
            self.check_props(child, &[]);
            self.no_children(child);
            let example = "closure-extra \"/etc/ssl/certs/ca-certificates.crt\"";
            for entry in self.args(child, (1, usize::MAX), "a path", example) {
                let path = self.string(child, entry);
                extra.extend(path.and_then(|p| self.image_path(&p)).map(|p| p.value));
            }
        }
        extra
    }

    pub fn add(&mut self, node: &KdlNode) -> Option<Content> {
        self.check_props(node, &["to", "mode", "owner"]);
        self.no_children(node);
        let args = self.args(node, (1, 1), "a source path", ADD_EXAMPLE);
        let src = args.first().and_then(|e| self.string(node, e));
        let src = src.and_then(|s| self.src_path(&s));
        let attrs = self.attrs(node, ADD_EXAMPLE);
        Some(Content::Add {
            src: src?,
            attrs: attrs?,
        })
    }

    /// `to=` (required), `mode=` and `owner=` of a `copy` or `add`.
    fn attrs(&mut self, node: &KdlNode, example: &'static str) -> Option<ContentAttrs> {
        let to = self
            .required(node, "to", example)
            .and_then(|e| self.string(node, e));
        let to = to.and_then(|to| self.image_path(&to));
        let mode = match self.prop(node, "mode") {
            Some(entry) => match parse_mode(entry.value()) {
                Some(mode) => Some(Some(mode)),
                None => {
                    let kind = ProblemKind::BadMode {
                        value: written(entry.value()),
                    };
                    self.report(
                        kind,
                        vec![label(entry.span(), "not an octal mode up to 0o7777")],
                    );
                    None
                }
            },
            None => Some(None),
        };
        let owner = match self.prop(node, "owner") {
            Some(entry) => self.string(node, entry).and_then(|owner| {
                let parsed = parse_owner(&owner.value);
                if parsed.is_none() {
                    let kind = ProblemKind::BadOwner {
                        value: owner.value.clone(),
                    };
                    self.report(kind, vec![label(owner.span, "not `UID:GID`")]);
                }
                parsed
            }),
            None => Some(Owner::default()),
        };
        Some(ContentAttrs {
            to: to?,
            mode: mode?,
            owner: owner?,
            closure: true,
            closure_extra: Vec::new(),
            span: node_span(node),
        })
    }
}
