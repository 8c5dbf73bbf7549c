//! Args: `arg NAME default="…"` declarations, `--arg` overrides, `${NAME}`
//! substitution in every string but `run`, and detection of the args a `run`
//! script mentions (which become its environment and part of its key).

use std::collections::BTreeMap;

use kdl::{KdlNode, KdlValue};
use miette::SourceSpan;

use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::help::suggest;
use super::{Arg, Name, Spanned};

/// Why a string could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubstError {
    Unclosed,
    Unknown(String),
    Unset(String),
}

/// Replaces `${NAME}` by the arg's value and `$${` by a literal `${`.
pub(crate) fn substitute(
    text: &str,
    args: &BTreeMap<String, Option<String>>,
) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(SubstError::Unclosed)?;
            let name = &after[..end];
            match args.get(name) {
                Some(Some(value)) => out.push_str(value),
                Some(None) => return Err(SubstError::Unset(name.to_owned())),
                None => return Err(SubstError::Unknown(name.to_owned())),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether shell text mentions the variable `var` as `$var`, `${var…`,
/// `${#var}` (its length) or `${!var…` (indirection). Errs on the side of
/// yes (an escaped `\$var` counts): a false mention only adds an input to
/// the key, a missed one leaves the variable unset in the script.
pub(crate) fn mentions(text: &str, var: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices('$').any(|(at, _)| {
        let after = &text[at + 1..];
        let after = match after.strip_prefix('{') {
            Some(inner) => (inner.strip_prefix(['#', '!']))
                .filter(|name| name.starts_with(is_ident))
                .unwrap_or(inner),
            None => after,
        };
        after
            .strip_prefix(var)
            .is_some_and(|end| !end.starts_with(is_ident))
    })
}

impl Cx {
    /// Substitutes `${…}` in the string at `span`, reporting what fails.
    pub fn substitute(&mut self, text: &str, span: SourceSpan) -> Option<String> {
        let error = match substitute(text, &self.args) {
            Ok(done) => return Some(done),
            Err(error) => error,
        };
        let (kind, text) = match error {
            SubstError::Unclosed => (ProblemKind::UnclosedSubstitution, "unclosed".to_owned()),
            SubstError::Unset(name) => {
                let text = format!("`{name}` has no default and no `--arg`");
                (ProblemKind::UnsetArg { name }, text)
            }
            SubstError::Unknown(name) => {
                let suggestion = match self.afford_suggestion(self.args.len()) {
                    true => suggest(&name, self.args.keys().map(String::as_str)),
                    false => None,
                };
                (
                    ProblemKind::UnknownArg { name, suggestion },
                    "not a declared arg".to_owned(),
                )
            }
        };
        self.report(kind, vec![label(span, text)]);
        None
    }

    /// Reads one `arg` node into `self.args`.
    pub fn declare_arg(&mut self, node: &KdlNode, spans: &mut BTreeMap<String, SourceSpan>) {
        self.check_props(node, &["default"]);
        self.no_children(node);
        let args = self.args(node, (1, 1), "a name", "arg goflags default=\"-trimpath\"");
        let Some(name) = args.first().and_then(|e| self.raw_string(node, e)) else {
            return;
        };
        if Name::local(&name.value).is_none() {
            let kind = ProblemKind::InvalidName {
                name: name.value.clone(),
            };
            self.report(kind, vec![label(name.span, "invalid name")]);
            return;
        }
        if let Some(first) = spans.insert(name.value.clone(), name.span) {
            self.duplicate_key("Arg", &name.value, first, name.span);
            return;
        }
        let default = match self.prop(node, "default") {
            Some(entry) => match entry.value() {
                KdlValue::String(s) => Some(s.clone()),
                KdlValue::Integer(i) => Some(i.to_string()),
                other => self.wrong_type(node, entry, "a string", other),
            },
            None => None,
        };
        self.args.insert(name.value, default);
    }

    /// Applies `--arg` overrides; returns the declared args that have values.
    pub fn apply_overrides(
        &mut self,
        overrides: &[(String, String)],
        spans: &BTreeMap<String, SourceSpan>,
    ) -> Vec<Arg> {
        for (name, value) in overrides {
            match self.args.get_mut(name) {
                Some(slot) => *slot = Some(value.clone()),
                None => {
                    let declared = self.args.keys().cloned().collect();
                    let kind = ProblemKind::UndeclaredOverride {
                        name: name.clone(),
                        declared,
                    };
                    self.report(kind, vec![]);
                }
            }
        }
        let mut declared: Vec<Arg> = Vec::new();
        for (name, span) in spans {
            let Some(Some(value)) = self.args.get(name) else {
                continue;
            };
            let name = Name::new(name).expect("kiln bug: arg names are checked when declared");
            declared.push(Arg {
                name: Spanned {
                    value: name,
                    span: *span,
                },
                value: value.clone(),
            });
        }
        declared.sort_by_key(|a| a.name.span.offset());
        declared
    }

    /// The args `runs` mention, by their environment variable name.
    pub fn run_args(&mut self, runs: &[Spanned<String>]) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        let args: Vec<(String, Option<String>)> = self
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, value) in args {
            let var = name.replace('-', "_");
            let Some(run) = runs.iter().find(|r| mentions(&r.value, &var)) else {
                continue;
            };
            match value {
                // `a-b` and `a_b` are both `$a_b`: one would hide the other.
                Some(_) if found.contains_key(&var) => {
                    let kind = ProblemKind::EnvClash { var };
                    self.report(kind, vec![label(run.span, "mentions both args")]);
                }
                Some(value) => {
                    found.insert(var, value);
                }
                None => {
                    let text = format!("mentions `${var}`, which has no value");
                    self.report(ProblemKind::UnsetArg { name }, vec![label(run.span, text)]);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BTreeMap<String, Option<String>> {
        BTreeMap::from([
            ("version".to_owned(), Some("1.2".to_owned())),
            ("go-flags".to_owned(), Some("-trimpath".to_owned())),
            ("unset".to_owned(), None),
        ])
    }

    #[test]
    fn substitution_replaces_declared_args_and_keeps_escapes() {
        let done = substitute("app-${version}/${go-flags}/$${version}/$HOME/$", &args());
        assert_eq!(done.as_deref(), Ok("app-1.2/-trimpath/${version}/$HOME/$"));
    }

    #[test]
    fn substitution_reports_unknown_unset_and_unclosed() {
        assert_eq!(
            substitute("${nope}", &args()),
            Err(SubstError::Unknown("nope".into()))
        );
        assert_eq!(
            substitute("a ${unset} b", &args()),
            Err(SubstError::Unset("unset".into()))
        );
        assert_eq!(
            substitute("a ${version", &args()),
            Err(SubstError::Unclosed)
        );
    }

    #[test]
    fn substitution_does_not_recurse_into_values() {
        let mut args = args();
        args.insert("x".into(), Some("${version}".into()));
        assert_eq!(substitute("${x}", &args).as_deref(), Ok("${version}"));
    }

    #[test]
    fn run_mentions_need_a_whole_variable_name() {
        assert!(mentions("go build $goflags ./x", "goflags"));
        assert!(mentions("echo $goflags", "goflags"));
        assert!(mentions("echo ${goflags}", "goflags"));
        assert!(mentions("echo ${goflags:-x}", "goflags"));
        assert!(mentions("echo \"$goflags\"-y", "goflags"));
        assert!(!mentions("echo $goflags2", "goflags"));
        assert!(!mentions("echo ${goflags_x}", "goflags"));
        assert!(!mentions("echo goflags", "goflags"));
        assert!(!mentions("echo $go", "goflags"));
        assert!(mentions("echo ${#goflags}", "goflags"), "its length");
        assert!(mentions("echo ${!goflags}", "goflags"), "indirection");
        assert!(!mentions("echo ${#} ${#goflagsx}", "goflags"));
    }
}
