//! The source code a [`SpecError`](super::SpecError) renders its snippets
//! from: kiln.kdl with an index of where each line starts. miette finds a
//! snippet by scanning from the top of the file, which made reporting
//! quadratic (20,000 problems took minutes); here each snippet costs only
//! the lines it shows. A snippet whose lines are very long is cut to the
//! span and a little around it, so one 20 KB line is not printed again for
//! every problem on it. A spec with imports is one text holding every file
//! ([`Files`]): a snippet is read from the file its span falls in, named
//! and numbered as that file, so one diagnostic can point into kiln.kdl and
//! into a file it imports. No IO.

use std::sync::Arc;

use miette::{MietteError, MietteSpanContents, NamedSource, SourceCode, SourceSpan, SpanContents};

/// A snippet longer than this is cut down to its span and [`MARGIN`].
const MAX_SNIPPET: usize = 2048;
/// Bytes shown on each side of a span in a cut snippet.
const MARGIN: usize = 80;

#[derive(Debug)]
pub(crate) struct Indexed {
    source: Arc<NamedSource<String>>,
    /// Byte offset of the start of each line; `[0]` is 0. Lines end where
    /// miette's own reader ends them: after `\n`, `\r\n` or a lone `\r`.
    line_starts: Vec<usize>,
}

impl Indexed {
    pub fn new(source: Arc<NamedSource<String>>) -> Indexed {
        let bytes = source.inner().as_bytes();
        let mut line_starts = vec![0];
        for (at, &b) in bytes.iter().enumerate() {
            let ends_line = b == b'\n' || (b == b'\r' && bytes.get(at + 1) != Some(&b'\n'));
            if ends_line {
                line_starts.push(at + 1);
            }
        }
        Indexed {
            source,
            line_starts,
        }
    }

    pub fn name(&self) -> &str {
        self.source.name()
    }

    fn text(&self) -> &str {
        self.source.inner()
    }

    /// The line holding byte `at`.
    fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= at) - 1
    }

    /// Where `line` ends, its line break excluded.
    fn line_end(&self, line: usize) -> usize {
        let text = self.text().as_bytes();
        let mut end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(text.len());
        while end > self.line_starts[line] && matches!(text[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        end
    }

    /// The span's own lines, cut to the span and [`MARGIN`] on each side.
    fn cut<'a>(&'a self, span: &SourceSpan) -> Box<dyn SpanContents<'a> + 'a> {
        let text = self.text();
        let start = span.offset().min(text.len());
        let end = (span.offset() + span.len()).min(text.len());
        let (first, last) = (self.line_of(start), self.line_of(end.max(start)));
        let mut lo = start.saturating_sub(MARGIN).max(self.line_starts[first]);
        while !text.is_char_boundary(lo) {
            lo -= 1;
        }
        let mut hi = (end + MARGIN).min(self.line_end(last)).max(end);
        while !text.is_char_boundary(hi) {
            hi += 1;
        }
        let column = text[self.line_starts[first]..lo].chars().count();
        Box::new(MietteSpanContents::new_named(
            self.name().to_owned(),
            &text.as_bytes()[lo..hi],
            (lo, hi - lo).into(),
            first,
            column,
            last - first + 1,
        ))
    }
}

impl SourceCode for Indexed {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text = self.text();
        if span.offset() + span.len() > text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let end = (span.offset() + span.len())
            .saturating_sub(1)
            .max(span.offset());
        let (first, last) = (self.line_of(span.offset()), self.line_of(end));
        // A window of whole lines, one more on each side than asked for, in
        // which miette's reader finds exactly what it would in the file.
        let top = first.saturating_sub(context_lines_before + 1);
        let bottom = last + context_lines_after + 2;
        let from = self.line_starts[top];
        let to = self.line_starts.get(bottom).copied().unwrap_or(text.len());
        let window = &text.as_bytes()[from..to];
        let shifted = SourceSpan::new((span.offset() - from).into(), span.len());
        let found = window.read_span(&shifted, context_lines_before, context_lines_after)?;
        if found.data().len() > MAX_SNIPPET {
            return Ok(self.cut(span));
        }
        Ok(Box::new(MietteSpanContents::new_named(
            self.name().to_owned(),
            found.data(),
            (found.span().offset() + from, found.span().len()).into(),
            found.line() + top,
            found.column(),
            found.line_count() + top,
        )))
    }
}

/// Several files in one text: each span is read from the file it falls
/// in, by that file's name and line numbers. A span across two files reads
/// as out of bounds (miette then shows the two labels apart).
#[derive(Debug)]
pub(crate) struct Files {
    /// The whole text, named as kiln.kdl.
    all: Arc<NamedSource<String>>,
    /// Each file: where it starts in `all`, and its own text, indexed.
    files: Vec<(usize, Indexed)>,
}

impl Files {
    /// `all` as one file.
    pub fn one(all: Arc<NamedSource<String>>) -> Files {
        let whole = Indexed::new(all.clone());
        Files {
            all,
            files: vec![(0, whole)],
        }
    }

    /// `all`, cut into the files at `(name, base, len)`; the first is
    /// named as `all` is.
    pub fn split(all: Arc<NamedSource<String>>, files: &[(String, usize, usize)]) -> Files {
        if files.len() <= 1 {
            return Files::one(all);
        }
        let text = all.inner();
        let mut cut = Vec::with_capacity(files.len());
        for (name, base, len) in files {
            let end = (base + len).min(text.len());
            let own = text.get((*base).min(end)..end).unwrap_or_default();
            let named = Arc::new(NamedSource::new(name, own.to_owned()));
            cut.push((*base, Indexed::new(named)));
        }
        Files { all, files: cut }
    }

    pub fn name(&self) -> &str {
        self.all.name()
    }

    pub fn text(&self) -> &str {
        self.all.inner()
    }
}

impl SourceCode for Files {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let at = self
            .files
            .partition_point(|(base, _)| *base <= span.offset())
            .saturating_sub(1);
        let (base, file) = self.files.get(at).ok_or(MietteError::OutOfBounds)?;
        if *base == 0 {
            return file.read_span(span, context_lines_before, context_lines_after);
        }
        let shifted = SourceSpan::new((span.offset() - base).into(), span.len());
        let found = file.read_span(&shifted, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            file.name().to_owned(),
            found.data(),
            (found.span().offset() + base, found.span().len()).into(),
            found.line(),
            found.column(),
            found.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str, span: (usize, usize), context: usize) {
        let named = NamedSource::new("k.kdl", text.to_owned());
        let indexed = Indexed::new(Arc::new(named.clone()));
        let span = SourceSpan::from(span);
        let want = named
            .read_span(&span, context, context)
            .expect("miette reads");
        let got = indexed
            .read_span(&span, context, context)
            .expect("index reads");
        let show = |c: &dyn SpanContents| {
            (
                String::from_utf8_lossy(c.data()).into_owned(),
                *c.span(),
                c.line(),
                c.column(),
                c.line_count(),
                c.name().map(str::to_owned),
            )
        };
        assert_eq!(show(&*got), show(&*want), "{text:?} {span:?} ±{context}");
    }

    #[test]
    fn reads_what_miette_reads() {
        let texts = [
            "stage a {\n    run \"x\"\n}\n",
            "a\nb\nc\nd\ne\nf\ng",
            "a\r\nb\r\nc\r\nd\r\n",
            "a\rb\rc\rd",
            "\n\n\nabc\n\n\n",
            "x",
        ];
        for text in texts {
            for offset in 0..text.len() {
                for len in [0, 1, 3] {
                    if offset + len > text.len() {
                        continue;
                    }
                    for context in [0, 1, 2] {
                        both(text, (offset, len), context);
                    }
                }
            }
        }
    }

    #[test]
    fn a_span_is_read_from_its_own_file_by_its_own_lines() {
        let all = "a\nb\n\nx\ny\n".to_owned();
        let files = [("k.kdl".to_owned(), 0, 4), ("lib/t.kdl".to_owned(), 5, 4)];
        let files = Files::split(Arc::new(NamedSource::new("k.kdl", all)), &files);
        let got = files
            .read_span(&SourceSpan::from((7, 1)), 0, 0)
            .expect("reads");
        assert_eq!(got.name(), Some("lib/t.kdl"));
        assert_eq!((got.line(), got.data()), (1, &b"y"[..]));
        assert_eq!(got.span().offset(), 7);
        let got = files
            .read_span(&SourceSpan::from((2, 1)), 0, 0)
            .expect("reads");
        assert_eq!((got.name(), got.line()), (Some("k.kdl"), 1));
        assert!(files.read_span(&SourceSpan::from((2, 5)), 0, 0).is_err());
    }

    #[test]
    fn cuts_a_very_long_line_around_the_span() {
        let text = format!("{}é{}\n", "(".repeat(10_000), ")".repeat(10_000));
        let indexed = Indexed::new(Arc::new(NamedSource::new("k.kdl", text)));
        let got = indexed
            .read_span(&SourceSpan::from((12_000, 1)), 1, 1)
            .expect("reads");
        assert!(got.data().len() <= 2 * MARGIN + 1, "{}", got.data().len());
        assert_eq!(got.span().offset(), 12_000 - MARGIN);
        assert_eq!(got.line(), 0);
    }
}
