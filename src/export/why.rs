//! `kiln why IMAGE PATH`: which `copy` or `add` put a file in an image, or
//! which program needed it through which chain of libraries. Every planned
//! entry carries an [`Origin`]; this module answers a query from them.

use std::fmt;

use serde::Serialize;

use crate::image::{Assembled, Origin, Via};

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
            Via::Base => "from the base image of",
        };
        writeln!(f, "  {what} `{}` ({}:{})", o.node, o.file, o.line)?;
        if !o.chain.is_empty() {
            writeln!(f, "  needed through {}", o.chain.join(" → "))?;
        }
        Ok(())
    }
}
