//! The code and the help line of each [`ProblemKind`]: what a user reads
//! after the cause, to know what to change.

use super::error::{CachePathError, Escape, ProblemKind};
use super::nodes::{CacheSharing, RESERVED_ENV};

impl ProblemKind {
    /// The last segment of the diagnostic code, `kiln::spec::<code>`.
    pub(crate) fn code(&self) -> &'static str {
        use ProblemKind::*;
        match self {
            Read { .. } => "read",
            NotAFile { .. } => "not_a_file",
            NotUtf8 => "not_utf8",
            TooBig { .. } => "too_big",
            TooDeep { .. } | CommentTooLong { .. } => "too_deep",
            Syntax { .. } => "syntax",
            UnknownNode { .. } => "unknown_node",
            UnknownProperty { .. } => "unknown_property",
            WrongType { .. } => "wrong_type",
            Missing { .. } => "missing",
            TooManyArguments { .. } => "too_many_arguments",
            UnexpectedChildren { .. } => "unexpected_children",
            DuplicateNode { .. } => "duplicate_node",
            DuplicateKey { .. } => "duplicate_key",
            ReservedEnv { .. } => "reserved_env",
            EnvClash { .. } => "env_clash",
            Empty { .. } => "empty",
            InvalidName { .. } => "invalid_name",
            ReservedName { .. } => "reserved_name",
            DuplicateName { .. } => "duplicate_name",
            UndeclaredOverride { .. } => "undeclared_arg",
            UnknownArg { .. } => "unknown_arg",
            UnsetArg { .. } => "unset_arg",
            UnclosedSubstitution => "unclosed_substitution",
            UnknownReference { .. } => "unknown_name",
            WrongKind { .. } => "wrong_kind",
            NoRun { .. } => "no_run",
            SourceMissing { .. } => "source_missing",
            SourceOutside { .. } => "source_outside_context",
            BadDigest { .. } => "bad_digest",
            BadReference { .. } => "bad_reference",
            BadPlatform { .. } => "bad_platform",
            BadSha256 { .. } => "bad_sha256",
            BadUrl { .. } => "bad_url",
            NotAbsolute { .. } => "not_absolute",
            PathEscapes { .. } | CopyPathEscapes { .. } => "path_escapes",
            BadMode { .. } => "bad_mode",
            BadOwner { .. } => "bad_owner",
            BadPort { .. } => "bad_port",
            BadTag { .. } => "bad_tag",
            BadLayers { .. } => "bad_layers",
            BadEnvKey { .. } => "bad_env_key",
            BadTool { .. } => "bad_tool",
            BadUser { .. } => "bad_user",
            BadSignal { .. } => "bad_signal",
            BadDuration { .. } => "bad_duration",
            ShellArity { .. } => "shell_arity",
            BadCachePath { .. } => "bad_cache_path",
            BadCacheId { .. } => "bad_cache_id",
            BadSharing { .. } => "bad_sharing",
            CacheIdClash { .. } => "cache_id_clash",
            Cycle { .. } => "cycle",
            ImportUnreadable { .. } => "import_unreadable",
            ImportCycle { .. } => "import_cycle",
            TooManyImports { .. } => "too_many_imports",
            AliasClash { .. } => "alias_clash",
            UnknownImported { .. } => "unknown_imported_name",
            UnknownImportArg { .. } => "unknown_import_arg",
            ImportedPathOutside { .. } => "imported_path_outside",
            UnknownParam { .. } => "unknown_param",
            MissingParam { .. } => "missing_param",
            TemplateCycle { .. } => "template_cycle",
            TooManyInstances { .. } => "too_many_instances",
            InstancesTooDeep { .. } => "instances_too_deep",
            TooManyInstanceNodes { .. } => "too_many_instance_nodes",
        }
    }

    /// What to do about it.
    pub(crate) fn help(&self) -> String {
        use ProblemKind::*;
        match self {
            Read { .. } => "Check the path given with `-f` and its permissions".into(),
            NotAFile { .. } => "Give `-f` the path of a kiln.kdl file".into(),
            NotUtf8 => {
                "Save kiln.kdl as UTF-8 (an editor's Latin-1 or UTF-16 encoding is the usual cause)"
                    .into()
            }
            TooBig { .. } => "A kiln.kdl this large is not a hand-written spec: check the path given with `-f`".into(),
            TooDeep { .. } => {
                "kiln.kdl needs only a few levels of `{ … }`: close the blocks sooner".into()
            }
            CommentTooLong { max } => format!(
                "kiln parses a block comment of up to {max} `*`, `/` and runs of text between them: use `//` comments for longer text"
            ),
            Syntax { help: Some(h), .. } => h.clone(),
            Syntax { help: None, .. } => "kiln.kdl is KDL v2: see https://kdl.dev".into(),
            UnknownNode {
                suggestion, known, ..
            }
            | UnknownProperty {
                suggestion, known, ..
            } => did_you_mean(suggestion, known),
            WrongType { expected, .. } => format!("Write {expected} here"),
            Missing { example, .. } => format!("For example: `{example}`"),
            TooManyArguments { .. } => "Remove the extra arguments".into(),
            UnexpectedChildren { .. } => "Remove the `{ … }` block".into(),
            DuplicateNode { .. } => "Keep only one of them".into(),
            DuplicateKey { .. } => "Keep only one of them: kiln does not pick one silently".into(),
            Empty { help, .. } => (*help).to_owned(),
            ReservedEnv { .. } => format!(
                "kiln sets {}: pick another name",
                RESERVED_ENV.map(|v| format!("`{v}`")).join(", ")
            ),
            EnvClash { .. } => {
                "Used stages, mentioned args and `env` share the environment (dashes become underscores): rename one".into()
            }
            InvalidName { .. } => {
                "A name starts with a letter or `_`, then letters, digits, `_` or `-`".into()
            }
            ReservedName { .. } => "`host` and `scratch` are roots, choose another name".into(),
            DuplicateName { .. } => {
                "Stages, bases, fetches and images share one namespace: rename one of them".into()
            }
            UndeclaredOverride { declared, .. } if declared.is_empty() => {
                "kiln.kdl declares no args; declare one with `arg NAME default=\"…\"`".into()
            }
            UndeclaredOverride { declared, .. } => {
                format!(
                    "Declared args: {}",
                    backticked(declared.iter().map(String::as_str))
                )
            }
            UnknownArg {
                suggestion: Some(s),
                ..
            } => format!("Did you mean `{s}`?"),
            UnknownArg { name, .. } => format!(
                "Declare it with `arg {name} default=\"…\"`, or write `$${{` for a literal `${{`"
            ),
            UnsetArg { name } => {
                format!("Give it a value with `--arg {name}=VALUE` or declare a `default=`")
            }
            UnclosedSubstitution => "Close it with `}`, or write `$${` for a literal `${`".into(),
            UnknownReference {
                suggestion: Some(s),
                ..
            } => format!("Did you mean `{s}`?"),
            UnknownReference { .. } => {
                "Declare it as a `stage`, `base`, `fetch` or `image` in kiln.kdl".into()
            }
            WrongKind { help, .. } => help.clone(),
            NoRun { .. } => "Add a `run \"…\"` line: a stage is the scripts it runs".into(),
            SourceMissing { .. } => {
                "Paths are relative to the directory that holds kiln.kdl".into()
            }
            SourceOutside { why, .. } => match why {
                Escape::Absolute => "Give a path relative to the directory holding kiln.kdl",
                Escape::DotDot => "Sources must stay inside the directory holding kiln.kdl",
                Escape::Symlink => "The path is a symlink that resolves outside the build context",
            }
            .into(),
            BadDigest { .. } => "Write `digest=\"sha256:<64 lowercase hex digits>\"`".into(),
            BadReference { .. } => {
                "Write `[host[:port]/]repository[:tag][@sha256:<64 lowercase hex digits>]`; \
                 a reference by tag alone is pinned by `kiln lock`"
                    .into()
            }
            BadPlatform { .. } => "Write `os/architecture[/variant]`, e.g. `linux/arm64`".into(),
            BadSha256 { .. } => "Write `sha256=\"<64 lowercase hex digits>\"`".into(),
            BadUrl { .. } => "A fetch url starts with `https://`, `http://` or `file://`".into(),
            NotAbsolute { .. } => "Start the path with `/`".into(),
            PathEscapes { .. } => "Remove the `..` that climbs above `/`".into(),
            CopyPathEscapes { .. } => {
                "Give a path relative to the stage output (`.` for all of it)".into()
            }
            BadMode { .. } => {
                "Write an octal mode up to 0o7777: `mode=0o755` or `mode=\"0755\"`".into()
            }
            BadOwner { .. } => "Write numeric ids: `owner=\"1000:1000\"`".into(),
            BadPort { .. } => {
                "Write a port 1-65535, optionally with a protocol: `8080`, `\"53/udp\"`".into()
            }
            BadTag { .. } => {
                "Write a reference like `name:tag` or `registry.example:5000/team/name:tag`".into()
            }
            BadLayers { .. } => {
                "`layers max=N` takes N from 1 to 127: Docker refuses an image of more than 127 layers".into()
            }
            BadEnvKey { .. } => "Use letters, digits and `_`, not starting with a digit".into(),
            BadTool { .. } => "Name a program found on the host's PATH, without `/`".into(),
            BadUser { .. } => {
                "Write `user \"name\"`, `user \"1000\"` or `user \"1000:1000\"`".into()
            }
            BadSignal { .. } => "Write a signal name like `\"SIGTERM\"` or a number".into(),
            BadDuration { .. } => {
                "Write seconds (`90`) or a number with a unit: `\"90s\"`, `\"15m\"`, `\"2h\"`, \
                 `\"1h30m\"`; from 1s to 7d"
                    .into()
            }
            ShellArity { .. } => {
                "Shell form is one command line; or drop `shell=#true` for an argv".into()
            }
            BadCachePath { why, .. } => cache_path_help(why),
            BadCacheId { .. } => {
                "Write letters, digits, `.`, `_` and `-`, at most 100: `id=\"go-build\"`".into()
            }
            BadSharing { .. } => {
                format!("Write one of {}", backticked(CacheSharing::NAMES.into_iter()))
            }
            CacheIdClash { .. } => {
                "A cache is one directory at one path: give the second one another `id=`, or the same path"
                    .into()
            }
            Cycle { .. } => "Break the cycle: a stage cannot depend on itself".into(),
            ImportUnreadable { .. } => {
                "An import's path is relative to the directory of the file that imports it".into()
            }
            ImportCycle { .. } => {
                "A file cannot import itself, directly or not: move what both need into a third file"
                    .into()
            }
            TooManyImports { max } => {
                format!("A spec reads at most {max} files, each import of a file counting once")
            }
            AliasClash { .. } => "Give each `import` its own `as=`".into(),
            UnknownImported {
                alias,
                suggestion: Some(s),
                ..
            } => format!("Did you mean `{alias}.{s}`?"),
            UnknownImported { alias, .. } => {
                format!("`{alias}.NAME` names a stage, base, fetch or image that `{alias}` declares")
            }
            UnknownImportArg { declared, .. } if declared.is_empty() => {
                "The file declares no `arg`: remove the line".into()
            }
            UnknownImportArg { declared, .. } => format!(
                "Declared args: {}",
                (declared.iter().map(|d| format!("`{d}`")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ImportedPathOutside { .. } => {
                "Paths in an imported file are relative to its directory and stay inside it".into()
            }
            UnknownParam {
                suggestion: Some(s),
                ..
            } => format!("Did you mean `{s}`?"),
            UnknownParam { declared, .. } if declared.is_empty() => {
                "The template declares no `param`: remove the property".into()
            }
            UnknownParam { declared, .. } => format!(
                "Its params: {}",
                (declared.iter().map(|d| format!("`{d}`")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            MissingParam { name, .. } => format!("Give it as a property: `{name}=\"…\"`"),
            TemplateCycle { .. } => {
                "A template's body may instantiate other templates, never itself, directly or not"
                    .into()
            }
            TooManyInstances { max } => {
                format!("A spec makes at most {max} template instances, nested ones included")
            }
            InstancesTooDeep { max } => format!(
                "A template's body may instantiate a template whose body instantiates \
                 another, and so on, at most {max} deep"
            ),
            TooManyInstanceNodes { max } => format!(
                "All instances together make at most {max} stages, bases, fetches and images"
            ),
        }
    }
}

fn cache_path_help(why: &CachePathError) -> String {
    match why {
        CachePathError::Relative => "Start the path with `/`: `cache \"/tmp/go-cache\"`".into(),
        CachePathError::Escapes => "Remove the `..` that climbs above `/`".into(),
        CachePathError::Is(_) | CachePathError::Inside(_) => {
            "A cache is never part of the output or the sources: put it under `/tmp` \
             (`cache \"/tmp/go-cache\"`) or in a directory of its own"
                .into()
        }
        CachePathError::Nested(_) => {
            "Mount each cache at its own path, neither inside the other".into()
        }
    }
}

fn did_you_mean(suggestion: &Option<String>, known: &[&str]) -> String {
    match suggestion {
        Some(s) => format!("Did you mean `{s}`?"),
        None => format!("Expected one of {}", backticked(known.iter().copied())),
    }
}

fn backticked<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest of `candidates` to `name`, if it is close enough to be a typo.
/// Names longer than [`MAX_TYPO_LEN`] get none: the comparison costs the
/// product of the lengths, and a 16 KB name is not a typo.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    if name.len() > MAX_TYPO_LEN {
        return None;
    }
    candidates
        .into_iter()
        .filter(|c| c.len() <= MAX_TYPO_LEN)
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_owned())
}

const MAX_TYPO_LEN: usize = 64;
