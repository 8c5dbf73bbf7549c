//! The diagnostics `spec::load` reports: one [`Problem`] per mistake, each
//! with a code, labelled spans into kiln.kdl and a help line, gathered into
//! one [`SpecError`] so the user sees every problem in one run: the first
//! [`MAX_SHOWN`] in full, then how many more there are.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

use super::source::Files;
use crate::hash::HashParseError;

/// Problems rendered in full; the rest are counted ("… and N more"). A
/// broken or hostile kiln.kdl can hold tens of thousands.
pub const MAX_SHOWN: usize = 20;

/// Why kiln.kdl could not become a [`Spec`](super::Spec): one or more problems.
#[derive(Debug)]
pub struct SpecError {
    source_code: Files,
    problems: Vec<Problem>,
    /// Set when there are more problems than [`MAX_SHOWN`].
    more: Option<More>,
}

impl SpecError {
    /// `problems` must not be empty; they are shown in source order.
    pub(crate) fn new(source_code: Arc<NamedSource<String>>, problems: Vec<Problem>) -> Self {
        Self::in_files(Files::one(source_code), problems)
    }

    /// [`SpecError::new`] for problems in the several files of `source_code`.
    pub(crate) fn in_files(source_code: Files, mut problems: Vec<Problem>) -> Self {
        assert!(
            !problems.is_empty(),
            "kiln bug: a SpecError without problems"
        );
        problems.sort_by_key(Problem::offset);
        for problem in &mut problems {
            problem.clamp_labels(source_code.text());
        }
        let more = (problems.len() > MAX_SHOWN).then(|| More {
            hidden: problems.len() - MAX_SHOWN,
        });
        SpecError {
            source_code,
            problems,
            more,
        }
    }

    /// Every problem found, in source order (shown or not).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    fn single(&self) -> Option<&Problem> {
        match self.problems.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single() {
            Some(one) => one.fmt(f),
            None => {
                let (name, n) = (self.source_code.name(), self.problems.len());
                write!(f, "`{name}` has {n} problems")
            }
        }
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.single().and_then(|one| one.kind.source())
    }
}

impl Diagnostic for SpecError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.single() {
            Some(one) => one.code(),
            None => Some(Box::new("kiln::spec::invalid")),
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.single().and_then(|one| one.help())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.single().and_then(|one| one.labels())
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source_code)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.single().is_some() {
            return None;
        }
        let shown = self.problems.iter().take(MAX_SHOWN);
        let shown = shown.map(|p| p as &dyn Diagnostic);
        Some(Box::new(
            shown.chain(self.more.iter().map(|m| m as &dyn Diagnostic)),
        ))
    }
}

/// The last entry of a long list: how many problems are not shown.
#[derive(Debug, thiserror::Error)]
#[error("… and {hidden} more problems")]
struct More {
    hidden: usize,
}

impl Diagnostic for More {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("kiln::spec::more"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(
            "Fix the problems above and run `kiln check` again",
        ))
    }
}

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
    fn clamp_labels(&mut self, text: &str) {
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
    #[error("`{file}`, imported as `{alias}`, declares no `{name}`")]
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
}
