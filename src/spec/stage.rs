//! `stage`, `base` and `fetch` nodes → [`Stage`], [`Base`], [`Fetch`].

use std::collections::BTreeMap;
use std::str::FromStr;

use kdl::KdlNode;
use miette::SourceSpan;

use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::name_table::Kind;
use super::names::node_name;
use super::nodes::RESERVED_ENV;
use super::{Base, BaseSource, Fetch, Platform, RegistryRef, Root, Spanned, Stage};
use crate::hash::Digest;

const STAGE_NODES: &[&str] = &[
    "from", "src", "use", "tools", "env", "run", "timeout", "cache",
];

const MANY: usize = usize::MAX;

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Cx {
    pub fn stage(&mut self, node: &KdlNode) -> Option<Stage> {
        let name = node_name(&self.names, node)?;
        self.check_props(node, &[]);
        let mut stage = Stage {
            from: Spanned {
                value: Root::Host,
                span: name.span,
            },
            name,
            scope: String::new(),
            srcs: Vec::new(),
            uses: Vec::new(),
            tools: Vec::new(),
            env: BTreeMap::new(),
            runs: Vec::new(),
            run_args: BTreeMap::new(),
            timeout: None,
            caches: Vec::new(),
        };
        let mut env_spans = BTreeMap::new();
        let mut cache_paths = BTreeMap::new();
        let mut from_seen = None;
        let mut timeout_seen = None;
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            match child.name().value() {
                "from" if self.once(&mut from_seen, child, "a stage") => {
                    if let Some(root) = self.stage_root(child) {
                        stage.from = root;
                    }
                }
                "from" => {}
                "timeout" if self.once(&mut timeout_seen, child, "a stage") => {
                    stage.timeout = self.timeout(child);
                }
                "timeout" => {}
                "src" => {
                    for entry in self.args(child, (1, MANY), "a path", "src \"src\" \"go.mod\"") {
                        let path = self.string(child, entry);
                        stage.srcs.extend(path.and_then(|p| self.src_path(&p)));
                    }
                }
                "use" => self.stage_uses(child, &mut stage.uses),
                "cache" => {
                    let cache = self.cache_dir(child, &mut cache_paths);
                    stage.caches.extend(cache);
                }
                "tools" => self.tools(child, &mut stage.tools),
                "env" => self.env(child, &mut stage.env, &mut env_spans),
                "run" => {
                    self.check_props(child, &[]);
                    let args = self.args(child, (1, 1), "a script", "run \"make install\"");
                    stage
                        .runs
                        .extend(args.first().and_then(|e| self.raw_string(child, e)));
                }
                _ => self.unknown_node(child, "a stage", STAGE_NODES),
            }
            if STAGE_NODES.contains(&child.name().value()) {
                self.no_children(child);
            }
        }
        stage.srcs.sort_by(|a, b| a.value.cmp(&b.value));
        stage.srcs.dedup_by(|a, b| a.value == b.value);
        let children = node.children().map(|c| c.nodes()).unwrap_or_default();
        if !children.iter().any(|c| c.name().value() == "run") {
            let kind = ProblemKind::NoRun {
                stage: stage.name.value.to_string(),
            };
            self.report(kind, vec![label(stage.name.span, "nothing to run")]);
        }
        stage.run_args = self.run_args(&stage.runs);
        self.check_environment(&stage, &env_spans);
        Some(stage)
    }

    /// `timeout "30m"`: how long the stage may run.
    fn timeout(&mut self, node: &KdlNode) -> Option<Spanned<std::time::Duration>> {
        self.check_props(node, &[]);
        let args = self.args(node, (1, 1), "a duration", "timeout \"30m\"");
        let entry = args.first()?;
        let text = self.scalar(node, entry)?;
        let span = entry.span();
        match super::values::parse_duration(&text) {
            Some(value) => Some(Spanned { value, span }),
            None => {
                let kind = ProblemKind::BadDuration { value: text };
                self.report(kind, vec![label(span, "invalid")]);
                None
            }
        }
    }

    /// Every variable a stage's scripts see names one thing: a used stage,
    /// a mentioned arg or an `env` key, none of them one kiln sets itself.
    /// Otherwise one value would silently hide another that is in the key.
    fn check_environment(&mut self, stage: &Stage, env_spans: &BTreeMap<String, SourceSpan>) {
        let mut seen: BTreeMap<String, SourceSpan> = BTreeMap::new();
        let run_span = stage.runs.first().map_or(stage.name.span, |r| r.span);
        let names = (stage.uses.iter().map(|u| (u.value.env_var(), u.span)))
            .chain(stage.run_args.keys().map(|var| (var.clone(), run_span)))
            .chain(env_spans.iter().map(|(k, span)| (k.clone(), *span)));
        for (var, span) in names {
            if RESERVED_ENV.contains(&var.as_str()) {
                let kind = ProblemKind::ReservedEnv { var };
                self.report(kind, vec![label(span, "set by kiln")]);
            } else if let Some(first) = seen.insert(var.clone(), span) {
                let labels = vec![label(first, "here"), label(span, "and here")];
                self.report(ProblemKind::EnvClash { var }, labels);
            }
        }
    }

    /// `from host|BASE|IMAGE` in a stage.
    fn stage_root(&mut self, node: &KdlNode) -> Option<Spanned<Root>> {
        self.check_props(node, &[]);
        let args = self.args(node, (1, 1), "a root", "from host");
        let name = self.string(node, args.first()?)?;
        let expected = "`host`, a base or an image";
        if name.value == "host" {
            return Some(Spanned {
                value: Root::Host,
                span: name.span,
            });
        }
        if name.value == "scratch" {
            let help = "A stage runs programs: run it `from host`, a base or an image".to_owned();
            self.wrong_kind("from", &name, "the empty root", expected, help);
            return None;
        }
        let (kind, resolved) = self.resolve(&name)?;
        let value = match kind {
            Kind::Base => Root::Base(resolved),
            Kind::Image => Root::Image(resolved),
            Kind::Stage | Kind::Fetch => {
                let help = format!(
                    "A stage's output is used with `use {resolved}` (readable at `${}`), not run from",
                    resolved.env_var()
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

    fn stage_uses(&mut self, node: &KdlNode, uses: &mut Vec<Spanned<super::Name>>) {
        self.check_props(node, &[]);
        for entry in self.args(node, (1, MANY), "a stage or fetch name", "use server") {
            let Some(name) = self.string(node, entry) else {
                continue;
            };
            let Some((kind, resolved)) = self.resolve(&name) else {
                continue;
            };
            match kind {
                Kind::Stage | Kind::Fetch => uses.push(Spanned {
                    value: resolved,
                    span: name.span,
                }),
                Kind::Base | Kind::Image => {
                    let help = format!(
                        "{} is a root: run the stage in it with `from {resolved}`",
                        kind.a()
                    );
                    let help = capitalize(&help);
                    self.wrong_kind("use", &name, kind.a(), "a stage or a fetch", help);
                }
            }
        }
    }

    fn tools(&mut self, node: &KdlNode, tools: &mut Vec<Spanned<String>>) {
        self.check_props(node, &[]);
        for entry in self.args(node, (1, MANY), "a program name", "tools go gcc") {
            let Some(tool) = self.string(node, entry) else {
                continue;
            };
            let bad = tool.value.is_empty() || tool.value.contains(['/', ' ', '\t', '\n']);
            if bad {
                let kind = ProblemKind::BadTool {
                    name: tool.value.clone(),
                };
                self.report(kind, vec![label(tool.span, "not a program name")]);
            } else if !tools.iter().any(|t| t.value == tool.value) {
                tools.push(tool);
            }
        }
    }

    /// `env K="V"…`: properties into `env`, keys checked and unique.
    pub fn env(
        &mut self,
        node: &KdlNode,
        env: &mut BTreeMap<String, String>,
        spans: &mut BTreeMap<String, SourceSpan>,
    ) {
        self.args(node, (0, 0), "", "env PORT=8080");
        for entry in node.entries() {
            let Some(key) = entry.name() else { continue };
            if !is_env_name(key.value()) {
                let kind = ProblemKind::BadEnvKey {
                    key: key.value().to_owned(),
                };
                self.report(kind, vec![label(key.span(), "invalid name")]);
                continue;
            }
            if let Some(first) = spans.insert(key.value().to_owned(), entry.span()) {
                self.duplicate_key("Env", key.value(), first, entry.span());
                continue;
            }
            if let Some(value) = self.scalar(node, entry) {
                env.insert(key.value().to_owned(), value);
            }
        }
    }

    pub fn base(&mut self, node: &KdlNode) -> Option<Base> {
        let name = node_name(&self.names, node)?;
        self.check_props(node, &[]);
        let mut source = None;
        let mut seen = None;
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let read = match child.name().value() {
                "archive" => Self::archive,
                "image" => Self::registry_image,
                _ => {
                    self.unknown_node(child, "a base", &["archive", "image"]);
                    continue;
                }
            };
            if self.once(&mut seen, child, "a base") {
                source = read(self, child);
            }
        }
        if seen.is_none() {
            let kind = ProblemKind::Missing {
                node: "base".to_owned(),
                what: "an `archive` or `image` child".to_owned(),
                example: "base golang { image \"golang:1.19@sha256:…\" }",
            };
            self.report(kind, vec![label(name.span, "no archive or image")]);
        }
        Some(Base {
            name,
            scope: String::new(),
            source: source?,
        })
    }

    /// `image "host/repo:tag@sha256:…" platform="linux/arm64"`, or by tag
    /// alone (`image "host/repo:tag"`), which kiln.lock pins.
    fn registry_image(&mut self, node: &KdlNode) -> Option<BaseSource> {
        self.check_props(node, &["platform"]);
        self.no_children(node);
        let example = "image \"registry.example/library/golang:1.19@sha256:…\"";
        let args = self.args(node, (1, 1), "a reference", example);
        let text = args.first().and_then(|e| self.string(node, e));
        let platform = match self.prop(node, "platform") {
            Some(entry) => match self.string(node, entry) {
                Some(p) => match Platform::from_str(&p.value) {
                    Ok(value) => Some(Spanned {
                        value,
                        span: p.span,
                    }),
                    Err(reason) => {
                        let kind = ProblemKind::BadPlatform {
                            value: p.value.clone(),
                            reason,
                        };
                        self.report(kind, vec![label(p.span, "invalid platform")]);
                        return None;
                    }
                },
                None => return None,
            },
            None => None,
        };
        let text = text?;
        let span = text.span;
        match RegistryRef::from_str(&text.value) {
            Ok(RegistryRef::Pinned(value)) => Some(BaseSource::Registry {
                image: Spanned { value, span },
                platform,
            }),
            Ok(RegistryRef::Tagged(value)) => Some(BaseSource::Tagged {
                image: Spanned { value, span },
                platform,
            }),
            Err(reason) => {
                let kind = ProblemKind::BadReference {
                    value: text.value.clone(),
                    reason,
                };
                self.report(kind, vec![label(span, "invalid reference")]);
                None
            }
        }
    }

    fn archive(&mut self, node: &KdlNode) -> Option<BaseSource> {
        self.check_props(node, &["digest"]);
        self.no_children(node);
        let example = "archive \"vendor/golang.tar\" digest=\"sha256:…\"";
        let args = self.args(node, (1, 1), "a path", example);
        let path = args.first().and_then(|e| self.string(node, e));
        let path = path.and_then(|p| self.src_path(&p));
        let digest = self.required(node, "digest", example);
        let digest = digest.and_then(|e| self.string(node, e))?;
        match Digest::from_str(&digest.value) {
            Ok(value) => Some(BaseSource::Archive {
                path: path?,
                digest: Spanned {
                    value,
                    span: digest.span,
                },
            }),
            Err(reason) => {
                let kind = ProblemKind::BadDigest {
                    value: digest.value.clone(),
                    reason,
                };
                self.report(kind, vec![label(digest.span, "invalid digest")]);
                None
            }
        }
    }

    pub fn fetch(&mut self, node: &KdlNode) -> Option<Fetch> {
        let name = node_name(&self.names, node)?;
        self.check_props(node, &["url", "sha256"]);
        self.no_children(node);
        let example = "fetch zlib url=\"https://…/zlib.tar.gz\" sha256=\"<hex>\"";
        let url = self
            .required(node, "url", example)
            .and_then(|e| self.string(node, e));
        let sha = self
            .required(node, "sha256", example)
            .and_then(|e| self.string(node, e));
        let url = url.filter(|url| {
            let ok = ["https://", "http://", "file://"].iter().any(|scheme| {
                url.value
                    .strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty())
            });
            if !ok {
                let kind = ProblemKind::BadUrl {
                    url: url.value.clone(),
                };
                self.report(kind, vec![label(url.span, "not http, https or file")]);
            }
            ok
        });
        let sha256 = match Digest::from_str(&format!("sha256:{}", sha.as_ref()?.value)) {
            Ok(value) => Spanned {
                value,
                span: sha.as_ref()?.span,
            },
            Err(reason) => {
                let sha = sha?;
                let kind = ProblemKind::BadSha256 {
                    value: sha.value,
                    reason,
                };
                self.report(kind, vec![label(sha.span, "invalid sha256")]);
                return None;
            }
        };
        Some(Fetch {
            name,
            scope: String::new(),
            url: url?,
            sha256,
        })
    }
}

pub(crate) fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
