//! `kiln why IMAGE PATH`: which `copy` or `add` put a file in an image, or
//! which program needed it through which chain of libraries. Every planned
//! entry carries an [`Origin`]; this module answers a query from them.

use std::fmt;

use miette::SourceSpan;
use serde::Serialize;

use super::assemble::Assembled;
use crate::spec::Spec;

/// Why one path is in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub via: Via,
    /// The first line of the kiln.kdl node, e.g. `copy server "goapp" to="/app/goapp"`.
    pub node: String,
    /// Where that node is: the spec file and its 1-based line.
    pub file: String,
    pub line: usize,
    /// For the closure: the program, then each library that needed the next,
    /// e.g. `["/app/goapp", "libsqlite3.so.0", "libc.so.6"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Copy,
    Add,
    /// Needed by an ELF program of the `copy` (`chain` says how).
    Closure,
    /// A `closure-extra` of the `copy`.
    ClosureExtra,
}

impl Origin {
    /// The origin of what the node at `span` (a `copy` or `add`) brings in.
    pub(crate) fn of_node(spec: &Spec, span: SourceSpan, via: Via) -> Origin {
        let text = spec.source.inner();
        let start = span.offset().min(text.len());
        let end = (start + span.len()).min(text.len());
        let node = text.get(start..end).unwrap_or_default();
        let node = node.lines().next().unwrap_or_default().trim();
        let node = node.trim_end_matches('{').trim_end();
        Origin {
            via,
            node: node.to_owned(),
            file: spec.source.name().to_owned(),
            line: text.get(..start).unwrap_or_default().matches('\n').count() + 1,
            chain: Vec::new(),
        }
    }
}

/// The answer to `kiln why`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Why {
    pub image: String,
    /// The path asked about, absolute and normalized.
    pub path: String,
    /// Where the path leads through the image's symlinks, when elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// `None`: the path is not in the image.
    pub origin: Option<Origin>,
}

/// Why `path` (absolute) is in `img`.
pub fn why(img: &Assembled, path: &str) -> Why {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let rel = parts.join("/");
    let mut answer = Why {
        image: img.name.to_string(),
        path: format!("/{rel}"),
        resolved: None,
        origin: img.origins.get(&rel).cloned(),
    };
    if answer.origin.is_none()
        && let Some(real) = img.files.real_path(&answer.path)
    {
        answer.origin = img.origins.get(real.trim_start_matches('/')).cloned();
        answer.resolved = answer.origin.is_some().then_some(real);
    }
    answer
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(o) = &self.origin else {
            return writeln!(f, "{} is not in image `{}`", self.path, self.image);
        };
        match &self.resolved {
            Some(real) => writeln!(f, "{} → {real}", self.path)?,
            None => writeln!(f, "{}", self.path)?,
        }
        let what = match o.via {
            Via::Copy | Via::Add => "put there by",
            Via::Closure => "runtime closure of",
            Via::ClosureExtra => "closure-extra of",
        };
        writeln!(f, "  {what} `{}` ({}:{})", o.node, o.file, o.line)?;
        if !o.chain.is_empty() {
            writeln!(f, "  needed through {}", o.chain.join(" → "))?;
        }
        Ok(())
    }
}
