//! [`SpecError`]: every [`Problem`] one load found, rendered as one
//! diagnostic (the first [`MAX_SHOWN`] in full, then how many more), each
//! label read from the file it points into (`source.rs`).

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use super::error::{MAX_SHOWN, Problem};
use super::source::Files;

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
