//! `image NAME { … }` nodes → [`Image`]: the root, contents (see
//! `content`), and the OCI config fields.

use std::collections::{BTreeMap, BTreeSet};

use kdl::KdlNode;
use miette::SourceSpan;

use super::content::node_span;
use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::name_table::Kind;
use super::names::node_name;
use super::values::{check_tag, is_signal, is_user, parse_port};
use super::{Command, Image, ImageRoot, Spanned};

const IMAGE_NODES: &[&str] = &[
    "from",
    "copy",
    "add",
    "entrypoint",
    "cmd",
    "env",
    "workdir",
    "user",
    "expose",
    "label",
    "volume",
    "stop-signal",
    "tag",
    "layers",
];
const MANY: usize = usize::MAX;

/// Spans of the nodes an image may hold once, and of env and label keys.
#[derive(Default)]
struct Seen {
    once: BTreeMap<&'static str, Option<SourceSpan>>,
    env: BTreeMap<String, SourceSpan>,
    labels: BTreeMap<String, SourceSpan>,
    ports: BTreeSet<(u16, &'static str)>,
}

impl Cx {
    pub fn image(&mut self, node: &KdlNode) -> Option<Image> {
        let name = node_name(&self.names, node)?;
        self.check_props(node, &[]);
        let mut image = Image::new(name);
        let mut seen = Seen::default();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            self.image_child(child, &mut image, &mut seen);
        }
        image.expose = seen
            .ports
            .iter()
            .map(|(port, proto)| format!("{port}/{proto}"))
            .collect();
        Some(image)
    }

    fn image_child(&mut self, child: &KdlNode, image: &mut Image, seen: &mut Seen) {
        let Some(&kind) = IMAGE_NODES.iter().find(|k| **k == child.name().value()) else {
            return self.unknown_node(child, "an image", IMAGE_NODES);
        };
        let single = [
            "from",
            "entrypoint",
            "cmd",
            "workdir",
            "user",
            "stop-signal",
            "layers",
        ];
        if single.contains(&kind)
            && !self.once(seen.once.entry(kind).or_default(), child, "an image")
        {
            return;
        }
        if kind != "copy" {
            self.no_children(child);
        }
        match kind {
            "from" => image.from = self.image_root(child).unwrap_or(image.from.clone()),
            "copy" => image.contents.extend(self.copy(child)),
            "add" => image.contents.extend(self.add(child)),
            "entrypoint" => image.entrypoint = self.command(child),
            "cmd" => image.cmd = self.command(child),
            "env" => self.env(child, &mut image.env, &mut seen.env),
            "workdir" => image.workdir = self.one_path(child, "workdir \"/app\""),
            "user" => image.user = self.checked(child, is_user, "user \"1000:1000\""),
            "stop-signal" => {
                let signal = self.checked(child, is_signal, "stop-signal \"SIGTERM\"");
                image.stop_signal = signal.map(|s| s.value);
            }
            "expose" => self.expose(child, &mut seen.ports),
            "label" => self.labels(child, &mut image.labels, &mut seen.labels),
            "volume" => {
                self.check_props(child, &[]);
                for entry in self.args(child, (1, MANY), "a path", "volume \"/data\"") {
                    let path = self.string(child, entry).and_then(|p| self.image_path(&p));
                    image.volumes.extend(path.map(|p| p.value));
                }
            }
            "tag" => self.tags(child, &mut image.tags),
            "layers" => image.max_layers = self.layers(child).unwrap_or(image.max_layers),
            _ => unreachable!("kiln bug: `{kind}` is in IMAGE_NODES but not handled"),
        }
    }

    /// `from scratch|BASE|IMAGE` in an image.
    fn image_root(&mut self, node: &KdlNode) -> Option<Spanned<ImageRoot>> {
        self.check_props(node, &[]);
        let args = self.args(node, (1, 1), "a root", "from scratch");
        let name = self.string(node, args.first()?)?;
        let expected = "`scratch`, a base or an image";
        if name.value == "scratch" {
            return Some(Spanned {
                value: ImageRoot::Scratch,
                span: name.span,
            });
        }
        if name.value == "host" {
            let help = "An image holds only what it copies: start `from scratch` and `copy` from a stage built `from host`";
            self.wrong_kind("from", &name, "the host", expected, help.to_owned());
            return None;
        }
        let (kind, resolved) = self.resolve(&name)?;
        let value = match kind {
            Kind::Base => ImageRoot::Base(resolved),
            Kind::Image => ImageRoot::Image(resolved),
            Kind::Stage | Kind::Fetch => {
                let help = format!(
                    "Take files from {} with `copy {resolved} \"path\" to=\"/dest\"`",
                    kind.a()
                );
                self.wrong_kind("from", &name, kind.a(), expected, help);
                return None;
            }
        };
        Some(Spanned {
            value,
            span: name.span,
        })
    }

    /// `entrypoint "prog" "arg"…` or `entrypoint "cmd line" shell=#true`.
    fn command(&mut self, node: &KdlNode) -> Option<Spanned<Command>> {
        self.check_props(node, &["shell"]);
        let args = self.args(
            node,
            (1, MANY),
            "a program",
            "entrypoint \"/app/server\" \"--port=80\"",
        );
        let argv: Vec<String> = args
            .iter()
            .filter_map(|e| self.string(node, e))
            .map(|s| s.value)
            .collect();
        let shell = match self.prop(node, "shell") {
            Some(entry) => self.boolean(node, entry)?,
            None => false,
        };
        if argv.len() != args.len() || argv.is_empty() {
            return None;
        }
        let value = match (shell, <[String; 1]>::try_from(argv)) {
            (true, Ok([line])) => Command::Shell(line),
            (true, Err(_)) => {
                let kind = ProblemKind::ShellArity {
                    node: node.name().value().to_owned(),
                };
                self.report(kind, vec![label(node_span(node), "several arguments")]);
                return None;
            }
            (false, Ok(one)) => Command::Exec(one.to_vec()),
            (false, Err(argv)) => Command::Exec(argv),
        };
        Some(Spanned {
            value,
            span: node_span(node),
        })
    }

    fn one_path(&mut self, node: &KdlNode, example: &'static str) -> Option<Spanned<String>> {
        self.check_props(node, &[]);
        let args = self.args(node, (1, 1), "a path", example);
        let path = self.string(node, args.first()?)?;
        self.image_path(&path)
    }

    /// One string argument that `valid` accepts.
    fn checked(
        &mut self,
        node: &KdlNode,
        valid: fn(&str) -> bool,
        example: &'static str,
    ) -> Option<Spanned<String>> {
        self.check_props(node, &[]);
        let args = self.args(node, (1, 1), "a value", example);
        let value = self.string(node, args.first()?)?;
        if !valid(&value.value) {
            let kind = match node.name().value() {
                "user" => ProblemKind::BadUser {
                    value: value.value.clone(),
                },
                _ => ProblemKind::BadSignal {
                    value: value.value.clone(),
                },
            };
            self.report(kind, vec![label(value.span, "invalid")]);
            return None;
        }
        Some(value)
    }

    fn expose(&mut self, node: &KdlNode, ports: &mut BTreeSet<(u16, &'static str)>) {
        self.check_props(node, &[]);
        for entry in self.args(node, (1, MANY), "a port", "expose 8080 \"53/udp\"") {
            let value = entry.value();
            let value = match value {
                kdl::KdlValue::String(_) => self
                    .string(node, entry)
                    .map(|s| kdl::KdlValue::String(s.value)),
                other => Some(other.clone()),
            };
            let Some(value) = value else { continue };
            match parse_port(&value) {
                Some(port) => {
                    ports.insert(port);
                }
                None => {
                    let kind = ProblemKind::BadPort {
                        value: value
                            .as_string()
                            .map_or_else(|| value.to_string(), str::to_owned),
                    };
                    self.report(kind, vec![label(entry.span(), "not a port")]);
                }
            }
        }
    }

    fn labels(
        &mut self,
        node: &KdlNode,
        labels: &mut BTreeMap<String, String>,
        spans: &mut BTreeMap<String, SourceSpan>,
    ) {
        self.args(node, (0, 0), "", "label description=\"…\"");
        for entry in node.entries() {
            let Some(key) = entry.name() else { continue };
            if key.value().is_empty() {
                let kind = ProblemKind::Empty {
                    what: "label key",
                    help: "Name the label: `label description=\"…\"`",
                };
                self.report(kind, vec![label(entry.span(), "no key")]);
                continue;
            }
            if let Some(first) = spans.insert(key.value().to_owned(), entry.span()) {
                self.duplicate_key("Label", key.value(), first, entry.span());
                continue;
            }
            if let Some(value) = self.scalar(node, entry) {
                labels.insert(key.value().to_owned(), value);
            }
        }
    }

    fn tags(&mut self, node: &KdlNode, tags: &mut Vec<Spanned<String>>) {
        self.check_props(node, &[]);
        for entry in self.args(node, (1, MANY), "a reference", "tag \"app:v1\"") {
            let Some(tag) = self.string(node, entry) else {
                continue;
            };
            match check_tag(&tag.value) {
                Ok(value) if !tags.iter().any(|t| t.value == value) => {
                    tags.push(Spanned {
                        value,
                        span: tag.span,
                    });
                }
                Ok(_) => {}
                Err(reason) => {
                    let kind = ProblemKind::BadTag {
                        tag: tag.value.clone(),
                        reason,
                    };
                    self.report(kind, vec![label(tag.span, "invalid reference")]);
                }
            }
        }
    }

    fn layers(&mut self, node: &KdlNode) -> Option<u32> {
        self.check_props(node, &["max"]);
        self.args(node, (0, 0), "", "layers max=50");
        let entry = self.required(node, "max", "layers max=50")?;
        let max = self.integer(node, entry)?;
        match u32::try_from(max) {
            Ok(n @ 1..=127) => Some(n),
            _ => {
                self.report(
                    ProblemKind::BadLayers { value: max },
                    vec![label(entry.span(), "not in 1..=127")],
                );
                None
            }
        }
    }
}
