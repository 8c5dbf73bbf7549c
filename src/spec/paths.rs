//! Path rules: sources (`src`, `add`, `archive`) must exist inside the build
//! context, even through symlinks; paths in an image (`to=`, `workdir`,
//! `volume`) are absolute and normalized. Reads the filesystem (`stat` and
//! `canonicalize` only).

use std::path::Path;

use super::cx::Cx;
use super::error::{Escape, ProblemKind, label};
use super::{Spanned, SrcPath};

/// Why a path in an image is not acceptable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AbsError {
    Relative,
    Escapes,
}

/// Normalizes an absolute path in an image: `/app/./bin/../x/` → `/app/x`.
pub(crate) fn normalize_abs(path: &str) -> Result<String, AbsError> {
    let rest = path.strip_prefix('/').ok_or(AbsError::Relative)?;
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(AbsError::Escapes)?;
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Where a source path leads on disk, through any symlinks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    Inside,
    Outside,
    Missing,
}

/// The one check that a source exists inside `context` (canonical): made
/// on every load, and again for every source of a cached spec (`cache.rs`).
pub(crate) fn resolve(context: &Path, src: &SrcPath) -> Resolved {
    match std::fs::canonicalize(src.on_disk(context)) {
        Ok(real) if real.starts_with(context) => Resolved::Inside,
        Ok(_) => Resolved::Outside,
        Err(_) => Resolved::Missing,
    }
}

impl Cx {
    /// Checks a source path: relative, inside the context, existing.
    pub fn src_path(&mut self, path: &Spanned<String>) -> Option<Spanned<SrcPath>> {
        if path.value.is_empty() {
            let help = "Write \".\" for the whole build context";
            self.report(
                ProblemKind::Empty { what: "path", help },
                vec![label(path.span, "empty")],
            );
            return None;
        }
        let file = self.file.clone();
        let outside = |why| match &file {
            Some(file) => ProblemKind::ImportedPathOutside {
                path: path.value.clone(),
                file: file.clone(),
            },
            None => ProblemKind::SourceOutside {
                path: path.value.clone(),
                why,
            },
        };
        let Some(src) = SrcPath::new(&path.value) else {
            let why = if path.value.starts_with('/') {
                Escape::Absolute
            } else {
                Escape::DotDot
            };
            let text = match self.file {
                Some(_) => "outside this file's directory",
                None => "outside the build context",
            };
            self.report(outside(why), vec![label(path.span, text)]);
            return None;
        };
        let missing = || ProblemKind::SourceMissing {
            path: path.value.clone(),
        };
        match resolve(&self.context, &src) {
            Resolved::Inside => {}
            Resolved::Outside => {
                let text = match self.file {
                    Some(_) => "resolves outside this file's directory",
                    None => "resolves outside the build context",
                };
                self.report(outside(Escape::Symlink), vec![label(path.span, text)]);
                return None;
            }
            Resolved::Missing => {
                let text = if src.on_disk(&self.context).symlink_metadata().is_ok() {
                    "a dangling symlink"
                } else {
                    "not found"
                };
                self.report(missing(), vec![label(path.span, text)]);
                return None;
            }
        }
        Some(Spanned {
            value: src,
            span: path.span,
        })
    }

    /// Checks and normalizes an absolute path inside an image.
    pub fn image_path(&mut self, path: &Spanned<String>) -> Option<Spanned<String>> {
        match normalize_abs(&path.value) {
            Ok(value) => Some(Spanned {
                value,
                span: path.span,
            }),
            Err(AbsError::Relative) => {
                let kind = ProblemKind::NotAbsolute {
                    path: path.value.clone(),
                };
                self.report(kind, vec![label(path.span, "relative")]);
                None
            }
            Err(AbsError::Escapes) => {
                let kind = ProblemKind::PathEscapes {
                    path: path.value.clone(),
                };
                self.report(kind, vec![label(path.span, "climbs above `/`")]);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::error::Escape;
    use miette::SourceSpan;

    fn cx_in(dir: &std::path::Path) -> Cx {
        Cx::new(fs_err::canonicalize(dir).expect("temp dir"))
    }

    fn check(cx: &mut Cx, path: &str) -> Option<String> {
        let spanned = Spanned {
            value: path.to_owned(),
            span: SourceSpan::from(0..1),
        };
        cx.src_path(&spanned).map(|p| p.value.as_str().to_owned())
    }

    fn last_problem(cx: &Cx) -> &ProblemKind {
        &cx.problems.last().expect("a problem").kind
    }

    #[test]
    fn sources_must_exist_inside_the_context_even_through_symlinks() {
        let outside = tempfile::tempdir().expect("temp dir");
        let root = tempfile::tempdir().expect("temp dir");
        let ctx = root.path().join("ctx");
        fs_err::create_dir_all(ctx.join("src")).expect("mkdir");
        fs_err::write(ctx.join("src/main.c"), "int main;").expect("write");
        std::os::unix::fs::symlink("src", ctx.join("inside")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), ctx.join("escape")).expect("symlink");
        fs_err::write(root.path().join("secret"), "x").expect("write");
        let mut cx = cx_in(&ctx);

        assert_eq!(
            check(&mut cx, "./src//main.c").as_deref(),
            Some("src/main.c")
        );
        assert_eq!(
            check(&mut cx, "inside/main.c").as_deref(),
            Some("inside/main.c")
        );
        assert_eq!(check(&mut cx, ".").as_deref(), Some("."));
        assert!(cx.problems.is_empty());

        assert_eq!(check(&mut cx, "escape"), None);
        let symlink = matches!(
            last_problem(&cx),
            ProblemKind::SourceOutside {
                why: Escape::Symlink,
                ..
            }
        );
        assert!(symlink);
        assert_eq!(check(&mut cx, "../secret"), None);
        let dotdot = matches!(
            last_problem(&cx),
            ProblemKind::SourceOutside {
                why: Escape::DotDot,
                ..
            }
        );
        assert!(dotdot);
        assert_eq!(check(&mut cx, "/etc"), None);
        let absolute = matches!(
            last_problem(&cx),
            ProblemKind::SourceOutside {
                why: Escape::Absolute,
                ..
            }
        );
        assert!(absolute);
        assert_eq!(check(&mut cx, "src/missing.c"), None);
        assert!(matches!(
            last_problem(&cx),
            ProblemKind::SourceMissing { .. }
        ));
    }

    #[test]
    fn image_paths_are_absolute_and_normalized() {
        assert_eq!(normalize_abs("/app/./bin/../x/").as_deref(), Ok("/app/x"));
        assert_eq!(normalize_abs("//etc//ssl").as_deref(), Ok("/etc/ssl"));
        assert_eq!(normalize_abs("/").as_deref(), Ok("/"));
        assert_eq!(normalize_abs("app"), Err(AbsError::Relative));
        assert_eq!(normalize_abs("/a/../../etc"), Err(AbsError::Escapes));
    }
}
