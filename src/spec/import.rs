//! `import "../toolchains/go.kdl" as=go { arg go-version="1.21" }`: another
//! spec file's nodes, seen here as `go.NAME`.
//!
//! The imported file is read (within the limits kiln.kdl is), parsed and
//! validated on its own, as if it were a kiln.kdl in its own directory with
//! the args the import sets: its names, paths and args are its own. Its
//! text joins the one text every span of the spec points into (see
//! `files.rs`): once parsed, every span of its document is moved by where
//! its text starts in the whole (`syntax::shift`). Each
//! problem found in it gets a second label on the `import` that brought it
//! in. Reads the imported files.

use std::path::{Path, PathBuf};

use kdl::{KdlDocument, KdlNode};
use miette::SourceSpan;

use super::cx::Cx;
use super::error::{ProblemKind, label};
use super::files::display_join;
use super::loader::{Loader, MAX_FILES, MAX_TOTAL_BYTES};
use super::qualify::Parts;
use super::{Name, Spanned, SpecFile, SrcPath, read, scan, syntax};

/// What validates one file's document into its [`Parts`] (`validate` in
/// the parent module; passed in, so this file does not depend on it).
pub(crate) type Validate = fn(&mut Cx, &KdlDocument, Given<'_>, &mut Loader) -> Parts;

/// The values a file's args are given from outside it.
pub(crate) enum Given<'a> {
    /// kiln.kdl: `--arg k=v`.
    Cli(&'a [(String, String)]),
    /// An imported file: what its `import` sets.
    Import(ImportArgs),
}

/// The args an import sets, for the file it imports.
pub(crate) struct ImportArgs {
    pub file: String,
    pub values: Vec<(String, String, SourceSpan)>,
}

impl Cx {
    /// Reads an `import` node and the file it names; `None` (with problems
    /// reported) when it cannot be had.
    pub fn import(
        &mut self,
        node: &KdlNode,
        loader: &mut Loader,
        validate: Validate,
    ) -> Option<(Spanned<Name>, Parts)> {
        self.check_props(node, &["as"]);
        let example = "import \"../toolchains/go.kdl\" as=go";
        let args = self.args(node, (1, 1), "a path", example);
        let path = args.first().and_then(|e| self.string(node, e));
        let alias = self.required(node, "as", example);
        let alias = alias.and_then(|e| self.raw_string(node, e));
        let values = self.import_args(node);
        let (path, alias) = (path?, alias?);
        let Some(name) = Name::local(&alias.value) else {
            let kind = ProblemKind::InvalidName { name: alias.value };
            self.report(kind, vec![label(alias.span, "invalid alias")]);
            return None;
        };
        if let Some((_, first)) = self.aliases.get(name.as_str()) {
            let labels = vec![label(*first, "first here"), label(alias.span, "again here")];
            let kind = ProblemKind::AliasClash { alias: alias.value };
            self.report(kind, labels);
            return None;
        }
        let importer = loader.stack.last().map(|s| s.1.clone()).unwrap_or_default();
        let shown = display_join(&importer, &path.value);
        let what = format!("imported from `{shown}`");
        self.aliases.insert(name.to_string(), (what, alias.span));
        let canonical = self.import_path(&path, &shown)?;
        let span = node.name().span();
        if let Some(at) = loader.stack.iter().position(|(p, ..)| *p == canonical) {
            self.import_cycle(loader, at, span, &shown);
            return None;
        }
        let text = self.import_text(loader, &canonical, &path, &shown)?;
        let base = loader.text.len() + 1;
        let qualified = match loader.alias() {
            "" => name.to_string(),
            outer => format!("{outer}.{name}"),
        };
        loader.text.push('\n');
        loader.text.push_str(&text);
        loader.files.push(SpecFile {
            name: shown.clone(),
            path: canonical.clone(),
            written: self.context.join(&path.value),
            dir: canonical.parent().unwrap_or(Path::new("/")).to_path_buf(),
            alias: qualified,
            base,
            len: text.len(),
            imported_at: Some(node.span()),
            hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
        });
        let mut child = Cx::new(canonical.parent().unwrap_or(Path::new("/")).to_path_buf());
        child.file = Some(shown.clone());
        let args = ImportArgs {
            file: shown.clone(),
            values,
        };
        loader.stack.push((canonical, shown, Some(span)));
        // Parsed alone, then every span moved to where the text is in the
        // whole; only a file that fails is read again behind `base` spaces,
        // so its problems point at the right place too.
        let padded = || format!("{}{text}", " ".repeat(base));
        let parts = match scan::check(&text) {
            Some(_) => {
                child.problems.extend(scan::check(&padded()));
                None
            }
            None => match syntax::parse_kdl(&text) {
                Ok(mut doc) => {
                    syntax::shift(&mut doc, base);
                    Some(validate(&mut child, &doc, Given::Import(args), loader))
                }
                Err(_) => {
                    let padded = padded();
                    if let Err(error) = syntax::parse_kdl(&padded) {
                        child.problems.extend(syntax::problems(error, &padded));
                    }
                    None
                }
            },
        };
        loader.stack.pop();
        for mut problem in child.problems {
            // These two already point at the imports they are about.
            let about_imports = matches!(
                problem.kind,
                ProblemKind::ImportCycle { .. } | ProblemKind::UnknownImportArg { .. }
            );
            if !about_imports {
                problem.add_label(label(path.span, "imported here"));
            }
            self.problems.push(problem);
        }
        let name = Spanned {
            value: name,
            span: alias.span,
        };
        let parts = parts?.qualified(name.value.as_str());
        Some((name, parts))
    }

    /// `arg NAME="value" …` lines inside an import: values (substituted
    /// here) for the imported file's args.
    fn import_args(&mut self, node: &KdlNode) -> Vec<(String, String, SourceSpan)> {
        let mut values = Vec::new();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            if child.name().value() != "arg" {
                self.unknown_node(child, "an import", &["arg"]);
                continue;
            }
            self.no_children(child);
            let _ = self.args(child, (0, 0), "", "arg go-version=\"1.21\"");
            for entry in child.entries() {
                let Some(key) = entry.name() else { continue };
                if let Some(value) = self.scalar(child, entry) {
                    values.push((key.value().to_owned(), value, entry.span()));
                }
            }
        }
        values
    }

    /// The canonical path an import names. From an imported file, it must
    /// stay inside that file's directory, as its sources do; kiln.kdl may
    /// import from anywhere (`../toolchains/go.kdl`).
    fn import_path(&mut self, path: &Spanned<String>, shown: &str) -> Option<PathBuf> {
        let outside = |cx: &mut Cx| {
            let file = cx.file.clone().unwrap_or_default();
            let kind = ProblemKind::ImportedPathOutside {
                path: path.value.clone(),
                file,
            };
            cx.report(
                kind,
                vec![label(path.span, "outside this file's directory")],
            );
            None
        };
        if self.file.is_some() && SrcPath::new(&path.value).is_none() {
            return outside(self);
        }
        match std::fs::canonicalize(self.context.join(&path.value)) {
            Ok(real) if self.file.is_some() && !real.starts_with(&self.context) => outside(self),
            Ok(real) => Some(real),
            Err(error) => {
                self.unreadable::<()>(path, shown, io_reason(&error));
                None
            }
        }
    }

    fn import_text(
        &mut self,
        loader: &Loader,
        canonical: &Path,
        path: &Spanned<String>,
        shown: &str,
    ) -> Option<String> {
        if loader.files.len() >= MAX_FILES {
            let kind = ProblemKind::TooManyImports { max: MAX_FILES };
            self.report(kind, vec![label(path.span, "one too many")]);
            return None;
        }
        let text = match read::read_spec(canonical) {
            Ok(text) => text,
            Err(read::Unreadable::NotUtf8 { at, .. }) => {
                let reason = format!("not UTF-8 text (byte {at})");
                return self.unreadable(path, shown, reason);
            }
            Err(read::Unreadable::Problem(kind)) => {
                let reason = match kind {
                    ProblemKind::Read { source, .. } => io_reason(&source),
                    ProblemKind::NotAFile { what, .. } => format!("it is {what}"),
                    ProblemKind::TooBig { max, .. } => format!("larger than {} MiB", max >> 20),
                    other => other.to_string(),
                };
                return self.unreadable(path, shown, reason);
            }
        };
        if loader.text.len() + text.len() + 1 > MAX_TOTAL_BYTES {
            let kind = ProblemKind::TooManyImports { max: MAX_FILES };
            self.report(kind, vec![label(path.span, "too much text")]);
            return None;
        }
        Some(text)
    }

    fn unreadable<T>(&mut self, path: &Spanned<String>, shown: &str, reason: String) -> Option<T> {
        let kind = ProblemKind::ImportUnreadable {
            path: shown.to_owned(),
            reason,
        };
        self.report(kind, vec![label(path.span, "cannot be read")]);
        None
    }

    /// Reports the import at `span` of a file already being read, at
    /// `stack[at]`: every import of the chain from there is an edge.
    fn import_cycle(&mut self, loader: &Loader, at: usize, span: SourceSpan, shown: &str) {
        let chain = &loader.stack[at..];
        let mut files: Vec<String> = chain.iter().map(|(_, name, _)| name.clone()).collect();
        files.push(shown.to_owned());
        let mut labels = Vec::new();
        for (i, (_, name, imported_at)) in chain.iter().enumerate().skip(1) {
            if let Some(edge) = imported_at {
                let from = &chain[i - 1].1;
                labels.push(label(*edge, format!("`{from}` imports `{name}`")));
            }
        }
        let from = chain.last().map(|c| c.1.as_str()).unwrap_or_default();
        labels.push(label(span, format!("`{from}` imports `{shown}`")));
        self.report(ProblemKind::ImportCycle { files }, labels);
    }

    /// Applies the values an import sets to this (imported) file's args.
    pub fn apply_import_args(&mut self, given: &ImportArgs) {
        for (name, value, span) in &given.values {
            match self.args.get_mut(name) {
                Some(slot) => *slot = Some(value.clone()),
                None => {
                    let kind = ProblemKind::UnknownImportArg {
                        name: name.clone(),
                        file: given.file.clone(),
                        declared: self.args.keys().cloned().collect(),
                    };
                    self.report(kind, vec![label(*span, "not declared there")]);
                }
            }
        }
    }
}

/// Why a file could not be had, without its path (the diagnostic names it
/// as the user wrote it; the OS error would name it absolutely).
fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        kind => kind.to_string(),
    }
}
