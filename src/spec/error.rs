//! The diagnostics `spec::load` reports: one [`Problem`] per mistake, each
//! with a code, labelled spans into kiln.kdl and a help line, gathered into
//! one `SpecError` (`report.rs`) so the user sees every problem in one run: the first
//! [`MAX_SHOWN`] in full, then how many more there are.

use std::fmt;
use std::path::PathBuf;

use miette::{Diagnostic, LabeledSpan, SourceSpan};

use crate::hash::HashParseError;

/// Problems rendered in full; the rest are counted ("… and N more"). A
/// broken or hostile kiln.kdl can hold tens of thousands.
pub const MAX_SHOWN: usize = 20;

/// One mistake in kiln.kdl and where it is.
#[derive(Debug)]
pub struct Problem {
    pub kind: ProblemKind,
    labels: Vec<LabeledSpan>,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, labels: Vec<LabeledSpan>) -> Self {
        Problem { kind, labels }
    }

    /// One more label: where an imported file was imported, say.
    pub(crate) fn add_label(&mut self, label: LabeledSpan) {
        self.labels.push(label);
    }

    pub(crate) fn offset(&self) -> usize {
        self.labels
            .iter()
            .map(LabeledSpan::offset)
            .min()
            .unwrap_or(0)
    }
}

impl Problem {
    /// Underlines at most [`MAX_LABEL`] bytes of each span: where a problem
    /// starts is what matters, and a span over a 1 MB string or block would
    /// print all of it.
    pub(crate) fn clamp_labels(&mut self, text: &str) {
        for l in &mut self.labels {
            if l.len() <= MAX_LABEL {
                continue;
            }
            let mut end = (l.offset() + MAX_LABEL).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let span = SourceSpan::from(l.offset()..end.max(l.offset()));
            let text = l.label().map(str::to_owned);
            *l = match l.primary() {
                true => LabeledSpan::new_primary_with_span(text, span),
                false => LabeledSpan::new_with_span(text, span),
            };
        }
    }
}

/// Bytes of a span underlined, and of a message or help line shown: user
/// text quoted in them (a name, a path) can be megabytes long.
const MAX_LABEL: usize = 256;
const MAX_TEXT: usize = 400;

/// `text`, cut to [`MAX_TEXT`] bytes with an ellipsis if longer.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bounded(self.kind.to_string()))
    }
}

impl std::error::Error for Problem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("kiln::spec::{}", self.kind.code())))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(bounded(self.kind.help())))
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// A labelled span, the way every problem points into kiln.kdl.
pub(crate) fn label(span: SourceSpan, text: impl Into<String>) -> LabeledSpan {
    LabeledSpan::new_with_span(Some(text.into()), span)
}

/// Why a path given as a source cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Absolute,
    DotDot,
    Symlink,
}

/// What went wrong. The message is the one-line cause; `help` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProblemKind {
    #[error("Cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("The spec is not UTF-8 text")]
    NotUtf8,
    #[error("`{}` is {what}, not a spec file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("`{}` is larger than {} MiB", path.display(), max >> 20)]
    TooBig { path: PathBuf, max: u64 },
    #[error("Blocks `{{ … }}` nested more than {max} deep")]
    TooDeep { max: usize },
    #[error("A `/* … */` comment too long to parse")]
    CommentTooLong { max: usize },
    #[error("{message}")]
    Syntax {
        message: String,
        help: Option<String>,
    },
    #[error("Unknown node `{name}` in {parent}")]
    UnknownNode {
        name: String,
        parent: String,
        suggestion: Option<String>,
        known: &'static [&'static str],
    },
    #[error("Unknown property `{name}` on `{node}`")]
    UnknownProperty {
        name: String,
        node: String,
        suggestion: Option<String>,
        known: &'static [&'static str],
    },
    #[error("{what} must be {expected}, found {found}")]
    WrongType {
        what: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{node}` needs {what}")]
    Missing {
        node: String,
        what: String,
        example: &'static str,
    },
    #[error("`{node}` takes at most {max} argument{}", if *max == 1 { "" } else { "s" })]
    TooManyArguments { node: String, max: usize },
    #[error("`{node}` takes no children block")]
    UnexpectedChildren { node: String },
    #[error("`{node}` is given twice in {parent}")]
    DuplicateNode { node: String, parent: String },
    #[error("{what} `{key}` is given twice")]
    DuplicateKey { what: &'static str, key: String },
    #[error("`{var}` is set by kiln in every stage")]
    ReservedEnv { var: String },
    #[error("`${var}` would name two things in this stage")]
    EnvClash { var: String },
    #[error("An empty {what}")]
    Empty {
        what: &'static str,
        help: &'static str,
    },
    #[error("`{name}` is not a valid name")]
    InvalidName { name: String },
    #[error("`{name}` is a reserved word, not a name")]
    ReservedName { name: String },
    #[error("The name `{name}` is used twice")]
    DuplicateName { name: String },
    #[error("`--arg {name}` sets an arg that kiln.kdl does not declare")]
    UndeclaredOverride { name: String, declared: Vec<String> },
    #[error("Unknown arg `{name}` in `${{{name}}}`")]
    UnknownArg {
        name: String,
        suggestion: Option<String>,
    },
    #[error("Arg `{name}` has no value")]
    UnsetArg { name: String },
    #[error("Unclosed `${{` in a string")]
    UnclosedSubstitution,
    #[error("Unknown name `{name}`")]
    UnknownReference {
        name: String,
        suggestion: Option<String>,
    },
    #[error("`{node} {name}`: `{name}` is {what}, not {expected}")]
    WrongKind {
        node: &'static str,
        name: String,
        what: &'static str,
        expected: &'static str,
        help: String,
    },
    #[error("Stage `{stage}` has no `run`")]
    NoRun { stage: String },
    #[error("Source `{path}` does not exist")]
    SourceMissing { path: String },
    #[error("Source `{path}` is outside the build context")]
    SourceOutside { path: String, why: Escape },
    #[error("Invalid digest `{value}`: {reason}")]
    BadDigest {
        value: String,
        reason: HashParseError,
    },
    #[error("Invalid image reference `{value}`: {reason}")]
    BadReference {
        value: String,
        reason: super::RefError,
    },
    #[error("Invalid platform `{value}`: {reason}")]
    BadPlatform { value: String, reason: String },
    #[error("Invalid `sha256` `{value}`: {reason}")]
    BadSha256 {
        value: String,
        reason: HashParseError,
    },
    #[error("Invalid url `{url}`")]
    BadUrl { url: String },
    #[error("Path `{path}` in an image must be absolute")]
    NotAbsolute { path: String },
    #[error("Path `{path}` escapes `/`")]
    PathEscapes { path: String },
    #[error("Path `{path}` escapes the stage output")]
    CopyPathEscapes { path: String },
    #[error("Invalid mode `{value}`")]
    BadMode { value: String },
    #[error("Invalid owner `{value}`")]
    BadOwner { value: String },
    #[error("Invalid port `{value}`")]
    BadPort { value: String },
    #[error("Invalid image tag `{tag}`: {reason}")]
    BadTag { tag: String, reason: &'static str },
    #[error("`layers max={value}` is out of range")]
    BadLayers { value: i128 },
    #[error("`{key}` is not a valid environment variable name")]
    BadEnvKey { key: String },
    #[error("Invalid tool name `{name}`")]
    BadTool { name: String },
    #[error("Invalid user `{value}`")]
    BadUser { value: String },
    #[error("Invalid stop signal `{value}`")]
    BadSignal { value: String },
    #[error("Invalid duration `{value}`")]
    BadDuration { value: String },
    #[error("`{node} shell=#true` takes exactly one argument")]
    ShellArity { node: String },
    #[error("Cache path `{path}` {why}")]
    BadCachePath { path: String, why: CachePathError },
    #[error("Invalid cache id `{id}`")]
    BadCacheId { id: String },
    #[error("Invalid cache sharing `{value}`")]
    BadSharing { value: String },
    #[error("Cache id `{id}` names two paths: `{first}` and `{second}`")]
    CacheIdClash {
        id: String,
        first: String,
        second: String,
    },
    #[error("Dependency cycle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
    #[error("Cannot import `{path}`: {reason}")]
    ImportUnreadable { path: String, reason: String },
    #[error("Import cycle: {}", files.join(" → "))]
    ImportCycle { files: Vec<String> },
    #[error("More than {max} imports")]
    TooManyImports { max: usize },
    #[error("The alias `{alias}` is used twice")]
    AliasClash { alias: String },
    #[error("`{alias}`, {file}, declares no `{name}`")]
    UnknownImported {
        alias: String,
        name: String,
        file: String,
        suggestion: Option<String>,
    },
    #[error("`{file}` declares no arg `{name}`")]
    UnknownImportArg {
        name: String,
        file: String,
        declared: Vec<String>,
    },
    #[error("`{path}` is outside the directory of `{file}`")]
    ImportedPathOutside { path: String, file: String },
    #[error("Template `{template}` has no param `{name}`")]
    UnknownParam {
        name: String,
        template: String,
        declared: Vec<String>,
        suggestion: Option<String>,
    },
    #[error("`{instance}` does not give `{name}`, a param of `{template}` without a default")]
    MissingParam {
        name: String,
        template: String,
        instance: String,
    },
    #[error("Template `{}` instantiates itself: {}", templates[0], templates.join(" → "))]
    TemplateCycle { templates: Vec<String> },
    #[error("More than {max} template instances")]
    TooManyInstances { max: usize },
    #[error("Template instances nested more than {max} deep")]
    InstancesTooDeep { max: usize },
    #[error("Template instances make more than {max} nodes")]
    TooManyInstanceNodes { max: usize },
}

/// Why a `cache` path cannot be mounted where it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachePathError {
    /// Not starting with `/`.
    Relative,
    /// `..` above `/`.
    Escapes,
    /// `/`, `/tmp`: it would hide what kiln mounts there.
    Is(&'static str),
    /// At or inside one of kiln's own mounts: `/out`, `/src`, `/deps`, …
    Inside(&'static str),
    /// Inside another cache of the same stage (or holding one).
    Nested(String),
}

impl fmt::Display for CachePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CachePathError::Relative => write!(f, "is not absolute"),
            CachePathError::Escapes => write!(f, "climbs above `/`"),
            CachePathError::Is(what) => write!(f, "is {what}"),
            CachePathError::Inside(what) => write!(f, "is inside {what}"),
            CachePathError::Nested(other) => {
                write!(f, "overlaps the stage's cache `{other}`")
            }
        }
    }
}
